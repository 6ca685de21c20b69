"""Figures of the effects step (paper 000 Fig. 2, 3, 4, 10-13 and 16), read from ``effects.nc``.

Each ``plot_*`` function draws from a small ``*_frame`` function that returns the plotted
numbers as a tidy :class:`pandas.DataFrame` (so what a figure shows can be checked against
the dataset), writes a PNG atomically and returns the (closed) figure for inspection.

Conventions shared by every figure: correlations are drawn as the paper draws them, the
mean over hyperparameters (``corr_mean``) by default (``aggregation="pooled"`` draws
``corr``), with their 95 % bootstrap interval as a band; the bucket of all models (``0-100``)
sits right of a vertical rule; buckets whose cells all have fewer than ``min_models``
treated or control models (so no correlation) are shaded grey and labelled, and small
cells' boxes are grey in the ITE figures; the placebo hyperparameter is drawn beside the
real ones as the reference for "no effect". See :mod:`causalxai.study.effects` for the
variables.
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
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from causalxai.plots._figure import save_figure as _save  # noqa: E402

__all__ = [
    "correlation_frame",
    "ite_by_bucket_frame",
    "ite_scatter_frame",
    "mediation_frame",
    "usable_buckets",
    "plot_correlations",
    "plot_ite_by_bucket",
    "plot_ite_by_hparam",
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
AGGREGATIONS = {"hparam_mean": ("corr_mean", "mean over hyperparameters"), "pooled": ("corr", "pooled")}
SMALL_GREY = "0.88"


# --- helpers -----------------------------------------------------------------------------


def _method_colors(methods) -> dict[str, tuple]:
    """One colour per method, fixed by the method's place in METHOD_ORDER."""
    palette = sns.color_palette("tab10", 10)
    extra = iter(palette[len(METHOD_ORDER):])
    return {m: palette[METHOD_ORDER.index(m)] if m in METHOD_ORDER else next(extra, (0.3, 0.3, 0.3)) for m in methods}


def _name(method: str) -> str:
    return METHOD_NAMES.get(method, method)


def _strs(values) -> list[str]:
    return [str(v) for v in np.asarray(values).tolist()]


def _check_choice(what: str, value: str, allowed) -> None:
    allowed = list(allowed)
    if value not in allowed:
        raise ValueError(f"{what} {value!r} is not in effects.nc; available: {', '.join(map(str, allowed))}")


def _check_aggregation(aggregation: str) -> str:
    if aggregation not in AGGREGATIONS:
        raise ValueError(f"effects.aggregation {aggregation!r} is unknown: choose from {list(AGGREGATIONS)}")
    return AGGREGATIONS[aggregation][0]


def _buckets(effects: xr.Dataset) -> list[str]:
    return _strs(effects["bucket"].values)


def _real_hparams(effects: xr.Dataset) -> list[str]:
    kinds = _strs(effects["hparam_kind"].values) if "hparam_kind" in effects.coords else None
    names = _strs(effects["hparam"].values)
    return [h for i, h in enumerate(names) if kinds is None or kinds[i] == "real"]


def usable_buckets(effects: xr.Dataset) -> dict[str, bool]:
    """Per bucket: does any real cell have ``min_models`` treated and control models?"""
    real = _real_hparams(effects)
    ok = (effects["n_treated"] > 0) & (effects["n_control"] > 0)
    if "small_cell" in effects:
        ok = ok & ~effects["small_cell"]
    use = ok.sel({"hparam": real}).any(("hparam", "value"))
    return dict(zip(_buckets(effects), np.asarray(use.values, dtype=bool).tolist()))


def _bucket_axis(ax, effects: xr.Dataset, label: bool = True, shade: bool = True) -> None:
    """Bucket ticks; grey spans over buckets without a usable cell; a rule before ``0-100``."""
    buckets = _buckets(effects)
    ax.set_xticks(range(len(buckets)))
    ax.set_xticklabels(buckets, rotation=45, ha="right")
    ax.set_xlim(-0.5, len(buckets) - 0.5)
    if shade:
        for i, (b, ok) in enumerate(usable_buckets(effects).items()):
            if not ok:
                ax.axvspan(i - 0.5, i + 0.5, color=SMALL_GREY, zorder=0, lw=0)
    if "0-100" in buckets and len(buckets) > 1:
        ax.axvline(buckets.index("0-100") - 0.5, color="0.4", lw=0.8, ls="--")
    if label:
        ax.set_xlabel("accuracy percentile bucket")


