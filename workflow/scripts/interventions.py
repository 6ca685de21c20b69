"""Rule interventions: occlusion interventions on class-balanced test samples; CKA, KL and sign per layer."""
import logging
import sys
import time
from pathlib import Path

sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821
logging.basicConfig(stream=sys.stderr, level=logging.INFO)
sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))  # noqa: F821

import torch  # noqa: E402

from causalxai.io import open as open_result, write_dataset  # noqa: E402
from causalxai.runtime import resolve_device  # noqa: E402
from causalxai.tracer.interventions import interventions_dataset  # noqa: E402
from causalxai.tracer.model import observed_layers  # noqa: E402
from causalxai.tracer.settings import TracerSettings  # noqa: E402
from causalxai.tracer.target_model import dataset_tensors, load_target_model  # noqa: E402

torch.set_num_threads(snakemake.threads)  # noqa: F821
p = snakemake.params  # noqa: F821
model = load_target_model(snakemake.input.weights)  # noqa: F821
settings = TracerSettings.from_params(p.tracer)
layers = observed_layers(model, settings.layers)
x, y = dataset_tensors(open_result(snakemake.input.dataset), "test")  # noqa: F821
idx = open_result(snakemake.input.samples)["interventions"].values  # noqa: F821
logging.info("%d samples, layers %s", idx.size, layers)
t0 = time.time()
ds = interventions_dataset(model, x[idx], settings, sample_ids=idx, labels=y[idx].numpy(),
                           device=resolve_device(p.device), progress=True)
logging.info("analysed %d samples x %d interventions in %.1f s (%.2f s per sample)", idx.size,
             ds.sizes["intervention"], time.time() - t0, (time.time() - t0) / idx.size)
ds["sample"].attrs["description"] = "index of the sample among the dataset's test split"
write_dataset(ds, snakemake.output.interventions, step="interventions",  # noqa: F821
              config={**p.tracer, "layers": layers, "n_samples": int(idx.size)}, seed=p.seed)
