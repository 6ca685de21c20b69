"""Rule reliability: perturbation score of TRACER and seven established methods (paper 004 §4.1, Fig. 3)."""
import logging
import sys
import time
from pathlib import Path

sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821
logging.basicConfig(stream=sys.stderr, level=logging.INFO)
sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))  # noqa: F821

import torch  # noqa: E402

from causalxai.io import atomic_path, open as open_result, write_dataset  # noqa: E402
from causalxai.tracer.ace import output_attribution  # noqa: E402
from causalxai.tracer.mechanisms import class_balanced_samples  # noqa: E402
from causalxai.tracer.reliability import BaselineSettings, reliability_dataset  # noqa: E402
from causalxai.tracer.target_model import dataset_tensors, from_raw, load_target_model, to_raw  # noqa: E402
from causalxai.runtime import resolve_device  # noqa: E402

torch.set_num_threads(snakemake.threads)  # noqa: F821
p = snakemake.params  # noqa: F821
cfg, iv = dict(p.reliability), dict(p.interventions)
device = resolve_device(p.device)
model = load_target_model(snakemake.input.weights)  # noqa: F821
x, y = dataset_tensors(open_result(snakemake.input.dataset), "test")  # noqa: F821
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
with atomic_path(snakemake.output.table) as tmp:  # noqa: F821
    ds[["mean", "std", "mask_fraction"]].to_dataframe().to_csv(tmp)
write_dataset(ds, snakemake.output.reliability, step="reliability",  # noqa: F821
              config={**cfg, "mask_threshold": p.mask_threshold, **{f"interventions_{k}": v for k, v in iv.items()}}, seed=p.seed)
