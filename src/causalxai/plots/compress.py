"""Figure of the compress step (paper 004 §4.3, Table 1 as a figure), read from ``compress.nc``.

``compress.nc`` (dim ``model``: ``original``, ``C1``, …, the controls ``C1_rand1``,
``C1_rw`` and the paper's ``paper_C1`` …) holds ``n_params``, ``test_accuracy``,
``compression`` (share of the original's parameters removed), ``n_nodes``, ``coverage``,
``kind``, ``accuracy_mean`` / ``accuracy_std`` over the retraining seeds and the cost
figures (older files without ``kind`` and the seeds: every model is TRACER's, one seed).
As in :mod:`causalxai.plots.tracer_figures`,
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

__all__ = ["compression_frame", "plot_compression", "plot_compression_skipped"]

ORIGINAL_COLOR = "#9aa5b1"
COMPRESSED_COLOR = "#1f77b4"
#: colour of each kind of model (compress.nc ``kind``)
KIND_COLORS = {"original": ORIGINAL_COLOR, "tracer": COMPRESSED_COLOR, "random_partition": "#ff7f0e",
               "random_weights": "#d62728", "paper_table2": "#2ca02c"}
KIND_LABELS = {"original": "original", "tracer": "TRACER", "random_partition": "random contiguous partition",
               "random_weights": "random-weight mechanism", "paper_table2": "paper Table 2"}
NEEDED = ("n_params", "test_accuracy", "compression")


def compression_frame(ds: xr.Dataset) -> pd.DataFrame:
    """One row per model: ``model, kind, n_params, test_accuracy, accuracy_mean, accuracy_std,
    compression, n_nodes, coverage, label`` (``"C1\\n3 nodes, 85 %"``; a control
    ``"C1_rand1\\n3 nodes"``; ``"original"``, ``"paper_C1"`` as named)."""
    missing = [n for n in NEEDED if n not in ds.variables]
    if missing or "model" not in ds.dims:
        have = ", ".join(sorted(map(str, ds.data_vars))) or "none"
        raise ValueError(f"compress dataset lacks {', '.join(missing) or 'dim model'} (it holds: {have}); "
                         "is it compress.nc?")
    names = [str(v) for v in np.asarray(ds["model"].values).tolist()]
    n = len(names)
    nodes = ds["n_nodes"].values if "n_nodes" in ds else np.full(n, -1)
    cov = ds["coverage"].values if "coverage" in ds else np.full(n, np.nan)
    kinds = ([str(v) for v in ds["kind"].values] if "kind" in ds
             else ["original" if m == "original" else "tracer" for m in names])
    labels = []
    for name, kind, k, c in zip(names, kinds, nodes, cov):
        if kind == "tracer" and np.isfinite(c):
            labels.append(f"{name}\n{int(k)} nodes, {c:.0%}")
        elif kind in ("random_partition", "random_weights") and k > 0:
            labels.append(f"{name}\n{int(k)} nodes")
        else:
            labels.append(name)
    acc = np.asarray(ds["test_accuracy"].values, dtype=float)
    return pd.DataFrame({
        "model": names,
        "kind": kinds,
        "n_params": np.asarray(ds["n_params"].values, dtype=float),
        "test_accuracy": acc,
        "accuracy_mean": np.asarray(ds["accuracy_mean"].values, dtype=float) if "accuracy_mean" in ds else acc,
        "accuracy_std": (np.asarray(ds["accuracy_std"].values, dtype=float) if "accuracy_std" in ds
                         else np.zeros(n)),
        "compression": np.asarray(ds["compression"].values, dtype=float),
        "n_nodes": np.asarray(nodes, dtype=int),
        "coverage": np.asarray(cov, dtype=float),
        "label": labels,
    })


def plot_compression(ds: xr.Dataset, path: str | os.PathLike[str]) -> Figure:
    """Paper 004 Table 1 as a figure, with the controls: per model the parameter count (log
    scale) annotated with the share of parameters removed; the test accuracy, mean ± std over
    the retraining seeds, annotated with the mean; and accuracy against parameters, coloured
    by kind (TRACER, random contiguous partition, random-weight mechanism, paper Table 2)."""
    df = compression_frame(ds)
    x = np.arange(len(df))
    colors = [KIND_COLORS.get(k, COMPRESSED_COLOR) for k in df["kind"]]
    sns.set_theme(style="whitegrid")
    fig, (ax_p, ax_a, ax_s) = plt.subplots(1, 3, figsize=(max(11.0, 1.2 * len(df) + 6.0), 4.8),
                                           gridspec_kw={"width_ratios": [1.0, 1.0, 0.8]})
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
    acc = df["accuracy_mean"].values
    bars = ax_a.bar(x, acc, yerr=df["accuracy_std"].values, color=colors, edgecolor="0.2", linewidth=0.6,
                    error_kw={"elinewidth": 0.8, "capsize": 2})
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
    ax_a.set_title("accuracy after retraining (mean ± std over seeds)", fontsize=10)
    for ax in (ax_p, ax_a):
        ax.set_xticks(x)
        ax.set_xticklabels(df["label"].tolist(), fontsize=7, rotation=90)
    for kind, sub in df.groupby("kind", sort=False):
        ax_s.errorbar(sub["n_params"], sub["accuracy_mean"], yerr=sub["accuracy_std"], fmt="o", ms=5, capsize=2,
                      color=KIND_COLORS.get(kind, COMPRESSED_COLOR), label=KIND_LABELS.get(kind, kind))
    ax_s.set_xscale("log")
    ax_s.set_xlabel("parameters (log scale)")
    ax_s.set_ylabel("test accuracy")
    ax_s.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax_s.set_title("accuracy vs size, by kind", fontsize=10)
    ax_s.legend(fontsize=7, loc="lower right")
    fig.suptitle("TRACER-compressed models, matched controls and the paper's Table 2 models (paper 004 Table 1)")
    fig.tight_layout()
    return _save(fig, path)


def plot_compression_skipped(reason: str, path: str | os.PathLike[str]) -> Figure:
    """The compress step's figure when it is skipped (:func:`~causalxai.compress.build.compress_skip_reason`):
    the reason, wrapped, in place of Table 1."""
    import textwrap

    fig, ax = plt.subplots(figsize=(8.0, 2.4))
    ax.set_axis_off()
    ax.text(0.5, 0.5, "compressed models: skipped\n\n" + textwrap.fill(str(reason), 90), ha="center", va="center",
            fontsize=9, transform=ax.transAxes)
    return _save(fig, path, bbox_inches="tight")
