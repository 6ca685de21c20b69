"""Rule explain_shard: one method's raw saliency maps for one shard of the zoo's models."""

import logging
import time

from causalxai.io import open as open_result, write_dataset
from causalxai.study.explain import ExplainSettings, explain_zoo, model_shard

from common import start

start(snakemake, torch_threads=True)

cfg = dict(snakemake.params.explain)
zoo = open_result(snakemake.input.zoo)
models = model_shard(zoo.sizes["model"], cfg["shards"], snakemake.params.shard)
t0 = time.time()
ds = explain_zoo(
    zoo, open_result(snakemake.input.images), open_result(snakemake.input.predictions),
    cfg["method"], ExplainSettings.from_config(cfg), models, normalise=False,
)
logging.info("%s: %d models explained in %.1f s", cfg["method"], models.size, time.time() - t0)
write_dataset(ds, snakemake.output.shard, step="explain_shard", config={**cfg, "shard": snakemake.params.shard},
              seed=cfg["seed"])
