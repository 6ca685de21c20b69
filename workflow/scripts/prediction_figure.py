"""Rule prediction_figure: prediction distributions per optimizer (paper 000 Fig. 6)."""

from causalxai.io import open as open_result
from causalxai.plots.prediction_figure import plot_prediction_distributions
from causalxai.zoo.dataset import open_hparams

from common import start

start(snakemake)

inp = snakemake.input
plot_prediction_distributions(
    open_result(inp.predictions), open_hparams(inp.zoo), open_result(inp.images),
    snakemake.output.figure, hparam=snakemake.params.hparam,
)
