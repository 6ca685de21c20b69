"""Figures of the TRACER steps (rule ``tracer_figures``; paper 004 Fig. 3, 11, 12 and App. G), read from
their netCDF files; one sample's figures (Fig. 2, 5) are in :mod:`causalxai.plots.tracer_sample_figures`.

As in :mod:`causalxai.plots.effect_figures`, each ``plot_*`` function draws from small ``*_frame``
helpers that return the plotted numbers (so what a figure shows can be checked against the
dataset), writes a PNG atomically and returns the (closed) figure for inspection.

Inputs (dims in brackets):

* ``interventions.nc``: ``image (sample, y, x)`` in [-1, 1], ``label (sample)``, ``pred (sample)``,
  ``cka (sample, layer_i, layer_j)``.
* ``causal_nodes.nc``: ``cka (sample, layer_i, layer_j)``, ``group (sample, layer)`` (ids 0..G-1 in layer
  order), ``n_groups (sample)``, ``link (sample, group_a, group_b)`` (bool, from the earlier to the
  later group, padded with False), ``group_sweep (sample, eps, layer)``, ``n_groups_sweep (sample,
  eps)``; attribute ``eps`` (the chosen ε).
* ``ace.nc``: ``attribution (sample, group, y, x)``, ``ace (sample, group)`` (both NaN for padded
  groups), ``mask (sample, y, x)``, ``output_layer (sample, group)``.
* ``mechanisms.nc``: dim ``mechanism``; ``n_nodes``, ``composition`` ("conv1+relu1|conv2|…"),
  ``n_samples``, ``share``, ``coverage`` (cumulative share).
* ``reliability.nc``: ``score (method, trial)``, ``mean (method)``, ``std (method)``.

A sample that is not in a dataset raises :class:`ValueError` naming it and the available ones.
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
from matplotlib.colors import ListedColormap  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator, PercentFormatter  # noqa: E402

from causalxai.plots._figure import DPI, require, save_figure as _save  # noqa: E402,F401
from causalxai.tracer.stability import stability_table  # noqa: E402

__all__ = [
    "compact_group",
    "coverage_frame",
    "eps_sweep_frame",
    "plot_cka",
    "plot_coverage",
    "plot_eps_sweep",
    "plot_mechanism_stability",
    "plot_node_validation",
    "node_validation_frame",
    "plot_reliability",
    "near_threshold",
    "stability_frame",
    "reliability_frame",
    "short_composition",
]

MAX_CKA_PANELS = 4
MAX_WIDTH = 30.0  # inches: keeps every PNG under 3,600 px wide at DPI 120
MAX_COVERAGE_LABELS = 12
METHOD_NAMES = {
    "tracer": "TRACER",
    "gradient": "Gradient",
    "smoothgrad": "SmoothGrad",
    "integrated_gradients": "Integrated Gradients",
    "grad_cam": "Grad-CAM",
    "lime": "LIME",
    "kernel_shap": "KernelSHAP",
    "lrp": "LRP",
    "occlusion": "Occlusion",
    "random_foreground": "random foreground",
}
PROTOCOL_NAMES = {"paper": "paper's protocol (own threshold masks)", "equal_size": "equal size (TRACER's mask size)"}
TRACER_COLOR = "#d62728"
OTHER_COLOR = "#9aa5b1"


# --- helpers -----------------------------------------------------------------------------


def _strs(values) -> list[str]:
    return [str(v) for v in np.asarray(values).tolist()]




def _sample_ids(ds: xr.Dataset) -> list:
    return np.asarray(ds["sample"].values).tolist() if "sample" in ds.coords else list(range(ds.sizes.get("sample", 0)))


def _check_sample(ds: xr.Dataset, sample, what: str) -> dict:
    """The ``.sel`` indexer of ``sample``; a ValueError naming it and the available ones if absent."""
    ids = _sample_ids(ds)
    if sample not in ids:
        shown = ", ".join(map(str, ids[:20])) + (f", … ({len(ids)} in all)" if len(ids) > 20 else "")
        raise ValueError(f"sample {sample!r} is not in {what}; available samples: {shown or 'none'}")
    return {"sample": sample} if "sample" in ds.coords else {"sample": ids.index(sample)}


def _name(method: str) -> str:
    return METHOD_NAMES.get(method, method)


def compact_group(names: list[str], max_names: int = 3) -> str:
    """Member layer names of a causal node joined by '+'; long runs keep the first and last."""
    names = [str(n) for n in names]
    if len(names) <= max_names:
        return "+".join(names)
    return f"{names[0]}+…+{names[-1]} ({len(names)})"


def short_composition(composition: str, max_groups: int = 4) -> str:
    """A mechanism's composition ("conv1+relu1|conv2|…") shortened for a tick label:
    a node of several layers becomes "first…last", and long chains keep 2 nodes, "…", the last."""
    parts = [p for p in str(composition).split("|") if p]
    nodes = []
    for p in parts:
        members = p.split("+")
        nodes.append(members[0] if len(members) == 1 else f"{members[0]}…{members[-1]}")
    if len(nodes) > max_groups:
        nodes = [*nodes[:2], "…", nodes[-1]]
    return " | ".join(nodes)


def _cka_matrix(cka_ds: xr.Dataset, sel: dict) -> tuple[np.ndarray, list[str]]:
    cka = cka_ds["cka"].sel(sel).transpose("layer_i", "layer_j")
    names = _strs(cka["layer_i"].values) if "layer_i" in cka.coords else _strs(cka_ds["layer"].values)
    return np.asarray(cka.values, dtype=float), names


def near_threshold(matrix: np.ndarray, eps: float, margin: float) -> np.ndarray:
    """Off-diagonal cells whose CKA lies within ``margin`` of the threshold ``1 − ε``: ``(L, L)`` bool
    (the pairs whose side of the threshold a small change of ε flips)."""
    m = np.asarray(matrix, dtype=float)
    near = np.abs(m - (1.0 - float(eps))) <= float(margin) + 1e-12
    np.fill_diagonal(near, False)
    return near


def _heatmap(ax, matrix: np.ndarray, names: list[str], cbar: bool = True, cbar_ax=None,
             near: np.ndarray | None = None) -> None:
    annot = matrix.shape[0] <= 10
    sns.heatmap(matrix, ax=ax, vmin=0.0, vmax=1.0, cmap="viridis", square=True, cbar=cbar, cbar_ax=cbar_ax,
                xticklabels=names, yticklabels=names, annot=annot, fmt=".3f",
                annot_kws={"fontsize": 5 if matrix.shape[0] > 6 else 6},
                cbar_kws={"label": "linear CKA"} if cbar else None)
    if near is not None:
        for i, j in zip(*np.nonzero(near)):
            ax.add_patch(plt.Rectangle((j + 0.04, i + 0.04), 0.92, 0.92, fill=False, edgecolor="#ff2d2d", lw=1.4,
                                       gid=f"near {i} {j}"))
    ax.tick_params(labelsize=7)
    ax.set_xticklabels(ax.get_xticklabels(), rotation=90)
    ax.set_yticklabels(ax.get_yticklabels(), rotation=0)


def _group_runs(groups: np.ndarray) -> list[tuple[int, int, int]]:
    """(group id, first layer index, number of layers) of each group, in layer order."""
    runs = []
    for g in np.unique(groups):
        idx = np.flatnonzero(groups == g)
        runs.append((int(g), int(idx[0]), int(idx.size)))
    return sorted(runs, key=lambda r: r[1])


# --- frames --------------------------------------------------------------------------------




def eps_sweep_frame(cka_ds: xr.Dataset) -> pd.DataFrame:
    """Number of causal nodes per (sample, ε) (App. G): rows (sample, eps, n_groups)."""
    require(cka_ds, ["n_groups_sweep"], "causal_nodes.nc")
    da = cka_ds["n_groups_sweep"].transpose("sample", "eps")
    idx = pd.MultiIndex.from_product([_sample_ids(cka_ds), np.asarray(da["eps"].values, dtype=float).tolist()],
                                     names=["sample", "eps"])
    return pd.DataFrame({"n_groups": np.asarray(da.values).astype(int).ravel()}, index=idx).reset_index()




def coverage_frame(mech_ds: xr.Dataset) -> pd.DataFrame:
    """One row per mechanism in the dataset's order: (mechanism, n_nodes, composition,
    label, n_samples, share, coverage); ``label`` is the tick label of Fig. 11."""
    require(mech_ds, ["n_nodes", "composition", "n_samples", "share", "coverage"], "mechanisms.nc")
    n = mech_ds.sizes["mechanism"]
    mech = np.asarray(mech_ds["mechanism"].values).tolist() if "mechanism" in mech_ds.coords else list(range(n))
    df = pd.DataFrame({
        "mechanism": mech,
        "n_nodes": np.asarray(mech_ds["n_nodes"].values).astype(int),
        "composition": _strs(mech_ds["composition"].values),
        "n_samples": np.asarray(mech_ds["n_samples"].values).astype(int),
        "share": np.asarray(mech_ds["share"].values, dtype=float),
        "coverage": np.asarray(mech_ds["coverage"].values, dtype=float),
    })
    if "n_intermediate" in mech_ds:  # the paper's count (App. E), the full count in brackets
        df.insert(2, "n_intermediate", np.asarray(mech_ds["n_intermediate"].values).astype(int))
        heads = [f"{i} intermediate ({k} node{'s' if k != 1 else ''})"
                 for i, k in zip(df["n_intermediate"], df["n_nodes"])]
    else:
        heads = [f"{k} node{'s' if k != 1 else ''}" for k in df["n_nodes"]]
    df.insert(df.columns.get_loc("composition") + 1, "label",
              [f"{h}\n" + short_composition(c).replace(" | ", "\n") for h, c in zip(heads, df["composition"])])
    return df


def stability_frame(mech_ds: xr.Dataset) -> pd.DataFrame:
    """The ε-stability table of mechanisms.nc (:func:`causalxai.tracer.stability.stability_table`): one
    row per ε of the grid with the mechanism count, dominant share, coverage of the first mechanisms and
    the bootstrap quantiles."""
    require(mech_ds, ["eps_n_mechanisms", "eps_dominant_share", "eps_coverage", "boot_n_mechanisms",
                      "boot_dominant_share", "near_pairs"], "mechanisms.nc")
    return stability_table(mech_ds)


def node_validation_frame(ace_ds: xr.Dataset) -> pd.DataFrame:
    """One row per (sample, causal node, ablation) of ace.nc, padded groups left out: (sample, group,
    ablation, abs_ace, ablation_kl, flip, output_node), ``output_node`` for the sample's last node."""
    require(ace_ds, ["ace", "ablation_kl", "ablation_flip", "n_groups"], "ace.nc")
    ace = np.abs(np.asarray(ace_ds["ace"].transpose("sample", "group").values, dtype=float))
    kl = np.asarray(ace_ds["ablation_kl"].transpose("sample", "group", "ablation").values, dtype=float)
    flip = np.asarray(ace_ds["ablation_flip"].transpose("sample", "group", "ablation").values, dtype=bool)
    n_groups = np.asarray(ace_ds["n_groups"].values).astype(int)
    ids, names = _sample_ids(ace_ds), _strs(ace_ds["ablation"].values)
    rows = [(ids[s], g, name, ace[s, g], kl[s, g, a], bool(flip[s, g, a]), g == n_groups[s] - 1)
            for s in range(ace.shape[0]) for g in range(n_groups[s]) for a, name in enumerate(names)]
    return pd.DataFrame(rows, columns=["sample", "group", "ablation", "abs_ace", "ablation_kl", "flip",
                                       "output_node"])


