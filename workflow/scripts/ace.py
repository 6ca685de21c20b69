"""Rule ace: average causal effect per causal node (Def. 5), feature attributions, explanation masks."""

import logging

from causalxai.io import open as open_result, write_dataset
from causalxai.tracer.ace import ace_dataset
from causalxai.tracer.settings import TracerSettings

from common import start

start(snakemake)

cfg = dict(snakemake.params.tracer)
inter = open_result(snakemake.input.interventions)
nodes = open_result(snakemake.input.nodes)
ds = ace_dataset(inter, nodes["group"], TracerSettings.from_params(cfg))
logging.info("ACE of %d samples; mean mask share %.3f", ds.sizes["sample"], float(ds["mask"].mean()))
write_dataset(ds, snakemake.output.ace, step="ace", config=cfg, seed=inter.attrs.get("seed"))  # the interventions' seed
