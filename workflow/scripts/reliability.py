"""Rule reliability: perturbation score of TRACER, eight established methods and a random-foreground
control under the paper's and an equal-size protocol (paper 004 §4.1, Fig. 3)."""

import logging
import time

from causalxai.data.dataset import from_raw, to_raw
from causalxai.io import atomic_path, open as open_result, write_dataset
from causalxai.runtime import resolve_device
from causalxai.tracer.pipeline import TracerSettings, output_attribution
from causalxai.tracer.reliability import ReliabilitySettings, reliability_dataset, reliability_table
from causalxai.tracer.target_model import dataset_tensors, load_target_model

from common import start

start(snakemake, torch_threads=True)

p = snakemake.params
cfg = {k: v for k, v in p.reliability.items() if k != "n_samples"}  # n_samples: the tracer_samples rule's
# inputs per forward pass and device: read from the config, not params (changing them re-runs nothing)
batch_size = snakemake.config["tracer"]["interventions"]["batch_size"]
tracer = TracerSettings.from_params({**p.tracer, "batch_size": batch_size})
settings = ReliabilitySettings.from_params(
    {**cfg, "methods": ["tracer", *cfg["methods"]], "patch": tracer.patch, "stride": tracer.stride},
    seed=p.seed, threshold=tracer.mask_threshold, baseline=tracer.baseline, from_raw=from_raw,
)
device = resolve_device(snakemake.config["device"])
model = load_target_model(snakemake.input.weights)
x, y = dataset_tensors(open_result(snakemake.input.dataset), "test")
idx = open_result(snakemake.input.samples)["reliability"].values
t0 = time.time()
tracer_attr = output_attribution(model, x[idx], tracer, device=device, progress=True)
logging.info("TRACER output attributions of %d samples in %.1f s", idx.size, time.time() - t0)
ds = reliability_dataset(model, to_raw(x[idx]), None, tracer_attr, settings, device=device, progress=True)
table = reliability_table(ds)
logging.info("reliability in %.1f s (Grad-CAM on %s):\n%s", time.time() - t0, ds.attrs["grad_cam_layer"],
             table.to_string(index=False))
with atomic_path(snakemake.output.table) as tmp:
    table.to_csv(tmp, index=False)
write_dataset(ds, snakemake.output.reliability, step="reliability",
              config={**p.reliability, **{f"tracer_{k}": v for k, v in p.tracer.items()}}, seed=p.seed)