def reliability_frame(rel_ds: xr.Dataset) -> pd.DataFrame:
    """One row per method × protocol, methods in the dataset's order, protocols within each:
    (method, name, protocol, mean, std, ci_low, ci_high, n_empty, mask_fraction, n_trials),
    ``n_trials`` counting finite scores; NaN kept (a method that did not run, or an interval
    or count the dataset lacks). A dataset without a ``protocol`` dimension is the paper's."""
    require(rel_ds, ["mean", "std"], "reliability.nc")
    ds = rel_ds if "protocol" in rel_ds.dims else rel_ds.expand_dims(protocol=["paper"])
    methods = _strs(ds["method"].values)
    protocols = _strs(ds["protocol"].values)

    def values(name: str) -> np.ndarray:
        if name not in ds:
            return np.full((len(methods), len(protocols)), np.nan)
        return np.asarray(ds[name].broadcast_like(ds["mean"]).transpose("method", "protocol").values, dtype=float)

    if "score" in ds:
        score = np.asarray(ds["score"].transpose("method", "protocol", ...).values, dtype=float)
        n = np.isfinite(score).sum(axis=-1)
    else:
        n = np.zeros((len(methods), len(protocols)), dtype=int)
    return pd.DataFrame({
        "method": np.repeat(methods, len(protocols)),
        "name": np.repeat([_name(m) for m in methods], len(protocols)),
        "protocol": np.tile(protocols, len(methods)),
        **{k: values(k).ravel() for k in ("mean", "std", "ci_low", "ci_high", "n_empty", "mask_fraction")},
        "n_trials": np.asarray(n).astype(int).ravel(),
    })


