"""Rule tracer_sample_figures: causal graph and feature contributions of one analysed sample (Fig. 2, 5)."""

import json
import logging

from causalxai.io import open as open_result
from causalxai.plots.tracer_sample_figures import plot_causal_graph, plot_contributions

from common import start

start(snakemake)

inp, out = snakemake.input, snakemake.output
nodes = open_result(inp.nodes)
position = snakemake.params.position
if position >= nodes.sizes["sample"]:
    raise ValueError(f"tracer.figures.samples asks for sample position {position}, but only "
                     f"{nodes.sizes['sample']} samples were analysed: lower tracer.figures.samples")
sample = nodes["sample"].values[position]
plot_causal_graph(nodes, out.graph, sample)
names = open_result(inp.dataset).attrs.get("feature_names")  # tabular sets: bars labelled by feature
plot_contributions(open_result(inp.interventions), open_result(inp.ace), out.contributions, sample,
                   feature_names=json.loads(names) if names else None)
logging.info("figures of sample %s written", sample)