def _title(effects: xr.Dataset, what: str) -> str:
    a = effects.attrs
    ds = a.get("dataset", "")
    kernel = a.get("kernel", "")
    if kernel == "rbf" and a.get("bandwidth"):
        kernel = f"rbf ({a['bandwidth']} bandwidth)"
    parts = [p for p in (str(ds), what, f"kernel {kernel}" if kernel else "") if p]
    return ", ".join(parts)


def _line(ax, y, lower=None, upper=None, split: int | None = None, **kwargs) -> None:
    """A line over bucket positions with an optional band; NaN buckets leave a gap, a point
    without finite neighbours gets an error bar. ``split``: the position of the bucket of
    all models, drawn apart from the line of the buckets."""
    y = np.asarray(y, dtype=float)
    lo = None if lower is None else np.asarray(lower, dtype=float)
    hi = None if upper is None else np.asarray(upper, dtype=float)
    x = np.arange(len(y))
    parts = [slice(0, len(y))] if split is None else [slice(0, split), slice(split, len(y))]
    label = kwargs.pop("label", None)
    for k, part in enumerate(parts):
        ax.plot(x[part], y[part], marker="o", ms=4, label=label if k == 0 else None, **kwargs)
        if lo is None:
            continue
        ax.fill_between(x[part], lo[part], hi[part], color=kwargs.get("color"), alpha=0.15, lw=0)
        yp = y[part]
        for i in range(len(yp)):
            alone = (i == 0 or not np.isfinite(yp[i - 1])) and (i == len(yp) - 1 or not np.isfinite(yp[i + 1]))
            j = x[part][i]
            if alone and np.isfinite(yp[i]) and np.isfinite(lo[j]):  # the interval as a bar (it need not hold y)
                ax.vlines(j, lo[j], hi[j], color=kwargs.get("color"), lw=2.5, alpha=0.35)


def _split(effects: xr.Dataset) -> int | None:
    buckets = _buckets(effects)
    return buckets.index("0-100") if "0-100" in buckets and len(buckets) > 1 else None


def _small_legend() -> Patch:
    return Patch(facecolor=SMALL_GREY, edgecolor="none", label="too few models (small cells)")


# --- frames --------------------------------------------------------------------------------


def correlation_frame(
    effects: xr.Dataset, effect: str = "total", aggregation: str = "hparam_mean", hparam: str | None = None
) -> pd.DataFrame:
    """Correlations of one effect as rows (method, bucket, stat, corr, lower, upper, band), NaN kept.

    ``aggregation``: ``hparam_mean`` (``corr_mean``, ``band`` its std/√n) or ``pooled``
    (``corr``, no band); ``hparam`` instead: that hyperparameter's ``corr_hparam`` (e.g.
    ``placebo``).
    """
    _check_choice("effect", effect, _strs(effects["effect"].values))
    if hparam is not None:
        _check_choice("hyperparameter", hparam, _strs(effects["hparam"].values))
        sel = {"effect": effect, "hparam": hparam}
        corr, ci, band = effects["corr_hparam"].sel(sel), effects["corr_hparam_ci"].sel(sel), None
    else:
        name = _check_aggregation(aggregation)
        corr, ci = effects[name].sel({"effect": effect}), effects[f"{name}_ci"].sel({"effect": effect})
        band = effects["corr_mean_band"].sel({"effect": effect}) if name == "corr_mean" else None
    corr = corr.transpose("method", "bucket", "stat")
    ci = ci.transpose("method", "bucket", "stat", "bound")
    methods, buckets, stats = (_strs(corr[d].values) for d in ("method", "bucket", "stat"))
    idx = pd.MultiIndex.from_product([methods, buckets, stats], names=["method", "bucket", "stat"])
    cv = np.asarray(ci.values, dtype=float)
    out = pd.DataFrame({
        "corr": np.asarray(corr.values, dtype=float).ravel(),
        "lower": cv[..., 0].ravel(), "upper": cv[..., 1].ravel(),
        "band": np.asarray(band.transpose("method", "bucket", "stat").values, dtype=float).ravel()
        if band is not None else np.nan,
    }, index=idx).reset_index()
    return out


