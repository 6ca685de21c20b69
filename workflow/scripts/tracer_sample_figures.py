"""Rule tracer_sample_figures: causal graph and feature contributions of one analysed sample (Fig. 2, 5)."""
import logging
import sys
import time
from pathlib import Path

sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821
logging.basicConfig(stream=sys.stderr, level=logging.INFO)
sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))  # noqa: F821

from causalxai.io import open as open_result  # noqa: E402
from causalxai.plots.tracer_sample_figures import plot_causal_graph, plot_contributions  # noqa: E402

inp, out = snakemake.input, snakemake.output  # noqa: F821
nodes = open_result(inp.nodes)
position = snakemake.params.position  # noqa: F821
if position >= nodes.sizes["sample"]:
    raise ValueError(f"tracer.figures.samples asks for sample position {position}, but only "
                     f"{nodes.sizes['sample']} samples were analysed: lower tracer.figures.samples")
sample = nodes["sample"].values[position]
plot_causal_graph(nodes, out.graph, sample)
plot_contributions(open_result(inp.interventions), open_result(inp.ace), out.contributions, sample)
logging.info("figures of sample %s written", sample)
