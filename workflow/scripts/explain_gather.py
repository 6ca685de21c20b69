"""Rule explain_gather: one method's shards streamed into explanations/<method>.nc, normalised (App. A.3)."""

import logging

from causalxai.io import open_lazy
from causalxai.study.explain import ExplainSettings, gather_to_file

from common import start

start(snakemake, bounded_heap=True)

cfg = dict(snakemake.params.explain)
out = gather_to_file(snakemake.input.shards, snakemake.output.explanations, cfg["method"],
                     ExplainSettings.from_config(cfg), config=cfg)
with open_lazy(out) as ds:
    logging.info("%s: degenerate (zero-scale) maps per effect: %s (%s)", cfg["method"], ds.attrs["n_degenerate"],
                 cfg["zero_maps"])
