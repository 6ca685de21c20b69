"""Figures of what the kernel sees (paper 000 Fig. 7 and Fig. 8), from :mod:`causalxai.study.kernel_figures`."""

from __future__ import annotations

import os
import warnings

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
import xarray as xr  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from causalxai.plots._figure import save_figure  # noqa: E402
from causalxai.plots.effect_figures import METHOD_NAMES  # noqa: E402

__all__ = ["plot_kernel_examples", "plot_kernel_comparison"]


def plot_kernel_examples(examples: xr.Dataset, path: str | os.PathLike[str]) -> Figure:
    """Paper 000 Fig. 7: one row per bucket (low, mid, top): the dissimilarity
    ``‖φ(Y_{h=n}) − φ(Y_{h≠n})‖²`` between treated (rows) and control (columns) models with its
    mean (the cell's ITE on this image), the treated and the control models' softmax
    outputs (one row per model, the true class framed), and the same dissimilarity for the
    explanations when they are given. Each matrix has its own colour scale."""
    a = examples.attrs
    buckets = [str(b) for b in examples["bucket"].values]
    has_e = bool(np.isfinite(examples["d_e"].values).any())
    ncol = 4 if has_e else 3
    fig, axes = plt.subplots(len(buckets), ncol, figsize=(3.3 * ncol, 2.9 * len(buckets)), squeeze=False)
    for row, b in zip(axes, buckets):
        d = examples["d_y"].sel(bucket=b).values
        im = row[0].imshow(d, vmin=0, cmap="viridis")
        fig.colorbar(im, ax=row[0], shrink=0.8)
        row[0].set_title(f"{b}: d(Y), mean {np.nanmean(d):.3g}", fontsize=8)
        row[0].set_xlabel(f"{a['hparam']} ≠ {a['value']}", fontsize=7)
        row[0].set_ylabel(f"{a['hparam']} = {a['value']}", fontsize=7)
        for k, (name, lab) in enumerate((("y_treated", "="), ("y_control", "≠"))):
            ax = row[1 + k]
            ax.imshow(examples[name].sel(bucket=b).values, vmin=0, vmax=1, cmap="magma", aspect="auto")
            if a["label"] >= 0:
                ax.add_patch(plt.Rectangle((a["label"] - 0.5, -0.5), 1, examples[name].shape[1], fill=False, ec="c",
                                           lw=1))
            ax.set_title(f"Y, {a['hparam']} {lab} {a['value']}", fontsize=8)
            ax.set_xlabel("class", fontsize=7)
        if has_e:
            de = examples["d_e"].sel(bucket=b).values
            im = row[3].imshow(de, vmin=0, cmap="viridis")
            fig.colorbar(im, ax=row[3], shrink=0.8)
            row[3].set_title(f"d(E {METHOD_NAMES.get(a['method'], a['method'])}), mean {np.nanmean(de):.3g}",
                             fontsize=8)
    for ax in axes.flat:
        ax.tick_params(labelsize=6)
    fig.suptitle(f"RBF kernel (γ = 1/d) dissimilarities ‖φ(a) − φ(b)‖², {a['hparam']} = {a['value']} vs ≠, "
                 f"probe image {a['image']} (class {a['label']})", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_kernel_comparison(frame: pd.DataFrame, path: str | os.PathLike[str], hparam: str = "optimizer") -> Figure:
    """Paper 000 Fig. 8: ITE_E over the probe images for each method (x) and value (colour),
    one panel per kernel (each with its own scale): does the kernel change the ranking?"""
    if frame.empty:
        raise ValueError("kernel_comparison gave no ITE: no value of the hyperparameter has treated and control models")
    kernels = list(dict.fromkeys(frame["kernel"]))
    df = frame.assign(method=frame["method"].map(lambda m: METHOD_NAMES.get(m, m)))
    sns.set_theme(style="whitegrid")
    fig, axes = plt.subplots(1, len(kernels), figsize=(4.2 * len(kernels), 3.8), squeeze=False)
    for ax, kern in zip(axes[0], kernels):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            sns.boxplot(data=df[df["kernel"] == kern], x="method", y="ite", hue="value", showfliers=False,
                        linewidth=0.7, ax=ax, legend=kern == kernels[-1])
        ax.set_title(f"kernel {kern}")
        ax.set_xlabel("")
        ax.set_ylabel("ITE_E" if kern == kernels[0] else "")
        ax.tick_params(axis="x", rotation=30, labelsize=7)
    if axes[0, -1].get_legend() is not None:
        sns.move_legend(axes[0, -1], "upper left", bbox_to_anchor=(1.01, 1.0), title=hparam, frameon=False)
    fig.suptitle(f"ITE of {hparam} on E (all models) under each kernel")
    fig.tight_layout()
    return save_figure(fig, path, bbox_inches="tight")