# --- figures -------------------------------------------------------------------------------






def plot_cka(cka_ds: xr.Dataset, path: str | os.PathLike[str], samples=None, *, eps: float | None = None,
             margin: float | None = None) -> Figure:
    """CKA heat maps (vmin 0, vmax 1, three decimals) of up to four samples side by side, one shared
    colour bar; ``samples`` defaults to the first four of the dataset. With ``margin``, the layer pairs
    with ``|CKA − (1 − ε)| ≤ margin`` are boxed in red (:func:`near_threshold`; ε defaults to the
    dataset's ``eps`` attribute, as causal_nodes.nc has it)."""
    require(cka_ds, ["cka"], "the CKA dataset")
    ids = _sample_ids(cka_ds)
    if samples is None:
        samples = ids[:MAX_CKA_PANELS]
    elif np.ndim(samples) == 0:
        samples = [samples]
    samples = list(samples)
    if not 1 <= len(samples) <= MAX_CKA_PANELS:
        raise ValueError(f"plot_cka draws 1 to {MAX_CKA_PANELS} samples, got {len(samples)}: {samples}")
    sels = [_check_sample(cka_ds, s, "the CKA dataset") for s in samples]
    if eps is None and "eps" in cka_ds.attrs:
        eps = float(cka_ds.attrs["eps"])
    mark = margin is not None and eps is not None
    sns.set_theme(style="white")
    n = len(samples)
    n_layers = cka_ds.sizes["layer_i"]
    side = min(2.6 + 0.22 * n_layers, (MAX_WIDTH - 0.8) / n)
    fig = plt.figure(figsize=(side * n + 0.8, side + 0.6))
    grid = fig.add_gridspec(1, n + 1, width_ratios=[1.0] * n + [0.05])
    cax = fig.add_subplot(grid[0, n])
    for k, (s, sel) in enumerate(zip(samples, sels)):
        ax = fig.add_subplot(grid[0, k])
        matrix, names = _cka_matrix(cka_ds, sel)
        _heatmap(ax, matrix, names, cbar=k == 0, cbar_ax=cax if k == 0 else None,
                 near=near_threshold(matrix, eps, margin) if mark else None)
        title = f"sample {s}"
        if "n_groups" in cka_ds:
            ng = int(cka_ds["n_groups"].sel(sel))
            title += f": {ng} node{'s' if ng != 1 else ''}"
        ax.set_title(title, fontsize=10)
        if k:
            ax.set_yticklabels([])
    title = "linear CKA between layer activations over the interventions"
    if mark:
        title += f"\nred boxes: |CKA − {1 - eps:g}| ≤ {margin:g} (near the threshold 1 − ε, ε = {eps:g})"
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path, bbox_inches="tight")


