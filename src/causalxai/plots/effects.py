"""Figures of the effects step (paper 000 Fig. 2, 3 and 4), read from ``effects.nc``.

Each ``plot_*`` function draws from a small ``*_frame`` function that returns the plotted
numbers as a tidy :class:`pandas.DataFrame` (so what a figure shows can be checked against
the dataset), writes a PNG atomically and returns the (closed) figure for inspection.

``effects.nc`` (see :mod:`causalxai.effects.table`): dims ``effect`` (total, direct),
``method`` (identity first), ``hparam``, ``value``, ``bucket``, ``image``, ``stat``; variables
``ite_y``, ``ite_e``, ``ite_e_mediated``, ``corr``, ``corr_hparam``, ``corr_mediated``,
``gap_to_identity``, ``n_treated``, ``n_control``; coordinate ``value_label(hparam, value)``.
Empty cells and buckets are NaN: they are left out of the frames and leave gaps in lines.
"""

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
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from causalxai.plots._figure import DPI, save_figure as _save  # noqa: E402,F401

__all__ = [
    "correlation_frame",
    "ite_by_bucket_frame",
    "ite_scatter_frame",
    "mediation_frame",
    "plot_correlations",
    "plot_ite_by_bucket",
    "plot_ite_scatter",
    "plot_mediation",
]

#: the methods in their usual order; their colours are fixed so every figure agrees
METHOD_ORDER = ("identity", "gradient", "smoothgrad", "integrated_gradients", "grad_cam")
METHOD_NAMES = {
    "identity": "Identity",
    "gradient": "Gradient",
    "smoothgrad": "SmoothGrad",
    "integrated_gradients": "Integrated Gradients",
    "grad_cam": "Grad-CAM",
}
STATS = ("pearson", "spearman")
EFFECTS = ("total", "direct")


# --- helpers -----------------------------------------------------------------------------


def _method_colors(methods) -> dict[str, tuple]:
    """One colour per method, fixed by the method's place in METHOD_ORDER."""
    palette = sns.color_palette("tab10", 10)
    extra = iter(palette[len(METHOD_ORDER):])
    colors = {}
    for m in methods:
        if m in METHOD_ORDER:
            colors[m] = palette[METHOD_ORDER.index(m)]
        else:
            colors[m] = next(extra, (0.3, 0.3, 0.3))
    return colors


def _name(method: str) -> str:
    return METHOD_NAMES.get(method, method)


def _strs(values) -> list[str]:
    return [str(v) for v in np.asarray(values).tolist()]


def _check_choice(what: str, value: str, allowed) -> None:
    allowed = list(allowed)
    if value not in allowed:
        raise ValueError(f"{what} {value!r} is not in effects.nc; available: {', '.join(map(str, allowed))}")


def _check_hparam(effects: xr.Dataset, hparam: str) -> None:
    _check_choice("hyperparameter", hparam, _strs(effects["hparam"].values))


def _check_effect(effects: xr.Dataset, effect: str) -> None:
    _check_choice("effect", effect, _strs(effects["effect"].values) if "effect" in effects.dims else ["total"])


def _check_stat(effects: xr.Dataset, stat: str) -> None:
    _check_choice("statistic", stat, _strs(effects["stat"].values))


def _of_effect(da: xr.DataArray, effect: str) -> xr.DataArray:
    """``da`` for one effect (an ``effects.nc`` without the effect dim holds the total one)."""
    return da.sel({"effect": effect}, drop=True) if "effect" in da.dims else da


def _buckets(effects: xr.Dataset) -> list[str]:
    return _strs(effects["bucket"].values)


def _bucket_axis(ax, buckets: list[str], label: bool = True) -> None:
    ax.set_xticks(range(len(buckets)))
    ax.set_xticklabels(buckets, rotation=45, ha="right")
    ax.set_xlim(-0.5, len(buckets) - 0.5)
    if label:
        ax.set_xlabel("accuracy percentile bucket")


def _title(effects: xr.Dataset, what: str) -> str:
    ds, kernel = effects.attrs.get("dataset", ""), effects.attrs.get("kernel", "")
    parts = [p for p in (str(ds), what, f"kernel {kernel}" if kernel else "") if p]
    return ", ".join(parts)




def _line(ax, buckets: list[str], y, **kwargs) -> None:
    """A line over bucket positions; NaN buckets leave a gap, single points keep a marker."""
    ax.plot(np.arange(len(buckets)), np.asarray(y, dtype=float), marker="o", ms=4, **kwargs)


