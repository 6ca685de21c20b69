"""Rule target_model: train the classifier TRACER explains; weights, summary and layer table."""
import logging
import sys
import time
from pathlib import Path

sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821
logging.basicConfig(stream=sys.stderr, level=logging.INFO)
sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))  # noqa: F821

import torch  # noqa: E402

from causalxai.io import atomic_path, open as open_result, write_dataset  # noqa: E402
from causalxai.tracer.settings import TrainSettings  # noqa: E402
from causalxai.tracer.target_model import save_target_model, train_target_model  # noqa: E402

torch.set_num_threads(snakemake.threads)  # noqa: F821
p = snakemake.params  # noqa: F821
out = snakemake.output  # noqa: F821
cfg = dict(p.model)
settings = TrainSettings.from_params({**cfg, "seed": p.seed}, section="tracer.model")
t0 = time.time()
model, kwargs, ds = train_target_model(open_result(snakemake.input.dataset), settings, device=p.device, progress=True)  # noqa: F821
logging.info("%s: test accuracy %.4f, %d parameters, trained in %.1f s",
             cfg["architecture"], float(ds["test_accuracy"]), int(ds["n_params"]), time.time() - t0)
save_target_model(model, cfg["architecture"], kwargs, out.weights)
table = ds[["layer_type", "output_shape", "n_outputs", "n_params_layer"]].to_dataframe()
with atomic_path(out.layers) as tmp:
    table.to_csv(tmp)
write_dataset(ds, out.summary, step="target_model", config={**cfg, "device": p.device}, seed=p.seed)