def plot_eps_sweep(cka_ds: xr.Dataset, path: str | os.PathLike[str]) -> Figure:
    """Paper 004 App. G (Fig. 12): left the number of causal nodes per ε (one thin line per
    sample, the mean with the min–max range over samples); right the group of every layer at
    each ε for the first sample (one row per ε). ε are evenly spaced on the axis."""
    require(cka_ds, ["group_sweep", "n_groups_sweep"], "causal_nodes.nc")
    df = eps_sweep_frame(cka_ds)
    eps = np.asarray(cka_ds["eps"].values, dtype=float)
    x = np.arange(eps.size)
    table = df.pivot(index="sample", columns="eps", values="n_groups").reindex(columns=eps.tolist())
    table = table.reindex(_sample_ids(cka_ds))
    chosen = cka_ds.attrs.get("eps")
    sns.set_theme(style="whitegrid")
    n_layers = cka_ds.sizes["layer"]
    fig, (ax, ax_s) = plt.subplots(1, 2, figsize=(min(MAX_WIDTH, 5.0 + max(4.0, 0.45 * n_layers)), 4.2),
                                   gridspec_kw={"width_ratios": [1.0, max(1.0, 0.09 * n_layers)]})
    for s, row in table.iterrows():
        ax.plot(x, row.values.astype(float), color="0.55", lw=0.6, alpha=0.5, gid=f"sample {s}")
    values = table.values.astype(float)
    ax.fill_between(x, values.min(axis=0), values.max(axis=0), color="C0", alpha=0.18, label="range over samples")
    ax.plot(x, values.mean(axis=0), color="C0", marker="o", lw=2.0, label=f"mean over {len(table)} samples",
            gid="mean")
    if chosen is not None and np.isclose(eps, float(chosen)).any():
        ax.axvline(x[np.isclose(eps, float(chosen))][0], color="C3", ls="--", lw=1.0,
                   label=f"chosen ε = {float(chosen):g}")
    ax.set_xticks(x)
    ax.set_xticklabels([f"{e:g}" for e in eps])
    ax.set_xlabel("ε (layers merge when CKA ≥ 1 − ε)")
    ax.set_ylabel("number of causal nodes")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylim(bottom=0)
    ax.legend(frameon=False, fontsize=8)
    ax.set_title("causal nodes vs ε", fontsize=10)

    first = _sample_ids(cka_ds)[0]
    strip = np.asarray(cka_ds["group_sweep"].sel(_check_sample(cka_ds, first, "causal_nodes.nc"))
                       .transpose("eps", "layer").values).astype(int)
    n_colors = max(int(strip.max()) + 1, 1)
    cmap = ListedColormap(sns.color_palette("tab20", 20)[: min(n_colors, 20)] if n_colors <= 20
                          else sns.color_palette("husl", n_colors))
    ax_s.imshow(strip, cmap=cmap, vmin=-0.5, vmax=n_colors - 0.5, aspect="auto", interpolation="nearest")
    if strip.size <= 400:
        for (i, j), g in np.ndenumerate(strip):
            ax_s.text(j, i, f"G{g + 1}", ha="center", va="center", fontsize=6)
    ax_s.set_xticks(range(n_layers))
    ax_s.set_xticklabels(_strs(cka_ds["layer"].values), rotation=90, fontsize=7)
    ax_s.set_yticks(range(eps.size))
    ax_s.set_yticklabels([f"ε = {e:g}" for e in eps], fontsize=8)
    if chosen is not None:
        for lab, e in zip(ax_s.get_yticklabels(), eps):
            if np.isclose(e, float(chosen)):
                lab.set_fontweight("bold")
    ax_s.grid(False)
    ax_s.set_title(f"layer groups of sample {first}", fontsize=10)
    fig.suptitle("impact of ε on the causal graph (paper 004 App. G)")
    fig.tight_layout()
    return _save(fig, path)