def ite_by_bucket_frame(effects: xr.Dataset, hparam: str = "optimizer", effect: str = "total") -> pd.DataFrame:
    """Finite ITEs of ``hparam`` on Y and on each method's E (paper 000 Fig. 2).

    Rows (output, bucket, value, value_label, image, ite, small), ``output`` being ``"Y"`` or a
    method name; cells of padded values (label '') or without models are left out.
    """
    _check_choice("hyperparameter", hparam, _strs(effects["hparam"].values))
    _check_choice("effect", effect, _strs(effects["effect"].values))
    sel = {"hparam": hparam}
    y = effects["ite_y"].sel(sel).transpose("value", "bucket", "image")
    e = effects["ite_e"].sel({"effect": effect}, drop=True).sel(sel).transpose("method", "value", "bucket", "image")
    outputs = ["Y", *_strs(e["method"].values)]
    data = np.concatenate([np.asarray(y.values, dtype=float)[None], np.asarray(e.values, dtype=float)])
    values = np.asarray(y["value"].values).astype(int)
    labels = _strs(effects["value_label"].sel(sel).sel({"value": values}).values)
    buckets = _strs(y["bucket"].values)
    small = np.asarray(effects["small_cell"].sel(sel).transpose("value", "bucket").values, dtype=bool) \
        if "small_cell" in effects else np.zeros((len(values), len(buckets)), bool)
    idx = pd.MultiIndex.from_product(
        [outputs, values, buckets, np.asarray(y["image"].values).tolist()],
        names=["output", "value", "bucket", "image"],
    )
    df = pd.DataFrame({"ite": data.ravel(),
                       "small": np.broadcast_to(small[None, :, :, None], data.shape).ravel()}, index=idx).reset_index()
    df.insert(3, "value_label", df["value"].map(dict(zip(values.tolist(), labels))))
    df = df[np.isfinite(df["ite"]) & (df["value_label"] != "")]
    return df[["output", "bucket", "value", "value_label", "image", "ite", "small"]].reset_index(drop=True)


def ite_scatter_frame(effects: xr.Dataset, effect: str = "total", include_identity: bool = False) -> pd.DataFrame:
    """Pairs (ITE_Y, ITE_E) over every real (hparam, value, image) of each bucket (paper 000
    Fig. 3, left), small cells and the placebo left out.

    Rows (method, bucket, hparam, value, image, ite_y, ite_e), both ITEs finite.
    """
    _check_choice("effect", effect, _strs(effects["effect"].values))
    real = _real_hparams(effects)
    e = effects["ite_e"].sel({"effect": effect}, drop=True).sel({"hparam": real})
    y = effects["ite_y"].sel({"hparam": real})
    if "small_cell" in effects:
        keep = ~effects["small_cell"].sel({"hparam": real})
        e, y = e.where(keep), y.where(keep)
    e = e.transpose("method", "bucket", "hparam", "value", "image")
    methods = _strs(e["method"].values)
    keep_m = [m for m in methods if include_identity or m != "identity"]
    e = e.isel({"method": [methods.index(m) for m in keep_m]})
    ev = np.asarray(e.values, dtype=float)
    yv = np.broadcast_to(np.asarray(y.transpose("bucket", "hparam", "value", "image").values, dtype=float)[None],
                         ev.shape)
    idx = pd.MultiIndex.from_product(
        [keep_m, _strs(e["bucket"].values), _strs(e["hparam"].values),
         np.asarray(e["value"].values).astype(int).tolist(), np.asarray(e["image"].values).tolist()],
        names=["method", "bucket", "hparam", "value", "image"],
    )
    df = pd.DataFrame({"ite_y": yv.ravel(), "ite_e": ev.ravel()}, index=idx).reset_index()
    return df[np.isfinite(df["ite_y"]) & np.isfinite(df["ite_e"])].reset_index(drop=True)


