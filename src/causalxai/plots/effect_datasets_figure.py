"""The figure across data sets (rule ``effect_datasets_figure``; paper 000 Fig. 16): one row of
:mod:`causalxai.plots.effect_figures`' correlation panels per data set."""

from __future__ import annotations

import os
from typing import Mapping

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402
import xarray as xr  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from causalxai.plots._figure import save_figure as _save  # noqa: E402
from causalxai.plots.effect_figures import (  # noqa: E402
    AGGREGATIONS,
    STATS,
    _check_aggregation,
    _correlation_panels,
    _method_colors,
    _name,
    _small_legend,
)

__all__ = ["plot_correlations_by_dataset"]


def plot_correlations_by_dataset(
    effects: Mapping[str, xr.Dataset], path: str | os.PathLike[str], aggregation: str = "hparam_mean"
) -> Figure:
    """Paper 000 Fig. 16: one row per data set; Pearson and Spearman correlation of ITE_Y and
    ITE_E per bucket and method, total effect (solid, with band) and direct effect (dotted)."""
    if not effects:
        raise ValueError("plot_correlations_by_dataset needs at least one data set's effects.nc")
    _check_aggregation(aggregation)
    sns.set_theme(style="whitegrid")
    fig, axes = plt.subplots(len(effects), 2, figsize=(12.4, 3.8 * len(effects)), sharey=True, squeeze=False)
    methods: list[str] = []
    for row, (name, ds) in zip(axes, effects.items()):
        methods = _correlation_panels(row, ds, aggregation, direct=True)
        for ax, stat in zip(row, STATS):
            ax.set_title(f"{name}: {stat.capitalize()} corr(ITE_Y, ITE_E)")
            ax.set_ylabel("correlation")
    colors = _method_colors(methods)
    handles = [Line2D([], [], color=colors[m], marker="o", ms=4, label=_name(m)) for m in methods]
    handles += [Line2D([], [], color="0.3", ls="-", label="total (mediated) effect"),
                Line2D([], [], color="0.3", ls=":", label="direct effect (Y permuted)"), _small_legend()]
    axes[0, -1].legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.suptitle(f"ITE_Y vs ITE_E correlations per data set ({AGGREGATIONS[aggregation][1]})")
    fig.tight_layout()
    return _save(fig, path)
