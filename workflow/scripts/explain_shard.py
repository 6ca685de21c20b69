"""Rule explain_shard: one method's raw saliency maps for one shard of the zoo's models."""

import logging
import time

from causalxai.io import open as open_result, open_lazy, write_dataset
from causalxai.study.explain import ExplainSettings, explain_zoo, model_shard, shard_encoding

from common import start

start(snakemake, torch_threads=True)

# models per pass and device: read from the config, not params (changing them re-runs nothing)
cfg = {**snakemake.params.explain, "chunk_size": snakemake.config["explain"]["chunk_size"],
       "device": snakemake.config["device"]}
t0 = time.time()
# the zoo and the predictions are read lazily: only this shard's rows are loaded
with open_lazy(snakemake.input.zoo) as zoo, open_lazy(snakemake.input.predictions) as predictions:
    models = model_shard(zoo.sizes["model"], snakemake.config["explain"]["shards"], snakemake.params.shard)
    ds = explain_zoo(
        zoo, open_result(snakemake.input.images), predictions,
        cfg["method"], ExplainSettings.from_config(cfg), models, normalise=False,
    )
logging.info("%s: %d models explained in %.1f s", cfg["method"], models.size, time.time() - t0)
write_dataset(ds, snakemake.output.shard, step="explain_shard", config={**cfg, "shard": snakemake.params.shard},
              seed=cfg["seed"], encoding=shard_encoding(ds))