def mediation_frame(effects: xr.Dataset, stat: str = "pearson", aggregation: str = "hparam_mean") -> pd.DataFrame:
    """The numbers of paper 000 Fig. 4 as rows (quantity, method, bucket, corr, lower, upper), NaN kept.

    ``quantity``: ``total`` and ``direct`` (the correlation), ``mediated`` (total − direct)
    and ``gap_to_identity`` (Identity's mediated − the method's), for the aggregation's
    variables (``corr_mean``, ``corr_mean_mediated``, ``gap_to_identity_mean``, or ``corr``,
    ``corr_mediated``, ``gap_to_identity``).
    """
    _check_choice("statistic", stat, _strs(effects["stat"].values))
    name = _check_aggregation(aggregation)
    med, gap = (("corr_mean_mediated", "gap_to_identity_mean") if name == "corr_mean"
                else ("corr_mediated", "gap_to_identity"))
    sources = {
        "total": (effects[name].sel({"effect": "total"}, drop=True),
                  effects[f"{name}_ci"].sel({"effect": "total"}, drop=True)),
        "direct": (effects[name].sel({"effect": "direct"}, drop=True),
                   effects[f"{name}_ci"].sel({"effect": "direct"}, drop=True)),
        "mediated": (effects[med], effects[f"{med}_ci"]),
        "gap_to_identity": (effects[gap], effects[f"{gap}_ci"]),
    }
    frames = []
    for quantity, (da, ci) in sources.items():
        da = da.sel({"stat": stat}, drop=True).transpose("method", "bucket")
        ci = np.asarray(ci.sel({"stat": stat}, drop=True).transpose("method", "bucket", "bound").values, dtype=float)
        idx = pd.MultiIndex.from_product([_strs(da["method"].values), _strs(da["bucket"].values)],
                                         names=["method", "bucket"])
        df = pd.DataFrame({"corr": np.asarray(da.values, dtype=float).ravel(), "lower": ci[..., 0].ravel(),
                           "upper": ci[..., 1].ravel()}, index=idx).reset_index()
        df.insert(0, "quantity", quantity)
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


# --- figures -------------------------------------------------------------------------------


def _correlation_panels(axes, effects: xr.Dataset, aggregation: str, effect: str = "total",
                        direct: bool = False) -> list[str]:
    """Fill one axis per statistic with a line (and band) per method; returns the methods."""
    df = correlation_frame(effects, effect, aggregation)
    dd = correlation_frame(effects, "direct", aggregation) if direct else None
    buckets = _buckets(effects)
    methods = list(dict.fromkeys(df["method"]))
    colors = _method_colors(methods)
    for ax, stat in zip(axes, STATS):
        sub = df[df["stat"] == stat].set_index(["method", "bucket"])
        for m in methods:
            r = sub.loc[m].reindex(buckets)
            _line(ax, r["corr"], r["lower"], r["upper"], split=_split(effects), color=colors[m], label=_name(m))
            if dd is not None:
                rd = dd[dd["stat"] == stat].set_index(["method", "bucket"]).loc[m].reindex(buckets)
                _line(ax, rd["corr"], split=_split(effects), color=colors[m], ls=":", mfc="white")
        ax.axhline(0, color="0.5", lw=0.8)
        _bucket_axis(ax, effects)
    return methods


