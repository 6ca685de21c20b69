"""Figure of the sensitivity report (``tables/effects_sensitivity.csv``,
:mod:`causalxai.study.effects_sensitivity`): which conclusions survive which estimator choices."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from causalxai.plots._figure import save_figure  # noqa: E402
from causalxai.plots.effect_figures import METHOD_NAMES  # noqa: E402

__all__ = ["PANELS", "plot_sensitivity"]

#: the columns of the figure: (aggregation, quantity, title)
PANELS = (
    ("hparam_mean", "corr", "corr(ITE_Y, ITE_E), mean over hyperparameters"),
    ("pooled", "corr", "corr(ITE_Y, ITE_E), pooled"),
    ("hparam_mean", "gap_to_identity", "gap to Identity (mean over hyperparameters)"),
    ("placebo", "placebo_corr", "placebo's corr (no effect by construction)"),
)
LINESTYLES = {"paper": "-", "public_code": "--"}
MARKERS = {"eq4": "o", "mmd_unbiased": "^"}


def plot_sensitivity(table: pd.DataFrame, path: str | os.PathLike[str], stat: str = "pearson") -> Figure:
    """One row per explanation method, one column per headline quantity (:data:`PANELS`),
    buckets on x; one line per configuration: colour = bandwidth rule, line style =
    normalisation, marker = estimator; bands are the bootstrap intervals."""
    df = table[(table["stat"] == stat) & (table["method"] != "identity")]
    if df.empty:
        raise ValueError(f"the sensitivity table has no rows for statistic {stat!r} and a method besides identity")
    methods = list(dict.fromkeys(df["method"]))
    buckets = list(dict.fromkeys(table["bucket"]))
    configs = df[["normalisation", "bandwidth", "estimator"]].drop_duplicates().itertuples(index=False)
    configs = [tuple(c) for c in configs]
    bandwidths = list(dict.fromkeys(c[1] for c in configs))
    colors = dict(zip(bandwidths, sns.color_palette("Dark2", max(len(bandwidths), 3))))
    sns.set_theme(style="whitegrid")
    fig, axes = plt.subplots(len(methods), len(PANELS), figsize=(4.3 * len(PANELS) + 2, 2.9 * len(methods)),
                             sharex=True, sharey="col", squeeze=False)
    x = np.arange(len(buckets))
    for row, m in zip(axes, methods):
        for ax, (agg, quantity, title) in zip(row, PANELS):
            sub = df[(df["method"] == m) & (df["aggregation"] == agg) & (df["quantity"] == quantity)]
            for norm, bw, est in configs:
                c = sub[(sub["normalisation"] == norm) & (sub["bandwidth"] == bw) & (sub["estimator"] == est)]
                c = c.set_index("bucket").reindex(buckets)
                ax.plot(x, c["value"].values, color=colors[bw], ls=LINESTYLES.get(norm, "-"),
                        marker=MARKERS.get(est, "o"), ms=3, lw=1)
                ax.fill_between(x, c["lower"].values, c["upper"].values, color=colors[bw], alpha=0.06, lw=0)
            ax.axhline(0, color="0.5", lw=0.8)
            if m == methods[0]:
                ax.set_title(title, fontsize=9)
            ax.set_xticks(x)
            ax.set_xticklabels(buckets, rotation=45, ha="right", fontsize=7)
        row[0].set_ylabel(METHOD_NAMES.get(m, m), fontsize=9)
    handles = [Line2D([], [], color=colors[b], label=f"bandwidth {b}") for b in bandwidths]
    handles += [Line2D([], [], color="0.3", ls=LINESTYLES.get(n, "-"), label=f"normalisation {n}")
                for n in dict.fromkeys(c[0] for c in configs)]
    handles += [Line2D([], [], color="0.3", marker=MARKERS.get(e, "o"), ls="", label=f"estimator {e}")
                for e in dict.fromkeys(c[2] for c in configs)]
    axes[0, -1].legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False, fontsize=8)
    fig.suptitle(f"Sensitivity of the headline numbers to the estimator's choices ({stat}; bands: bootstrap intervals)")
    fig.tight_layout()
    return save_figure(fig, path)
