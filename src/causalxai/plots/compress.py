"""Figure of the compress step (paper 004 §4.3, Table 1 as a figure), read from ``compress.nc``.

``compress.nc`` (dim ``model``: ``original``, ``C1``, …) holds ``n_params``,
``test_accuracy``, ``compression`` (share of the original's parameters removed),
``n_nodes``, ``coverage`` and the cost figures. As in :mod:`causalxai.plots.tracer_figures`,
:func:`compression_frame` returns the plotted numbers and :func:`plot_compression` writes
the PNG atomically and returns the closed figure.
"""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
import xarray as xr  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import PercentFormatter  # noqa: E402

from causalxai.plots._figure import DPI, save_figure as _save  # noqa: E402,F401

__all__ = ["compression_frame", "plot_compression"]

ORIGINAL_COLOR = "#9aa5b1"
COMPRESSED_COLOR = "#1f77b4"
NEEDED = ("n_params", "test_accuracy", "compression")


def compression_frame(ds: xr.Dataset) -> pd.DataFrame:
    """One row per model: ``model, n_params, test_accuracy, compression, n_nodes, coverage,
    label`` (``"C1\\n3 nodes, 85 %"``; ``"original"`` for the original)."""
    missing = [n for n in NEEDED if n not in ds.variables]
    if missing or "model" not in ds.dims:
        have = ", ".join(sorted(map(str, ds.data_vars))) or "none"
        raise ValueError(f"compress dataset lacks {', '.join(missing) or 'dim model'} (it holds: {have}); "
                         "is it compress.nc?")
    names = [str(v) for v in np.asarray(ds["model"].values).tolist()]
    n = len(names)
    nodes = ds["n_nodes"].values if "n_nodes" in ds else np.full(n, -1)
    cov = ds["coverage"].values if "coverage" in ds else np.full(n, np.nan)
    labels = []
    for name, k, c in zip(names, nodes, cov):
        if name == "original" or not np.isfinite(c):
            labels.append(name)
        else:
            labels.append(f"{name}\n{int(k)} nodes, {c:.0%}")
    return pd.DataFrame({
        "model": names,
        "n_params": np.asarray(ds["n_params"].values, dtype=float),
        "test_accuracy": np.asarray(ds["test_accuracy"].values, dtype=float),
        "compression": np.asarray(ds["compression"].values, dtype=float),
        "n_nodes": np.asarray(nodes, dtype=int),
        "coverage": np.asarray(cov, dtype=float),
        "label": labels,
    })


def plot_compression(ds: xr.Dataset, path: str | os.PathLike[str]) -> Figure:
    """Paper 004 Table 1 as a figure: per model the parameter count (log scale) annotated
    with the share of parameters removed, and the test accuracy annotated with its value."""
    df = compression_frame(ds)
    x = np.arange(len(df))
    colors = [ORIGINAL_COLOR if m == "original" else COMPRESSED_COLOR for m in df["model"]]
    sns.set_theme(style="whitegrid")
    fig, (ax_p, ax_a) = plt.subplots(1, 2, figsize=(max(7.5, 1.7 * len(df) + 3.5), 4.2))
    bars = ax_p.bar(x, df["n_params"].values, color=colors, edgecolor="0.2", linewidth=0.6)
    ax_p.set_yscale("log")
    for rect, n, comp, m in zip(bars, df["n_params"], df["compression"], df["model"]):
        text = f"{n:,.0f}" + ("" if m == "original" else f"\n−{comp:.1%}")
        ax_p.annotate(text, (rect.get_x() + rect.get_width() / 2, rect.get_height()), ha="center", va="bottom",
                      fontsize=7, xytext=(0, 2), textcoords="offset points")
    top = float(np.nanmax(df["n_params"].values)) if len(df) else 1.0
    bottom = float(np.nanmin(df["n_params"].values)) if len(df) else 1.0
    ax_p.set_ylim(max(bottom / 10, 1), top * 20)
    ax_p.set_ylabel("parameters (log scale)")
    ax_p.set_title("model size (share of parameters removed)", fontsize=10)
    acc = df["test_accuracy"].values
    bars = ax_a.bar(x, acc, color=colors, edgecolor="0.2", linewidth=0.6)
    for rect, a in zip(bars, acc):
        if np.isfinite(a):
            ax_a.annotate(f"{a:.2%}", (rect.get_x() + rect.get_width() / 2, a), ha="center", va="bottom", fontsize=7,
                          xytext=(0, 2), textcoords="offset points")
    finite = acc[np.isfinite(acc)]
    low = float(finite.min()) if finite.size else 0.0
    bottom_a = max(0.0, low - max(0.05, 0.5 * (1.0 - low)))
    ax_a.set_ylim(bottom_a, 1.0 + 0.08 * (1.0 - bottom_a))  # headroom for the labels
    ax_a.set_yticks([t for t in ax_a.get_yticks() if bottom_a - 1e-9 <= t <= 1.0 + 1e-9])
    ax_a.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax_a.set_ylabel("test accuracy")
    ax_a.set_title("accuracy after retraining", fontsize=10)
    for ax in (ax_p, ax_a):
        ax.set_xticks(x)
        ax.set_xticklabels(df["label"].tolist(), fontsize=8)
    fig.suptitle("TRACER-compressed models (paper 004 Table 1)")
    fig.tight_layout()
    return _save(fig, path)