def plot_correlations(effects: xr.Dataset, path: str | os.PathLike[str], aggregation: str = "hparam_mean") -> Figure:
    """Pearson and Spearman correlation of ITE_Y and ITE_E (total effect) per bucket, one
    line per method with its bootstrap band (paper 000 Fig. 3, right); Identity is the
    reference at 1. Below, the same for the placebo hyperparameter: what the correlation
    is when the "treatment" does nothing."""
    _check_aggregation(aggregation)
    has_placebo = "placebo" in _strs(effects["hparam"].values)
    sns.set_theme(style="whitegrid")
    rows = 2 if has_placebo else 1
    fig, axes = plt.subplots(rows, 2, figsize=(12.4, 4.0 * rows), sharey=True, squeeze=False)
    methods = _correlation_panels(axes[0], effects, aggregation)
    label = AGGREGATIONS[aggregation][1]
    for ax, stat in zip(axes[0], STATS):
        ax.set_title(f"{stat.capitalize()}, {label}")
        ax.set_ylabel("correlation")
    if has_placebo:
        df = correlation_frame(effects, "total", hparam="placebo")
        colors = _method_colors(methods)
        for ax, stat in zip(axes[1], STATS):
            sub = df[df["stat"] == stat].set_index(["method", "bucket"])
            for m in methods:
                r = sub.loc[m].reindex(_buckets(effects))
                _line(ax, r["corr"], r["lower"], r["upper"], split=_split(effects), color=colors[m], ls="--")
            ax.axhline(0, color="0.5", lw=0.8)
            _bucket_axis(ax, effects)
            ax.set_title(f"{stat.capitalize()}, placebo (no effect by construction)")
            ax.set_ylabel("correlation")
    handles = [Line2D([], [], color=_method_colors(methods)[m], marker="o", ms=4, label=_name(m)) for m in methods]
    handles.append(_small_legend())
    axes[0, -1].legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, title="method")
    fig.suptitle(_title(effects, "corr(ITE_Y, ITE_E) of the total effects (bands: 95 % bootstrap intervals)"))
    fig.tight_layout()
    return _save(fig, path)




def _ite_boxes(ax, df: pd.DataFrame, buckets: list[str], labels: list[str], palette: dict) -> None:
    """Box plots of ITE per (bucket, value), values side by side; small cells grey (one
    ``boxplot`` call per panel: a call per box was most of the figure's drawing time)."""
    width = 0.8 / max(len(labels), 1)
    data, positions, colors = [], [], []
    for j, lab in enumerate(labels):
        sub = df[df["value_label"] == lab]
        for i, b in enumerate(buckets):
            cell = sub[sub["bucket"] == b]
            if not len(cell):
                continue
            data.append(cell["ite"].values)
            positions.append(i - 0.4 + (j + 0.5) * width)
            colors.append(SMALL_GREY if bool(cell["small"].iloc[0]) else palette[lab])
    if not data:
        return
    drawn = ax.boxplot(data, positions=positions, widths=width * 0.9, showfliers=False, patch_artist=True,
                       manage_ticks=False, boxprops={"edgecolor": "0.3", "lw": 0.7},
                       medianprops={"color": "0.2", "lw": 0.8}, whiskerprops={"color": "0.3", "lw": 0.7},
                       capprops={"color": "0.3", "lw": 0.7})
    for box, color in zip(drawn["boxes"], colors):
        box.set_facecolor(color)


