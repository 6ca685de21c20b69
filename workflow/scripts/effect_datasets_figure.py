"""Rule effect_datasets_figure: paper 000 Fig. 16, one row per data set."""
import sys
from pathlib import Path

sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821
sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))  # noqa: F821

from causalxai.io import open as open_result  # noqa: E402
from causalxai.plots.effect_datasets_figure import plot_correlations_by_dataset  # noqa: E402

p = snakemake.params  # noqa: F821
effects = {d: open_result(path) for d, path in zip(p.datasets, snakemake.input.effects)}  # noqa: F821
plot_correlations_by_dataset(effects, snakemake.output.figure, aggregation=p.aggregation)  # noqa: F821