def plot_coverage(mech_ds: xr.Dataset, path: str | os.PathLike[str]) -> Figure:
    """Paper 004 Fig. 11: one bar per distinct mechanism (its number of causal nodes and
    shortened composition below it) with the share of samples it explains, and on a twin axis
    the cumulative coverage."""
    df = coverage_frame(mech_ds)
    x = np.arange(len(df))
    sns.set_theme(style="whitegrid")
    fig, ax = plt.subplots(figsize=(min(MAX_WIDTH, max(5.5, 1.6 * len(df) + 2.0)), 5.2))
    bars = ax.bar(x, df["share"].values, color="C0", alpha=0.85, label="share of samples")
    for rect, share, n in zip(bars, df["share"], df["n_samples"]):
        if np.isfinite(share):
            ax.annotate(f"{share:.1%}\n(n={n})", (rect.get_x() + rect.get_width() / 2, rect.get_height()),
                        ha="center", va="bottom", fontsize=7, xytext=(0, 2), textcoords="offset points")
    ax.set_xticks(x)
    many = len(df) > MAX_COVERAGE_LABELS  # then only the number of nodes fits under a bar
    labels = [lab.split("\n")[0] for lab in df["label"]] if many else df["label"].tolist()
    ax.set_xticklabels(labels, fontsize=7, rotation=0 if len(df) <= 4 else 30,
                       ha="center" if len(df) <= 4 else "right")
    ax.set_ylabel("share of samples")
    ax.set_ylim(0, 1.12)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_xlabel("causal mechanism (intermediate causal nodes, composition)" if "n_intermediate" in df
                  else "causal mechanism (number of nodes, composition)")
    ax2 = ax.twinx()
    ax2.plot(x, df["coverage"].values, color="C3", marker="o", lw=1.8, label="cumulative coverage")
    ax2.set_ylim(0, 1.12)
    ax2.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax2.set_ylabel("cumulative coverage")
    ax2.grid(False)
    handles = [bars, *ax2.get_lines()]
    ax.legend(handles, [h.get_label() for h in handles], loc="center right", frameon=False, fontsize=8)
    total = int(df["n_samples"].sum())
    fig.suptitle(f"generalisation of causal mechanisms over {total} samples")
    fig.tight_layout()
    return _save(fig, path)