# --- frames --------------------------------------------------------------------------------


def correlation_frame(effects: xr.Dataset, effect: str = "total") -> pd.DataFrame:
    """``corr`` of one effect as rows (method, bucket, stat, corr), NaN kept."""
    _check_effect(effects, effect)
    corr = _of_effect(effects["corr"], effect).transpose("method", "bucket", "stat")
    methods, buckets, stats = (_strs(corr[d].values) for d in ("method", "bucket", "stat"))
    idx = pd.MultiIndex.from_product([methods, buckets, stats], names=["method", "bucket", "stat"])
    return pd.DataFrame({"corr": np.asarray(corr.values, dtype=float).ravel()}, index=idx).reset_index()


def ite_by_bucket_frame(effects: xr.Dataset, hparam: str = "optimizer", effect: str = "total") -> pd.DataFrame:
    """Finite ITEs of ``hparam`` on Y and on each method's E (paper 000 Fig. 2).

    Rows (output, bucket, value, value_label, image, ite), ``output`` being ``"Y"`` or a
    method name; cells of padded values (label '') or without models are left out.
    """
    _check_hparam(effects, hparam)
    _check_effect(effects, effect)
    sel = {"hparam": hparam}
    y = effects["ite_y"].sel(sel).transpose("value", "bucket", "image")
    e = _of_effect(effects["ite_e"], effect).sel(sel).transpose("method", "value", "bucket", "image")
    outputs = ["Y", *_strs(e["method"].values)]
    data = np.concatenate([np.asarray(y.values, dtype=float)[None], np.asarray(e.values, dtype=float)])
    values = np.asarray(y["value"].values).astype(int)
    labels = _strs(effects["value_label"].sel(sel).sel({"value": values}).values)
    idx = pd.MultiIndex.from_product(
        [outputs, values, _strs(y["bucket"].values), np.asarray(y["image"].values).tolist()],
        names=["output", "value", "bucket", "image"],
    )
    df = pd.DataFrame({"ite": data.ravel()}, index=idx).reset_index()
    df.insert(3, "value_label", df["value"].map(dict(zip(values.tolist(), labels))))
    df = df[np.isfinite(df["ite"]) & (df["value_label"] != "")]
    return df[["output", "bucket", "value", "value_label", "image", "ite"]].reset_index(drop=True)


def ite_scatter_frame(effects: xr.Dataset, effect: str = "total", include_identity: bool = False) -> pd.DataFrame:
    """Pairs (ITE_Y, ITE_E) over every (hparam, value, image) of each bucket (paper 000 Fig. 3, left).

    Rows (method, bucket, hparam, value, image, ite_y, ite_e), both ITEs finite.
    """
    _check_effect(effects, effect)
    e = _of_effect(effects["ite_e"], effect).transpose("method", "bucket", "hparam", "value", "image")
    methods = _strs(e["method"].values)
    keep = [m for m in methods if include_identity or m != "identity"]
    e = e.isel({"method": [methods.index(m) for m in keep]})
    y = effects["ite_y"].transpose("bucket", "hparam", "value", "image")
    ev = np.asarray(e.values, dtype=float)
    yv = np.broadcast_to(np.asarray(y.values, dtype=float)[None], ev.shape)
    idx = pd.MultiIndex.from_product(
        [keep, _strs(e["bucket"].values), _strs(e["hparam"].values),
         np.asarray(e["value"].values).astype(int).tolist(), np.asarray(e["image"].values).tolist()],
        names=["method", "bucket", "hparam", "value", "image"],
    )
    df = pd.DataFrame({"ite_y": yv.ravel(), "ite_e": ev.ravel()}, index=idx).reset_index()
    return df[np.isfinite(df["ite_y"]) & np.isfinite(df["ite_e"])].reset_index(drop=True)


def mediation_frame(effects: xr.Dataset, stat: str = "pearson") -> pd.DataFrame:
    """The numbers of paper 000 Fig. 4 as rows (quantity, method, bucket, corr), NaN kept.

    ``quantity``: ``total`` and ``direct`` (``corr``), ``mediated`` (``corr_mediated`` =
    total − direct) and ``gap_to_identity`` (identity's mediated − the method's).
    """
    _check_stat(effects, stat)
    sources = {
        "total": effects["corr"].sel({"effect": "total"}, drop=True),
        "direct": effects["corr"].sel({"effect": "direct"}, drop=True),
        "mediated": effects["corr_mediated"],
        "gap_to_identity": effects["gap_to_identity"],
    }
    frames = []
    for quantity, da in sources.items():
        da = da.sel({"stat": stat}, drop=True).transpose("method", "bucket")
        idx = pd.MultiIndex.from_product([_strs(da["method"].values), _strs(da["bucket"].values)],
                                         names=["method", "bucket"])
        df = pd.DataFrame({"corr": np.asarray(da.values, dtype=float).ravel()}, index=idx).reset_index()
        df.insert(0, "quantity", quantity)
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


