"""Rule effects: ITE_Y and ITE_E per hyperparameter, value, bucket and image, with intervals,
placebo and permutation null; correlations; CATE and ATE tables."""

import logging
import time

from causalxai.io import atomic_path, open as open_result, open_lazy, write_dataset
from causalxai.study.effects import EffectsSettings, compute_effects
from causalxai.study.estimators.summary import cate_table
from causalxai.zoo.dataset import open_hparams

from common import start

start(snakemake, torch_threads=True)

p = snakemake.params
inp = snakemake.input
out = snakemake.output
settings = EffectsSettings.from_config(p.effects, p.effects["seed"])
t0 = time.time()
maps = {m: open_lazy(inp[f"E_{m}"], variables=["E", "degenerate"]) for m in p.methods}  # read cell by cell
pred = open_lazy(inp.predictions, variables=["prob", "prob_direct"])  # read bucket by bucket
ds = compute_effects(open_hparams(inp.zoo), open_result(inp.buckets), pred, maps, settings)
for m in [*maps.values(), pred]:
    m.close()
logging.info("effects in %.1f s; %d empty and %d small cells; dropped maps %s", time.time() - t0,
             ds.attrs["n_empty_cells"], ds.attrs["n_small_cells"], ds["n_dropped_maps"].values.tolist())
write_dataset(ds, out.effects, step="effects", config={**p.effects, "methods": p.methods}, seed=p.effects["seed"])
for name, path in (("cate", out.cate), ("ate", out.ate)):
    with atomic_path(path) as tmp:
        cate_table(ds, ate=name == "ate").to_csv(tmp, index=False, float_format="%.6g")
