"""Figures of the effects step (paper 000 Fig. 3, right: correlation of ITE_Y and ITE_E)."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402
import xarray as xr  # noqa: E402

from causalxai.io import atomic_path  # noqa: E402

__all__ = ["plot_correlations"]


def plot_correlations(effects: xr.Dataset, path: str | os.PathLike[str]) -> None:
    """Pearson and Spearman correlation of ITE_Y and ITE_E per bucket, one line per method."""
    df = effects["corr"].to_dataframe().reset_index()
    sns.set_theme(style="whitegrid")
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, stat in zip(axes, ("pearson", "spearman")):
        sub = df[df["stat"] == stat]
        sns.lineplot(data=sub, x="bucket", y="corr", hue="method", marker="o", ax=ax, sort=False)
        ax.set_title(f"{stat.capitalize()} corr(ITE_Y, ITE_E)")
        ax.set_xlabel("accuracy percentile bucket")
        ax.set_ylabel("correlation")
        ax.axhline(0, color="0.5", lw=0.8)
        ax.tick_params(axis="x", rotation=45)
    axes[0].get_legend().remove()
    sns.move_legend(axes[1], "upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.suptitle(f"{effects.attrs.get('dataset', '')} total effects, kernel {effects.attrs.get('kernel', '')}")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
