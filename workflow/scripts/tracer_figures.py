"""Rule tracer_figures: CKA heat maps, eps sweep, mechanism coverage and stability, the nodes' ablation against
their ACE, reliability (paper 004 Fig. 2, 3, 11, 12)."""

import logging

from causalxai.io import open as open_result
from causalxai.plots.tracer_figures import (
    plot_cka,
    plot_coverage,
    plot_eps_sweep,
    plot_mechanism_stability,
    plot_node_validation,
    plot_reliability,
)

from common import start

start(snakemake)

inp, out = snakemake.input, snakemake.output
nodes = open_result(inp.nodes)
mechanisms = open_result(inp.mechanisms)
plot_cka(nodes, out.cka, eps=float(nodes.attrs["eps"]), margin=float(mechanisms.attrs["margin"]))
plot_eps_sweep(nodes, out.eps_sweep)
plot_coverage(mechanisms, out.coverage)
plot_mechanism_stability(mechanisms, out.stability)
plot_node_validation(open_result(inp.ace), out.node_validation)
plot_reliability(open_result(inp.reliability), out.reliability)
logging.info("figures written")
