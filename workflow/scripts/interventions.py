"""Rule interventions: occlusion interventions on class-balanced test samples; CKA, KL and sign per layer."""

import logging
import time

from causalxai.io import open as open_result, write_dataset
from causalxai.runtime import resolve_device
from causalxai.tracer.interventions import interventions_dataset
from causalxai.tracer.model import observed_layers
from causalxai.tracer.settings import TracerSettings
from causalxai.tracer.target_model import dataset_tensors, load_target_model

from common import start

start(snakemake, torch_threads=True)

p = snakemake.params
model = load_target_model(snakemake.input.weights)
# inputs per forward pass and device: read from the config, not params (changing them re-runs nothing)
batch_size = snakemake.config["tracer"]["interventions"]["batch_size"]
settings = TracerSettings.from_params({**p.tracer, "batch_size": batch_size})
x, y = dataset_tensors(open_result(snakemake.input.dataset), "test")
idx = open_result(snakemake.input.samples)["interventions"].values
# in forward order (the order the model registers its modules in may differ), as analyse_one records them
layers = observed_layers(model, settings.layers, example_input=x[idx[:1]])
logging.info("%d samples, layers %s", idx.size, layers)
t0 = time.time()
ds = interventions_dataset(model, x[idx], settings, sample_ids=idx, labels=y[idx].numpy(),
                           device=resolve_device(snakemake.config["device"]), progress=True)
logging.info("analysed %d samples x %d interventions in %.1f s (%.2f s per sample)", idx.size,
             ds.sizes["intervention"], time.time() - t0, (time.time() - t0) / idx.size)
ds["sample"].attrs["description"] = "index of the sample among the dataset's test split"
write_dataset(ds, snakemake.output.interventions, step="interventions",
              config={**p.tracer, "batch_size": batch_size, "layers": layers, "n_samples": int(idx.size)}, seed=p.seed)
