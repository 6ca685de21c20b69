"""Rule explain_gather: one method's shards into explanations/<method>.nc, normalised (App. A.3)."""

import logging

from causalxai.io import open as open_result, write_dataset
from causalxai.study.explain import ExplainSettings, gather, normalise_explanations

from common import start

start(snakemake)

cfg = dict(snakemake.params.explain)
ds = gather([open_result(p) for p in snakemake.input.shards])
ds = normalise_explanations(ds, cfg["method"], ExplainSettings.from_config(cfg))
logging.info("%s: degenerate (zero-scale) maps per effect: %s (%s)", cfg["method"], ds.attrs["n_degenerate"],
             cfg["zero_maps"])
n_img, h, w = ds.sizes["image"], ds.sizes["y"], ds.sizes["x"]
chunks = (1, 1, n_img, h, w)
write_dataset(
    ds, snakemake.output.explanations, step="explain", config=cfg, seed=cfg["seed"],
    encoding={"E": {"chunksizes": chunks}, "attribution": {"chunksizes": chunks}},
)
