"""Rule effects_sensitivity: the headline correlations and gaps for every normalisation x
bandwidth rule x estimator x aggregation, from the raw maps of the explanation shards."""

import logging
import time

from causalxai.io import atomic_path, open as open_result
from causalxai.plots.effects_sensitivity import plot_sensitivity
from causalxai.study.effects import EffectsSettings
from causalxai.study.effects_sensitivity import SensitivityGrid, sensitivity_table
from causalxai.study.explain import ExplainSettings
from causalxai.zoo.dataset import open_hparams

from common import start

start(snakemake, torch_threads=True)

p = snakemake.params
inp = snakemake.input
t0 = time.time()
table = sensitivity_table(
    open_hparams(inp.zoo), open_result(inp.buckets), open_result(inp.predictions, variables=["prob", "prob_direct"]),
    {m: list(inp[f"shards_{m}"]) for m in p.methods},  # the raw maps, read cell by cell
    ExplainSettings(clip_percentile=p.explain["clip_percentile"], zero_maps=p.explain["zero_maps"]),
    EffectsSettings.from_config(p.effects, p.effects["seed"]),
    SensitivityGrid(bootstrap=p.sensitivity["bootstrap"]),
)
logging.info("sensitivity report: %d rows in %.1f s", len(table), time.time() - t0)
with atomic_path(snakemake.output.table) as tmp:
    table.to_csv(tmp, index=False, float_format="%.6g")
plot_sensitivity(table, snakemake.output.figure)
