"""Rule effects_sensitivity: the headline correlations and gaps for every normalisation x
bandwidth rule x estimator x aggregation, from the raw maps read once."""
import logging
import sys
import time
from pathlib import Path

sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821
logging.basicConfig(stream=sys.stderr, level=logging.INFO)
sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))  # noqa: F821

import torch  # noqa: E402

from causalxai.study.effects_sensitivity import SensitivityGrid, sensitivity_table  # noqa: E402
from causalxai.study.effects import EffectsSettings  # noqa: E402
from causalxai.study.explain import ExplainSettings  # noqa: E402
from causalxai.io import atomic_path, open as open_result  # noqa: E402
from causalxai.plots.effects_sensitivity import plot_sensitivity  # noqa: E402

torch.set_num_threads(snakemake.threads)  # noqa: F821
p = snakemake.params  # noqa: F821
inp = snakemake.input  # noqa: F821
t0 = time.time()
table = sensitivity_table(
    open_result(inp.zoo), open_result(inp.buckets), open_result(inp.predictions),
    {m: open_result(inp[f"E_{m}"], variables=["attribution"]) for m in p.methods},
    ExplainSettings(clip_percentile=p.explain["clip_percentile"], zero_maps=p.explain["zero_maps"]),
    EffectsSettings.from_config(p.effects, p.effects["seed"]),
    SensitivityGrid(bootstrap=p.sensitivity["bootstrap"]),
)
logging.info("sensitivity report: %d rows in %.1f s", len(table), time.time() - t0)
with atomic_path(snakemake.output.table) as tmp:  # noqa: F821
    table.to_csv(tmp, index=False, float_format="%.6g")
plot_sensitivity(table, snakemake.output.figure)  # noqa: F821