def plot_mechanism_stability(mech_ds: xr.Dataset, path: str | os.PathLike[str]) -> Figure:
    """How stable the global mechanisms are (not in the paper): left the number of distinct mechanisms
    per ε of the neighbourhood grid, middle the dominant mechanism's share and the coverage of the first
    mechanisms, both with the bootstrap's 2.5-97.5 % band over resampled samples; the chosen ε dashed.
    Right: per sample, how many consecutive layer pairs have a CKA within the margin of ``1 − ε``."""
    df = stability_frame(mech_ds)
    eps = df["eps"].to_numpy(dtype=float)
    chosen = float(mech_ds.attrs["eps"])
    boot = "boot_n_mechanisms_q025" in df
    sns.set_theme(style="whitegrid")
    fig, (ax_n, ax_s, ax_p) = plt.subplots(1, 3, figsize=(14.0, 5.2), gridspec_kw={"width_ratios": [1, 1, 0.8]})
    ax_n.plot(eps, df["n_mechanisms"], color="C0", marker="o", ms=3, lw=1.8, label="all samples", gid="n_mechanisms")
    if boot:
        ax_n.fill_between(eps, df["boot_n_mechanisms_q025"], df["boot_n_mechanisms_q975"], color="C0", alpha=0.2,
                          label=f"bootstrap 95 % ({mech_ds.sizes['bootstrap']} resamples)")
    ax_n.set_ylabel("distinct mechanisms")
    ax_n.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax_n.set_ylim(bottom=0)
    ax_n.set_title("mechanism count vs ε", fontsize=10)
    ax_s.plot(eps, df["dominant_share"], color="C3", marker="o", ms=3, lw=1.8, label="dominant mechanism's share",
              gid="dominant_share")
    if boot:
        ax_s.fill_between(eps, df["boot_dominant_share_q025"], df["boot_dominant_share_q975"], color="C3",
                          alpha=0.2, label="bootstrap 95 %")
    cov_cols = [c for c in df.columns if c.startswith("coverage_top")]
    for r, col in enumerate(cov_cols):
        ax_s.plot(eps, df[col], color="0.35", lw=1.0, ls=[":", "-.", "--", "-"][r % 4],
                  label=f"coverage of the first {r + 1} (Fig. 11 order)", gid=col)
    ax_s.set_ylim(0, 1.05)
    ax_s.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax_s.set_ylabel("share of samples")
    ax_s.set_title("dominant share and coverage vs ε", fontsize=10)
    for ax in (ax_n, ax_s):
        ax.axvline(chosen, color="k", ls="--", lw=1.0, label=f"chosen ε = {chosen:g}")
        ax.set_xlabel("ε (layers merge when CKA ≥ 1 − ε)")
        ax.legend(frameon=False, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)
    near = np.asarray(mech_ds["near_pairs"].values).astype(int)
    counts = np.bincount(near, minlength=int(near.max(initial=0)) + 1)
    ax_p.bar(np.arange(counts.size), counts, color="C2", gid="near_pairs")
    ax_p.set_xlabel(f"consecutive layer pairs with\n|CKA − {1 - chosen:g}| ≤ {float(mech_ds.attrs['margin']):g}")
    ax_p.set_ylabel("samples")
    ax_p.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_p.set_title(f"near the threshold: {np.mean(near > 0):.0%} of samples have one", fontsize=10)
    fig.suptitle(f"stability of the global mechanisms over {mech_ds.sizes['sample']} samples")
    fig.tight_layout()
    return _save(fig, path)


