"""Rule causal_nodes: causal nodes (Def. 3), links (Def. 4) and the eps sweep (App. G) per sample."""

import logging

from causalxai.io import open as open_result, write_dataset
from causalxai.tracer.nodes import causal_nodes_dataset
from causalxai.tracer.settings import TracerSettings

from common import start

start(snakemake)

p = snakemake.params
settings = TracerSettings.from_params(p.tracer)
inter = open_result(snakemake.input.interventions)
ds = causal_nodes_dataset(inter["cka"], settings)
if "stochastic" in inter:  # the stochastic (exogenous) nodes of App. H.2, as the interventions step found them
    ds["stochastic"] = inter["stochastic"]
logging.info("eps %g: causal nodes per sample min %d, max %d", settings.eps, int(ds["n_groups"].min()),
             int(ds["n_groups"].max()))
write_dataset(ds, snakemake.output.nodes, step="causal_nodes", config=dict(p.tracer),
              seed=inter.attrs.get("seed"))  # deterministic step: the interventions' seed