# --- figures -------------------------------------------------------------------------------


def plot_correlations(effects: xr.Dataset, path: str | os.PathLike[str]) -> Figure:
    """Pearson and Spearman correlation of ITE_Y and ITE_E (total effect) per bucket, one
    line per method (paper 000 Fig. 3, right). Identity (E := Y) is the reference at 1."""
    df = correlation_frame(effects, "total")
    buckets = _buckets(effects)
    methods = list(dict.fromkeys(df["method"]))
    colors = _method_colors(methods)
    sns.set_theme(style="whitegrid")
    stats = [s for s in STATS if s in set(df["stat"])] or list(dict.fromkeys(df["stat"]))
    fig, axes = plt.subplots(1, len(stats), figsize=(5.2 * len(stats) + 1.6, 4), sharey=True, squeeze=False)
    for ax, stat in zip(axes[0], stats):
        sub = df[df["stat"] == stat].set_index(["method", "bucket"])["corr"]
        for m in methods:
            _line(ax, buckets, sub.loc[m].reindex(buckets).values, color=colors[m], label=_name(m))
        ax.set_title(f"{stat.capitalize()} corr(ITE_Y, ITE_E)")
        ax.set_ylabel("correlation")
        ax.axhline(0, color="0.5", lw=0.8)
        _bucket_axis(ax, buckets)
    axes[0, -1].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, title="method")
    fig.suptitle(_title(effects, "total effects"))
    fig.tight_layout()
    return _save(fig, path)


def plot_ite_by_bucket(effects: xr.Dataset, path: str | os.PathLike[str], hparam: str = "optimizer") -> Figure:
    """ITE of one hyperparameter's values on Y (first panel) and on each method's E (total
    effect, one panel each) per accuracy bucket: the distribution over probe images as box
    plots, one colour per value (paper 000 Fig. 2). Each panel has its own scale: ITEs are
    compared across buckets and outputs only relatively."""
    df = ite_by_bucket_frame(effects, hparam, "total")
    buckets = _buckets(effects)
    outputs = ["Y", *_strs(effects["method"].values)]
    labels = [lab for lab in _strs(effects["value_label"].sel({"hparam": hparam}).values) if lab]
    palette = dict(zip(labels, sns.color_palette("Set2", max(len(labels), 1))))
    sns.set_theme(style="whitegrid")
    ncols = min(len(outputs), 3)
    nrows = -(-len(outputs) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.4 * ncols, 3.4 * nrows), squeeze=False)
    for ax, out in zip(axes.flat, outputs):
        sub = df[df["output"] == out]
        if len(sub):
            with warnings.catch_warnings():  # seaborn 0.13 passes boxplot's vert= (deprecated in mpl 3.11)
                warnings.filterwarnings("ignore", message=".*vert: bool", category=DeprecationWarning)
                sns.boxplot(
                    data=sub, x="bucket", y="ite", hue="value_label", order=buckets, hue_order=labels,
                    palette=palette, showfliers=False, linewidth=0.8, ax=ax, legend=False,
                )
        else:
            ax.text(0.5, 0.5, "no finite ITE", ha="center", va="center", transform=ax.transAxes, color="0.4")
        ax.set_title("Y (prediction)" if out == "Y" else f"E: {_name(out)}")
        ax.set_ylabel("ITE_Y" if out == "Y" else "ITE_E")
        _bucket_axis(ax, buckets)
    for ax in axes.flat[len(outputs):]:
        ax.set_visible(False)
    handles = [plt.Rectangle((0, 0), 1, 1, facecolor=palette[lab], edgecolor="0.3") for lab in labels]
    fig.legend(handles, labels, title=hparam, loc="upper left", bbox_to_anchor=(1.0, 0.95), frameon=False)
    fig.suptitle(_title(effects, f"ITE of {hparam} (total effect) per bucket"))
    fig.tight_layout()
    return _save(fig, path, bbox_inches="tight")


