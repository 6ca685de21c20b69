"""Rule causal_nodes: causal nodes (Def. 3), links (Def. 4) and the eps sweep (App. G) per sample."""
import logging

from causalxai.io import open as open_result, write_dataset
from causalxai.tracer.nodes import causal_nodes_dataset

from common import start

start(snakemake)

p = snakemake.params
inter = open_result(snakemake.input.interventions)
ds = causal_nodes_dataset(inter["cka"], eps=p.eps, eps_values=p.eps_sweep)
logging.info("eps %g: causal nodes per sample min %d, max %d", p.eps, int(ds["n_groups"].min()),
             int(ds["n_groups"].max()))
write_dataset(ds, snakemake.output.nodes, step="causal_nodes", config={"eps": p.eps, "eps_sweep": list(p.eps_sweep)},
              seed=inter.attrs.get("seed"))  # deterministic step: the interventions' seed