def plot_node_validation(ace_ds: xr.Dataset, path: str | os.PathLike[str]) -> Figure:
    """Causal validation of the nodes (not in the paper): per ablation (a node's last-layer output set to
    its mean over the sample's interventions, or over the analysed samples) a log-log scatter of each
    node's |ACE| against the prediction's KL change when it is ablated (output nodes as crosses, a node
    whose ablation flips the prediction in red), with the pooled Spearman; right, the per-sample Spearman
    correlations across nodes."""
    df = node_validation_frame(ace_ds)
    names = _strs(ace_ds["ablation"].values)
    sns.set_theme(style="whitegrid")
    fig, axes = plt.subplots(1, len(names) + 1, figsize=(4.6 * (len(names) + 1), 4.2))
    floor = 1e-12  # exact zeros drawn on the axis floor of a log scale
    for ax, name in zip(axes, names):
        part = df[df["ablation"] == name]
        for out, marker in ((False, "o"), (True, "x")):
            sub = part[part["output_node"] == out]
            colors = np.where(sub["flip"], "#d62728", "#1f77b4")
            ax.scatter(np.maximum(sub["abs_ace"], floor), np.maximum(sub["ablation_kl"], floor), c=colors, s=12,
                       marker=marker, alpha=0.6, linewidths=0.8 if out else 0,
                       gid=f"{name} {'output' if out else 'inner'}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        rho = float(ace_ds["ace_ablation_spearman_pooled"].sel(ablation=name))
        flips = part["flip"].mean() if len(part) else float("nan")
        ax.set_title(f"mean over the {name}: Spearman ρ = {rho:.2f}\n{flips:.0%} of nodes flip the prediction",
                     fontsize=9)
        ax.set_xlabel("|ACE| of the node")
        ax.set_ylabel("KL(prediction ablated ‖ original)")
    per = ace_ds["ace_ablation_spearman"].transpose("sample", "ablation")
    data = [np.asarray(per.sel(ablation=n).values, dtype=float) for n in names]
    data = [d[np.isfinite(d)] for d in data]
    ax = axes[-1]
    ax.boxplot(data, showfliers=False)
    for i, d in enumerate(data, start=1):
        ax.scatter(np.full(d.size, i) + np.linspace(-0.15, 0.15, d.size), d, s=8, color="0.2", alpha=0.5,
                   gid=f"spearman {names[i - 1]}")
    ax.set_xticks(range(1, len(names) + 1))
    ax.set_xticklabels([f"{n}\n({d.size} samples)" for n, d in zip(names, data)], fontsize=8)
    ax.axhline(0.0, color="0.4", lw=0.8)
    ax.set_ylim(-1.05, 1.05)
    ax.set_ylabel("Spearman(|ACE|, ablation KL)\nacross a sample's nodes")
    ax.set_title("per-sample agreement (≥ 3 nodes)", fontsize=9)
    fig.suptitle("do the causal nodes act as units? ablating each node vs its ACE")
    fig.tight_layout()
    return _save(fig, path)


def plot_reliability(rel_ds: xr.Dataset, path: str | os.PathLike[str]) -> Figure:
    """Paper 004 Fig. 3 under each protocol: per explanation method one bar per protocol (the
    paper's threshold masks solid, the equal-size masks hatched), the mean reliability score
    (share of predictions that change when a fraction of the method's mask is perturbed) with
    the bootstrap interval over samples as error bars (± std over trials when the dataset has
    no interval), the trials as dots and the number of empty masks above each bar ("∅ n");
    TRACER highlighted. A method without scores is "n/a"."""
    df = reliability_frame(rel_ds)
    protocols = list(dict.fromkeys(df["protocol"]))
    methods = list(dict.fromkeys(df["method"]))
    n_p = len(protocols)
    width = 0.8 / n_p
    has_ci = bool(np.isfinite(df["ci_low"].values).any())
    ds = rel_ds if "protocol" in rel_ds.dims else rel_ds.expand_dims(protocol=["paper"])
    sns.set_theme(style="whitegrid")
    fig, ax = plt.subplots(figsize=(min(MAX_WIDTH, max(5.5, (0.55 + 0.35 * n_p) * len(methods) + 2.0)), 4.6))
    err_x, err_y, err_lo, err_hi = [], [], [], []
    for q, protocol in enumerate(protocols):
        part = df[df["protocol"] == protocol].reset_index(drop=True)
        x = np.arange(len(part)) + (q - (n_p - 1) / 2) * width
        colors = [TRACER_COLOR if m == "tracer" else OTHER_COLOR for m in part["method"]]
        bars = ax.bar(x, np.nan_to_num(part["mean"].values, nan=0.0), width=width * 0.95, color=colors,
                      edgecolor="0.2", linewidth=0.6, hatch="//" if q else None, alpha=1.0 if q == 0 else 0.75,
                      label=PROTOCOL_NAMES.get(protocol, protocol))
        mean = part["mean"].values
        if has_ci:
            lo, hi = mean - part["ci_low"].values, part["ci_high"].values - mean
        else:
            lo = hi = part["std"].values
        err_x.extend(x), err_y.extend(mean), err_lo.extend(lo), err_hi.extend(hi)
        if "score" in ds:
            score = np.asarray(ds["score"].sel(protocol=protocol).transpose("method", ...).values, dtype=float)
            for i, sc in enumerate(score):
                sc = sc[np.isfinite(sc)]
                jitter = np.linspace(-0.3, 0.3, sc.size) * width if sc.size > 1 else np.zeros(sc.size)
                ax.scatter(x[i] + jitter, sc, s=6, color="0.1", alpha=0.45, zorder=3, linewidths=0)
        for i, m in enumerate(mean):
            if not np.isfinite(m):
                bars[i].set_visible(False)
                ax.text(x[i], 0.02, "n/a", ha="center", va="bottom", fontsize=8, color="0.3")
            elif np.isfinite(part["n_empty"].iloc[i]):
                top = m + (hi[i] if np.isfinite(hi[i]) else 0.0)
                ax.text(x[i], top + 0.01, f"∅{int(part['n_empty'].iloc[i])}", ha="center", va="bottom",
                        fontsize=6.5, color="0.25", gid=f"n_empty {part['method'].iloc[i]} {protocol}")
    ax.errorbar(err_x, err_y, yerr=[err_lo, err_hi], fmt="none", ecolor="0.15", capsize=3, lw=1.0,
                gid="ci" if has_ci else "std")
    ax.set_xticks(np.arange(len(methods)))
    ax.set_xticklabels([_name(m) for m in methods], rotation=30, ha="right")
    for lab, m in zip(ax.get_xticklabels(), methods):
        if m == "tracer":
            lab.set_fontweight("bold")
            lab.set_color(TRACER_COLOR)
    top = np.nanmax(np.concatenate([np.asarray(err_y, dtype=float) + np.nan_to_num(err_hi), [1.0]]))
    ax.set_ylim(0, max(1.0, float(top)) * 1.1)
    ax.set_ylabel("reliability score\n(share of changed predictions)")
    if n_p > 1:
        ax.legend(fontsize=7, loc="upper right")
    trials = int(df["n_trials"].max()) if len(df) else 0
    p = rel_ds.attrs.get("p", rel_ds.attrs.get("fraction"))
    spread = (f"{float(rel_ds.attrs.get('ci', 0.95)):.0%} bootstrap interval over "
              f"{rel_ds.attrs.get('n_samples', '?')} samples" if has_ci else "± std")
    what = f"mean over {trials} trials, {spread}" + (f", p = {float(p):g}" if p is not None else "")
    ax.set_title(f"reliability of explanation methods ({what}); ∅ = empty masks", fontsize=9)
    fig.tight_layout()
    return _save(fig, path)
