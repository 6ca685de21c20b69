"""Rule tracer_figures: CKA heat maps, eps sweep, mechanism coverage and reliability (paper 004 Fig. 2, 3, 11, 12)."""
import logging
import sys
import time
from pathlib import Path

sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821
logging.basicConfig(stream=sys.stderr, level=logging.INFO)
sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))  # noqa: F821

from causalxai.io import open as open_result  # noqa: E402
from causalxai.plots.tracer_figures import plot_cka, plot_coverage, plot_eps_sweep, plot_reliability  # noqa: E402

inp, out = snakemake.input, snakemake.output  # noqa: F821
nodes = open_result(inp.nodes)
plot_cka(nodes, out.cka)
plot_eps_sweep(nodes, out.eps_sweep)
plot_coverage(open_result(inp.mechanisms), out.coverage)
plot_reliability(open_result(inp.reliability), out.reliability)
logging.info("figures written")
