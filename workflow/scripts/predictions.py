"""Rule predictions: every model's softmax output on the probe images."""
import sys
from pathlib import Path

sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821
sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))  # noqa: F821

import torch  # noqa: E402

from causalxai.study.explain import ExplainSettings
from causalxai.study.predictions import predict_zoo  # noqa: E402
from causalxai.io import open as open_result, write_dataset  # noqa: E402

torch.set_num_threads(snakemake.threads)  # noqa: F821
cfg = dict(snakemake.params.explain)  # noqa: F821
pred = predict_zoo(open_result(snakemake.input.zoo), open_result(snakemake.input.images), ExplainSettings.from_config(cfg))  # noqa: F821
write_dataset(pred, snakemake.output.predictions, step="predictions", config=cfg, seed=cfg["seed"])  # noqa: F821
