"""Rule prediction_figure: prediction distributions per optimizer (paper 000 Fig. 6)."""
import sys
from pathlib import Path

sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821
sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))  # noqa: F821

from causalxai.io import open as open_result  # noqa: E402
from causalxai.plots.prediction_figure import plot_prediction_distributions  # noqa: E402

inp = snakemake.input  # noqa: F821
plot_prediction_distributions(
    open_result(inp.predictions), open_result(inp.zoo), open_result(inp.images),
    snakemake.output.figure, hparam=snakemake.params.hparam,  # noqa: F821
)
