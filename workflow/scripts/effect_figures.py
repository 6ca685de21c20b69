"""Rule effect_figures: paper 000 Fig. 2, 3 (scatter and correlations), 4 and 10-13 from effects.nc."""

from causalxai.io import open as open_result
from causalxai.plots.effect_figures import (
    plot_correlations,
    plot_ite_by_bucket,
    plot_ite_by_hparam,
    plot_ite_scatter,
    plot_mediation,
)

from common import start

start(snakemake)

out = snakemake.output
p = snakemake.params
effects = open_result(snakemake.input.effects)
plot_correlations(effects, out.correlations, aggregation=p.aggregation)
plot_ite_by_bucket(effects, out.ite_by_bucket, hparam=p.hparam)
plot_ite_by_hparam(effects, out.ite_by_hparam)
plot_ite_scatter(effects, out.scatter, effect="total")
plot_mediation(effects, out.mediation, aggregation=p.aggregation)
