"""Figure: the zoo's accuracy distribution and its percentile buckets (paper 000 Table 2)."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
import xarray as xr  # noqa: E402

from causalxai.io import atomic_path  # noqa: E402

__all__ = ["plot_accuracy_buckets"]


def plot_accuracy_buckets(buckets: xr.Dataset, path: str | os.PathLike[str]) -> None:
    """Histogram of accuracy coloured by bucket, with the bucket edges as lines."""
    labels = list(buckets["bucket_label"].values)
    df = pd.DataFrame(
        {"accuracy": buckets["accuracy"].values, "bucket": np.asarray(labels)[buckets["bucket"].values]}
    )
    sns.set_theme(style="whitegrid")
    fig, ax = plt.subplots(figsize=(9, 4.5))
    sns.histplot(
        data=df, x="accuracy", hue="bucket", hue_order=labels, multiple="stack", bins=40,
        palette="viridis", ax=ax,
    )
    for v in buckets["accuracy_at_lower"].values[1:]:
        ax.axvline(float(v), color="0.3", lw=0.8, ls="--")
    ax.set_xlabel(f"{buckets.attrs.get('metric', 'test_accuracy')} ({len(df)} models)")
    ax.set_ylabel("models")
    ax.set_title(f"{buckets.attrs.get('dataset', '')}: accuracy percentile buckets")
    sns.move_legend(ax, "upper left", bbox_to_anchor=(1.01, 1.0), title="percentile bucket", frameon=False)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
