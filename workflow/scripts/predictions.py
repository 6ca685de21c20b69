"""Rule predictions: every model's softmax output on the probe images."""

from causalxai.io import open as open_result, write_dataset
from causalxai.study.explain import ExplainSettings
from causalxai.study.predictions import predict_zoo

from common import start

start(snakemake, torch_threads=True)

cfg = dict(snakemake.params.explain)
pred = predict_zoo(open_result(snakemake.input.zoo), open_result(snakemake.input.images),
                   ExplainSettings.from_config(cfg))
write_dataset(pred, snakemake.output.predictions, step="predictions", config=cfg, seed=cfg["seed"])
