"""Rule explain_shard: one method's raw saliency maps for one shard of the zoo's models."""
import logging
import sys
import time
from pathlib import Path

sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821
logging.basicConfig(stream=sys.stderr, level=logging.INFO)
sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))  # noqa: F821

import torch  # noqa: E402

from causalxai.study.explain import ExplainSettings, explain_zoo, model_shard  # noqa: E402
from causalxai.io import open as open_result, write_dataset  # noqa: E402

torch.set_num_threads(snakemake.threads)  # noqa: F821
cfg = dict(snakemake.params.explain)  # noqa: F821
zoo = open_result(snakemake.input.zoo)  # noqa: F821
models = model_shard(zoo.sizes["model"], cfg["shards"], snakemake.params.shard)  # noqa: F821
t0 = time.time()
ds = explain_zoo(
    zoo, open_result(snakemake.input.images), open_result(snakemake.input.predictions),  # noqa: F821
    cfg["method"], ExplainSettings.from_config(cfg), models, normalise=False,
)
logging.info("%s: %d models explained in %.1f s", cfg["method"], models.size, time.time() - t0)
write_dataset(ds, snakemake.output.shard, step="explain_shard", config={**cfg, "shard": snakemake.params.shard}, seed=cfg["seed"])  # noqa: F821
