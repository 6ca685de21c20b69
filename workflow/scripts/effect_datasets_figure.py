"""Rule effect_datasets_figure: paper 000 Fig. 16, one row per data set."""

from causalxai.io import open as open_result
from causalxai.plots.effect_datasets_figure import plot_correlations_by_dataset

from common import start

start(snakemake)

p = snakemake.params
effects = {d: open_result(path) for d, path in zip(p.datasets, snakemake.input.effects)}
plot_correlations_by_dataset(effects, snakemake.output.figure, aggregation=p.aggregation)
