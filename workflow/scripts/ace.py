"""Rule ace: average causal effect per causal node (Def. 5), feature attributions, explanation masks."""
import logging
import sys
import time
from pathlib import Path

sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821
logging.basicConfig(stream=sys.stderr, level=logging.INFO)
sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))  # noqa: F821

from causalxai.io import open as open_result, write_dataset  # noqa: E402
from causalxai.tracer.ace import ace_dataset  # noqa: E402
from causalxai.tracer.settings import TracerSettings  # noqa: E402

cfg = dict(snakemake.params.tracer)  # noqa: F821
inter = open_result(snakemake.input.interventions)  # noqa: F821
nodes = open_result(snakemake.input.nodes)  # noqa: F821
ds = ace_dataset(inter, nodes["group"], TracerSettings.from_params(cfg))
logging.info("ACE of %d samples; mean mask share %.3f", ds.sizes["sample"], float(ds["mask"].mean()))
write_dataset(ds, snakemake.output.ace, step="ace", config=cfg, seed=inter.attrs.get("seed"))  # noqa: F821  (the interventions' seed)
