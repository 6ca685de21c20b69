"""Rule interventions: occlusion interventions on class-balanced test samples; CKA, KL and sign per layer."""
import logging
import time

from causalxai.io import open as open_result, write_dataset
from causalxai.runtime import resolve_device
from causalxai.tracer.analysis import analyse_samples
from causalxai.tracer.mechanisms import class_balanced_samples
from causalxai.tracer.model import observed_layers
from causalxai.tracer.target_model import dataset_tensors, from_raw, load_target_model, to_raw

from common import start

start(snakemake, torch_threads=True)

p = snakemake.params
iv = dict(p.interventions)
model = load_target_model(snakemake.input.weights)
x, y = dataset_tensors(open_result(snakemake.input.dataset), "test")
idx = class_balanced_samples(y.numpy(), p.n_samples, p.seed)
layers = observed_layers(model, list(p.layers))
logging.info("%d samples, layers %s", idx.size, layers)
t0 = time.time()
ds = analyse_samples(
    model, x[idx], sample_ids=idx, labels=y[idx].numpy(), layers=layers, k=iv["patch"], stride=iv["stride"],
    baseline=iv["baseline"], to_raw=to_raw, from_raw=from_raw, kernel=p.kernel, batch_size=iv["batch_size"],
    device=resolve_device(p.device), progress=True,
)
logging.info("analysed %d samples x %d interventions in %.1f s (%.2f s per sample)", idx.size,
             ds.sizes["intervention"], time.time() - t0, (time.time() - t0) / idx.size)
ds["sample"].attrs["description"] = "index of the sample among the dataset's test split"
write_dataset(ds, snakemake.output.interventions, step="interventions",
              config={"layers": layers, "n_samples": p.n_samples, "kernel": p.kernel, **iv}, seed=p.seed)
