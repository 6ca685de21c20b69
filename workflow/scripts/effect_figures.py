"""Rule effect_figures: paper 000 Fig. 2, 3 (scatter and correlations), 4 and 10-13 from effects.nc."""
import sys
from pathlib import Path

sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821
sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))  # noqa: F821

from causalxai.io import open as open_result  # noqa: E402
from causalxai.plots.effect_figures import (  # noqa: E402
    plot_correlations,
    plot_ite_by_bucket,
    plot_ite_by_hparam,
    plot_ite_scatter,
    plot_mediation,
)

out = snakemake.output  # noqa: F821
p = snakemake.params  # noqa: F821
effects = open_result(snakemake.input.effects)  # noqa: F821
plot_correlations(effects, out.correlations, aggregation=p.aggregation)
plot_ite_by_bucket(effects, out.ite_by_bucket, hparam=p.hparam)
plot_ite_by_hparam(effects, out.ite_by_hparam)
plot_ite_scatter(effects, out.scatter, effect="total")
plot_mediation(effects, out.mediation, aggregation=p.aggregation)
