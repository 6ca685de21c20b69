"""Rule predictions: every model's softmax output on the probe images."""

from causalxai.io import open as open_result, open_lazy
from causalxai.study.explain import ExplainSettings
from causalxai.study.predictions import predict_zoo_to_file

from common import start

start(snakemake, torch_threads=True, bounded_heap=True)

# models per pass and device: read from the config, not params (changing them re-runs nothing)
cfg = {**snakemake.params.explain, "chunk_size": snakemake.config["explain"]["chunk_size"],
       "device": snakemake.config["device"]}
with open_lazy(snakemake.input.zoo) as zoo:  # read a block of models at a time
    predict_zoo_to_file(zoo, open_result(snakemake.input.images), ExplainSettings.from_config(cfg),
                        snakemake.output.predictions, config=cfg)
