"""Rule interventions: occlusion interventions on class-balanced test samples; CKA, KL and sign per layer."""
import logging
import sys
import time
from pathlib import Path

sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821
logging.basicConfig(stream=sys.stderr, level=logging.INFO)
sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))  # noqa: F821

import numpy as np  # noqa: E402
import torch  # noqa: E402

from causalxai.io import open as open_result, write_dataset  # noqa: E402
from causalxai.tracer.analysis import analyse_samples  # noqa: E402
from causalxai.tracer.mechanisms import class_balanced_samples  # noqa: E402
from causalxai.tracer.model import observed_layers  # noqa: E402
from causalxai.tracer.target_model import dataset_tensors, from_raw, load_target_model, to_raw  # noqa: E402
from causalxai.runtime import resolve_device  # noqa: E402

torch.set_num_threads(snakemake.threads)  # noqa: F821
p = snakemake.params  # noqa: F821
iv = dict(p.interventions)
model = load_target_model(snakemake.input.weights)  # noqa: F821
x, y = dataset_tensors(open_result(snakemake.input.dataset), "test")  # noqa: F821
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
write_dataset(ds, snakemake.output.interventions, step="interventions",  # noqa: F821
              config={"layers": layers, "n_samples": p.n_samples, "kernel": p.kernel, **iv}, seed=p.seed)
