"""Rule reliability: perturbation score of TRACER and seven established methods (paper 004 §4.1, Fig. 3)."""
import logging
import time

from causalxai.io import atomic_path, open as open_result, write_dataset
from causalxai.runtime import resolve_device
from causalxai.tracer.ace import output_attribution
from causalxai.tracer.mechanisms import class_balanced_samples
from causalxai.tracer.reliability import BaselineSettings, reliability_dataset
from causalxai.tracer.target_model import dataset_tensors, from_raw, load_target_model, to_raw

from common import start

start(snakemake, torch_threads=True)

p = snakemake.params
cfg, iv = dict(p.reliability), dict(p.interventions)
device = resolve_device(p.device)
model = load_target_model(snakemake.input.weights)
x, y = dataset_tensors(open_result(snakemake.input.dataset), "test")
idx = class_balanced_samples(y.numpy(), cfg["n_samples"], p.seed + 1)
t0 = time.time()
tracer_attr = output_attribution(model, x[idx], k=iv["patch"], stride=iv["stride"], baseline=iv["baseline"],
                                 from_raw=from_raw, batch_size=iv["batch_size"], device=device)
logging.info("TRACER output attributions of %d samples in %.1f s", idx.size, time.time() - t0)
ds = reliability_dataset(
    model, to_raw(x[idx]), None, tracer_attr, from_raw=from_raw, methods=["tracer", *cfg["methods"]],
    p=cfg["p"], trials=cfg["trials"], threshold=p.mask_threshold, seed=p.seed, baseline=iv["baseline"],
    settings=BaselineSettings.from_config(cfg), device=device, progress=True,
)
logging.info("reliability in %.1f s:\n%s", time.time() - t0, ds[["mean", "std"]].to_dataframe().to_string())
with atomic_path(snakemake.output.table) as tmp:
    ds[["mean", "std", "mask_fraction"]].to_dataframe().to_csv(tmp)
write_dataset(ds, snakemake.output.reliability, step="reliability",
              config={**cfg, "mask_threshold": p.mask_threshold, **{f"interventions_{k}": v for k, v in iv.items()}},
              seed=p.seed)