def plot_ite_by_bucket(effects: xr.Dataset, path: str | os.PathLike[str], hparam: str = "optimizer") -> Figure:
    """ITE of one hyperparameter's values on Y (first panel) and on each method's E (total
    effect, one panel each) per accuracy bucket: the distribution over probe images as box
    plots, one colour per value (paper 000 Fig. 2); small cells' boxes grey. Each panel has
    its own scale.

    ``hparam`` is the config's ``effects.figures.hparam`` (the paper's Fig. 2 draws the
    optimizer; ``placebo`` draws the null); it is named in the title and in the PNG's
    metadata (``Description``). One that ``effects.nc`` lacks (a hyperparameter with a single
    value in the zoo) raises :class:`ValueError` naming the key and the choices.
    """
    names = _strs(effects["hparam"].values)
    if hparam not in names:
        raise ValueError(f"effects.figures.hparam {hparam!r} is not among the hyperparameters of effects.nc (those "
                         f"with two values in the zoo, and the placebo): choose one of {', '.join(names)}")
    df = ite_by_bucket_frame(effects, hparam, "total")
    buckets = _buckets(effects)
    outputs = ["Y", *_strs(effects["method"].values)]
    labels = [lab for lab in _strs(effects["value_label"].sel({"hparam": hparam}).values) if lab]
    palette = dict(zip(labels, sns.color_palette("Set2", max(len(labels), 1))))
    sns.set_theme(style="whitegrid")
    ncols = min(len(outputs), 3)
    nrows = -(-len(outputs) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.6 * ncols, 3.4 * nrows), squeeze=False)
    for ax, out in zip(axes.flat, outputs):
        sub = df[df["output"] == out]
        if len(sub):
            _ite_boxes(ax, sub, buckets, labels, palette)
        else:
            ax.text(0.5, 0.5, "no finite ITE", ha="center", va="center", transform=ax.transAxes, color="0.4")
        ax.set_title("Y (prediction)" if out == "Y" else f"E: {_name(out)}")
        ax.set_ylabel("ITE_Y" if out == "Y" else "ITE_E")
        _bucket_axis(ax, effects, shade=False)
    for ax in axes.flat[len(outputs):]:
        ax.set_visible(False)
    handles = [Patch(facecolor=palette[lab], edgecolor="0.3", label=lab) for lab in labels] + [
        Patch(facecolor=SMALL_GREY, edgecolor="0.3", label="small cell")]
    fig.legend(handles=handles, title=hparam, loc="upper left", bbox_to_anchor=(1.0, 0.95), frameon=False)
    title = _title(effects, f"ITE of {hparam} (total effect) per bucket")
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path, bbox_inches="tight",
                 metadata={"Title": title, "Description": f"effects.figures.hparam: {hparam}"})


def plot_ite_by_hparam(effects: xr.Dataset, path: str | os.PathLike[str], effect: str = "total") -> Figure:
    """Paper 000 Figs. 10-13: the ITE of every hyperparameter (one row each, the placebo
    last) on Y (first column) and on each method's E, per bucket and value."""
    names = _strs(effects["hparam"].values)
    outputs = ["Y", *_strs(effects["method"].values)]
    buckets = _buckets(effects)
    sns.set_theme(style="whitegrid")
    fig, axes = plt.subplots(len(names), len(outputs), figsize=(3.3 * len(outputs) + 1.5, 2.5 * len(names)),
                             squeeze=False)
    for row, h in zip(axes, names):
        df = ite_by_bucket_frame(effects, h, effect)
        labels = [lab for lab in _strs(effects["value_label"].sel({"hparam": h}).values) if lab]
        palette = dict(zip(labels, sns.color_palette("Set2", max(len(labels), 1))))
        for ax, out in zip(row, outputs):
            sub = df[df["output"] == out]
            if len(sub):
                _ite_boxes(ax, sub, buckets, labels, palette)
            _bucket_axis(ax, effects, label=False, shade=False)
            ax.tick_params(labelsize=6)
            if h != names[-1]:
                ax.set_xticklabels([])
            if h == names[0]:
                ax.set_title("Y (prediction)" if out == "Y" else _name(out), fontsize=9)
        row[0].set_ylabel(h, fontsize=9)
        handles = [Patch(facecolor=palette[lab], edgecolor="0.3", label=lab) for lab in labels]
        row[-1].legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=7)
    fig.suptitle(_title(effects, f"ITE of every hyperparameter ({effect} effect); grey: small cells"))
    fig.tight_layout()
    return _save(fig, path, bbox_inches="tight")