def plot_ite_scatter(effects: xr.Dataset, path: str | os.PathLike[str], effect: str = "total") -> Figure:
    """ITE_Y (x) against ITE_E (y) over every (hyperparameter, value, image) entry: one row
    per explanation method (Identity left out: it lies on x = y), one column per accuracy
    bucket, each panel annotated with its Pearson r from ``corr`` (paper 000 Fig. 3, left)."""
    df = ite_scatter_frame(effects, effect)
    buckets = _buckets(effects)
    methods = [m for m in _strs(effects["method"].values) if m != "identity"]
    if not methods:
        raise ValueError("effects.nc has no explanation method besides identity: nothing to scatter")
    corr = _of_effect(effects["corr"], effect).sel({"stat": "pearson"}, drop=True)
    colors = _method_colors(methods)
    sns.set_theme(style="whitegrid")
    fig, axes = plt.subplots(
        len(methods), len(buckets), figsize=(1.9 * len(buckets) + 1.0, 1.8 * len(methods) + 0.8),
        sharex="col", sharey="row", squeeze=False,
    )
    groups = {k: g for k, g in df.groupby(["method", "bucket"], sort=False)}
    for i, m in enumerate(methods):
        for j, b in enumerate(buckets):
            ax = axes[i, j]
            g = groups.get((m, b))
            if g is not None:
                ax.scatter(g["ite_y"].values, g["ite_e"].values, s=2, alpha=0.35, linewidths=0,
                           color=colors[m], rasterized=True)
            r = float(corr.sel({"method": m, "bucket": b}).values)
            ax.text(0.04, 0.95, "r = n/a" if not np.isfinite(r) else f"r = {r:.2f}", transform=ax.transAxes,
                    ha="left", va="top", fontsize=8,
                    bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "none", "alpha": 0.7})
            ax.tick_params(labelsize=7)
            ax.xaxis.set_major_locator(MaxNLocator(3))
            ax.yaxis.set_major_locator(MaxNLocator(4))
            if i == 0:
                ax.set_title(b, fontsize=9)
            if j == 0:
                ax.set_ylabel(f"{_name(m)}\nITE_E", fontsize=8)
            if i == len(methods) - 1:
                ax.set_xlabel("ITE_Y", fontsize=8)
    fig.suptitle(_title(effects, f"ITE_Y vs ITE_E ({effect} effect) per accuracy bucket"))
    fig.tight_layout()
    return _save(fig, path)


def plot_mediation(effects: xr.Dataset, path: str | os.PathLike[str], stat: str = "pearson") -> Figure:
    """Total vs direct effect (paper 000 Fig. 4): (1) corr(ITE_Y, ITE_E) per bucket, total
    solid and direct (Y severed from H) dotted; (2) total − direct, the part mediated by Y;
    (3) each method's gap to Identity in the mediated part (Identity itself is 0)."""
    df = mediation_frame(effects, stat)
    buckets = _buckets(effects)
    methods = _strs(effects["method"].values)
    colors = _method_colors(methods)
    table = df.set_index(["quantity", "method", "bucket"])["corr"].sort_index()

    def series(quantity, m):
        return table.loc[(quantity, m)].reindex(buckets).values

    sns.set_theme(style="whitegrid")
    fig, axes = plt.subplots(1, 3, figsize=(15.5, 4.2))
    for m in methods:
        c = colors[m]
        _line(axes[0], buckets, series("total", m), color=c, ls="-")
        _line(axes[0], buckets, series("direct", m), color=c, ls=":", mfc="white")
        _line(axes[1], buckets, series("mediated", m), color=c)
        if m != "identity":
            _line(axes[2], buckets, series("gap_to_identity", m), color=c)
    label = stat.capitalize()
    axes[0].set_title(f"{label} corr(ITE_Y, ITE_E): total vs direct")
    axes[1].set_title("mediated by Y (total − direct)")
    axes[2].set_title("gap to Identity (mediated)")
    axes[0].set_ylabel("correlation")
    axes[1].set_ylabel("Δ correlation")
    axes[2].set_ylabel("Δ correlation")
    for ax in axes:
        ax.axhline(0, color="0.5", lw=0.8)
        _bucket_axis(ax, buckets)
    handles = [Line2D([], [], color=colors[m], marker="o", ms=4, label=_name(m)) for m in methods]
    handles += [Line2D([], [], color="0.3", ls="-", label="total effect"),
                Line2D([], [], color="0.3", ls=":", label="direct effect")]
    axes[2].legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.suptitle(_title(effects, f"total vs direct effects ({stat})"))
    fig.tight_layout()
    return _save(fig, path)