def plot_ite_scatter(effects: xr.Dataset, path: str | os.PathLike[str], effect: str = "total") -> Figure:
    """ITE_Y (x) against ITE_E (y) over every real (hyperparameter, value, image) entry: one
    row per explanation method (Identity left out: it lies on x = y), one column per bucket,
    each panel annotated with its pooled Pearson r and interval (paper 000 Fig. 3, left)."""
    df = ite_scatter_frame(effects, effect)
    buckets = _buckets(effects)
    methods = [m for m in _strs(effects["method"].values) if m != "identity"]
    if not methods:
        raise ValueError("effects.nc has no explanation method besides identity: nothing to scatter")
    corr = effects["corr"].sel({"effect": effect, "stat": "pearson"}, drop=True)
    ci = effects["corr_ci"].sel({"effect": effect, "stat": "pearson"}, drop=True)
    colors = _method_colors(methods)
    usable = usable_buckets(effects)
    sns.set_theme(style="whitegrid")
    fig, axes = plt.subplots(
        len(methods), len(buckets), figsize=(1.9 * len(buckets) + 1.0, 1.8 * len(methods) + 0.8),
        sharex="col", sharey="row", squeeze=False,
    )
    groups = {k: g for k, g in df.groupby(["method", "bucket"], sort=False)}
    for i, m in enumerate(methods):
        for j, b in enumerate(buckets):
            ax = axes[i, j]
            if not usable[b]:
                ax.set_facecolor(SMALL_GREY)
            g = groups.get((m, b))
            if g is not None:
                ax.scatter(g["ite_y"].values, g["ite_e"].values, s=2, alpha=0.35, linewidths=0,
                           color=colors[m], rasterized=True)
            r = float(corr.sel({"method": m, "bucket": b}).values)
            lo, hi = np.asarray(ci.sel({"method": m, "bucket": b}).values, dtype=float)
            text = "r = n/a" if not np.isfinite(r) else f"r = {r:.2f}" + (
                f"\n[{lo:.2f}, {hi:.2f}]" if np.isfinite(lo) else "")
            ax.text(0.04, 0.95, text, transform=ax.transAxes, ha="left", va="top", fontsize=7,
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


def plot_mediation(effects: xr.Dataset, path: str | os.PathLike[str], aggregation: str = "hparam_mean") -> Figure:
    """Total vs direct effect (paper 000 Fig. 4), one row per statistic (Pearson, Spearman):
    (1) corr(ITE_Y, ITE_E) per bucket, total solid and direct (Y severed from H) dotted;
    (2) total − direct, the part mediated by Y; (3) each method's gap to Identity in the
    mediated part (Identity itself is 0). Bands: 95 % bootstrap intervals."""
    methods = _strs(effects["method"].values)
    colors = _method_colors(methods)
    buckets = _buckets(effects)
    sp = _split(effects)
    sns.set_theme(style="whitegrid")
    fig, axes = plt.subplots(len(STATS), 3, figsize=(15.5, 4.0 * len(STATS)), squeeze=False)
    for row, stat in zip(axes, STATS):
        table = mediation_frame(effects, stat, aggregation).set_index(["quantity", "method", "bucket"]).sort_index()

        def series(quantity, m):
            return table.loc[(quantity, m)].reindex(buckets)

        for m in methods:
            c = colors[m]
            t, d = series("total", m), series("direct", m)
            _line(row[0], t["corr"], t["lower"], t["upper"], split=sp, color=c, ls="-")
            _line(row[0], d["corr"], split=sp, color=c, ls=":", mfc="white")
            md = series("mediated", m)
            _line(row[1], md["corr"], md["lower"], md["upper"], split=sp, color=c)
            if m != "identity":
                gp = series("gap_to_identity", m)
                _line(row[2], gp["corr"], gp["lower"], gp["upper"], split=sp, color=c)
        label = stat.capitalize()
        row[0].set_title(f"{label} corr(ITE_Y, ITE_E): total vs direct")
        row[1].set_title(f"{label}: mediated by Y (total − direct)")
        row[2].set_title(f"{label}: gap to Identity (mediated)")
        row[0].set_ylabel("correlation")
        row[1].set_ylabel("Δ correlation")
        row[2].set_ylabel("Δ correlation")
        for ax in row:
            ax.axhline(0, color="0.5", lw=0.8)
            _bucket_axis(ax, effects)
    handles = [Line2D([], [], color=colors[m], marker="o", ms=4, label=_name(m)) for m in methods]
    handles += [Line2D([], [], color="0.3", ls="-", label="total effect"),
                Line2D([], [], color="0.3", ls=":", label="direct effect"), _small_legend()]
    axes[0, 2].legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.suptitle(_title(effects, f"total vs direct effects ({AGGREGATIONS[aggregation][1]})"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        fig.tight_layout()
    return _save(fig, path)
