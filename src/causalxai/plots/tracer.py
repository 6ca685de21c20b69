"""Figures of the TRACER steps (paper 004 Fig. 2, 3, 5, 11, 12), read from their netCDF files.

As in :mod:`causalxai.plots.effects`, each ``plot_*`` function draws from small ``*_frame``
helpers that return the plotted numbers (so what a figure shows can be checked against the
dataset), writes a PNG atomically and returns the (closed) figure for inspection.

Inputs (dims in brackets):

* ``interventions.nc``: ``image (sample, y, x)`` in [-1, 1], ``label (sample)``, ``pred (sample)``,
  ``cka (sample, layer_i, layer_j)``.
* ``cka.nc``: ``cka (sample, layer_i, layer_j)``, ``group (sample, layer)`` (ids 0..G-1 in layer
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
from matplotlib.patches import Rectangle  # noqa: E402
from matplotlib.ticker import MaxNLocator, PercentFormatter  # noqa: E402

from causalxai.plots._figure import DPI, save_figure as _save  # noqa: E402,F401

__all__ = [
    "compact_group",
    "contribution_frame",
    "coverage_frame",
    "eps_sweep_frame",
    "graph_edges",
    "plot_causal_graph",
    "plot_cka",
    "plot_contributions",
    "plot_coverage",
    "plot_eps_sweep",
    "plot_reliability",
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
}
TRACER_COLOR = "#d62728"
OTHER_COLOR = "#9aa5b1"


# --- helpers -----------------------------------------------------------------------------


def _strs(values) -> list[str]:
    return [str(v) for v in np.asarray(values).tolist()]




def _need(ds: xr.Dataset, names, what: str) -> None:
    missing = [n for n in names if n not in ds.variables]
    if missing:
        have = ", ".join(sorted(map(str, ds.data_vars))) or "none"
        raise ValueError(f"{what} lacks {', '.join(missing)} (it holds: {have}); is it the output of the right step?")


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


def _heatmap(ax, matrix: np.ndarray, names: list[str], cbar: bool = True, cbar_ax=None) -> None:
    annot = matrix.shape[0] <= 10
    sns.heatmap(matrix, ax=ax, vmin=0.0, vmax=1.0, cmap="viridis", square=True, cbar=cbar, cbar_ax=cbar_ax,
                xticklabels=names, yticklabels=names, annot=annot, fmt=".2f",
                annot_kws={"fontsize": 6}, cbar_kws={"label": "linear CKA"} if cbar else None)
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


def graph_edges(cka_ds: xr.Dataset, sample) -> tuple[list[tuple[int, int]], dict[int, str]]:
    """The causal graph of one sample: directed edges ``(a, b)`` (``link[a, b]`` true, ``a < b <
    n_groups``, padding ignored) sorted, and node labels ``{group: "conv1+relu1"}`` (the member
    layer names, :func:`compact_group`)."""
    _need(cka_ds, ["group", "n_groups", "link"], "cka.nc")
    sel = _check_sample(cka_ds, sample, "cka.nc")
    n = int(cka_ds["n_groups"].sel(sel))
    groups = np.asarray(cka_ds["group"].sel(sel).values).astype(int)
    layers = _strs(cka_ds["layer"].values) if "layer" in cka_ds.coords else [str(i) for i in range(groups.size)]
    link = np.asarray(cka_ds["link"].sel(sel).transpose("group_a", "group_b").values, dtype=bool)[:n, :n]
    edges = [(int(a), int(b)) for a, b in np.argwhere(link)]
    labels = {g: compact_group([lay for lay, gi in zip(layers, groups) if gi == g]) for g in range(n)}
    return sorted(edges), labels


def eps_sweep_frame(cka_ds: xr.Dataset) -> pd.DataFrame:
    """Number of causal nodes per (sample, ε) (App. G): rows (sample, eps, n_groups)."""
    _need(cka_ds, ["n_groups_sweep"], "cka.nc")
    da = cka_ds["n_groups_sweep"].transpose("sample", "eps")
    idx = pd.MultiIndex.from_product([_sample_ids(cka_ds), np.asarray(da["eps"].values, dtype=float).tolist()],
                                     names=["sample", "eps"])
    return pd.DataFrame({"n_groups": np.asarray(da.values).astype(int).ravel()}, index=idx).reset_index()


def contribution_frame(ace_ds: xr.Dataset, sample) -> pd.DataFrame:
    """The causal nodes of one sample drawn in Fig. 5: rows (group, output_layer, ace, vmax),
    ``vmax`` being the symmetric colour limit max |attribution|; padded groups (ACE and
    attribution all NaN) are left out."""
    _need(ace_ds, ["attribution", "ace", "output_layer"], "ace.nc")
    sel = _check_sample(ace_ds, sample, "ace.nc")
    attr = np.asarray(ace_ds["attribution"].sel(sel).transpose("group", "y", "x").values, dtype=float)
    ace = np.asarray(ace_ds["ace"].sel(sel).values, dtype=float)
    out = _strs(ace_ds["output_layer"].sel(sel).values)
    groups = np.asarray(ace_ds["group"].values).tolist() if "group" in ace_ds.coords else list(range(ace.size))
    rows = []
    for k, g in enumerate(groups):
        finite = np.isfinite(attr[k])
        if not (np.isfinite(ace[k]) or finite.any()):
            continue
        vmax = float(np.abs(attr[k][finite]).max()) if finite.any() else 0.0
        rows.append((int(g), out[k], float(ace[k]), vmax))
    return pd.DataFrame(rows, columns=["group", "output_layer", "ace", "vmax"])


def coverage_frame(mech_ds: xr.Dataset) -> pd.DataFrame:
    """One row per mechanism in the dataset's order: (mechanism, n_nodes, composition,
    label, n_samples, share, coverage); ``label`` is the tick label of Fig. 11."""
    _need(mech_ds, ["n_nodes", "composition", "n_samples", "share", "coverage"], "mechanisms.nc")
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
    df.insert(3, "label", [f"{k} node{'s' if k != 1 else ''}\n" + short_composition(c).replace(" | ", "\n")
                           for k, c in zip(df["n_nodes"], df["composition"])])
    return df


def reliability_frame(rel_ds: xr.Dataset) -> pd.DataFrame:
    """One row per method in the dataset's order: (method, name, mean, std, n_trials),
    ``n_trials`` counting finite scores; NaN kept (a method that did not run)."""
    _need(rel_ds, ["mean", "std"], "reliability.nc")
    methods = _strs(rel_ds["method"].values)
    if "score" in rel_ds:
        n = np.isfinite(np.asarray(rel_ds["score"].transpose("method", ...).values, dtype=float)).sum(axis=-1)
    else:
        n = np.zeros(len(methods), dtype=int)
    return pd.DataFrame({
        "method": methods,
        "name": [_name(m) for m in methods],
        "mean": np.asarray(rel_ds["mean"].values, dtype=float),
        "std": np.asarray(rel_ds["std"].values, dtype=float),
        "n_trials": np.asarray(n).astype(int),
    })


# --- figures -------------------------------------------------------------------------------


def _draw_graph(ax, edges: list[tuple[int, int]], labels: dict[int, str]) -> None:
    import networkx as nx

    nodes = sorted(labels)
    graph = nx.DiGraph()
    graph.add_nodes_from(nodes)
    graph.add_edges_from(edges)
    pos = {g: (float(g), 0.0) for g in nodes}  # left to right, one line: deterministic
    node_size = 900
    nx.draw_networkx_nodes(graph, pos, ax=ax, node_size=node_size, node_color="#cfe2f3", edgecolors="#1f4e79")
    nx.draw_networkx_labels(graph, pos, labels={g: f"G{g + 1}" for g in nodes}, ax=ax, font_size=9,
                            font_weight="bold")
    rad = -0.35  # skip links arc above the chain
    span = max([b - a for a, b in edges] + [1])
    for a, b in edges:
        style = "arc3,rad=0" if b - a == 1 else f"arc3,rad={rad}"
        patches = nx.draw_networkx_edges(graph, pos, edgelist=[(a, b)], ax=ax, arrows=True, arrowstyle="-|>",
                                         arrowsize=14, connectionstyle=style, node_size=node_size,
                                         edge_color="#1f4e79" if b - a == 1 else "#e07b00", width=1.4)
        for p in np.atleast_1d(patches):
            p.set_gid(f"edge {a}->{b}")
    for g in nodes:
        ax.text(g, -0.22, labels[g].replace("+", "\n"), ha="center", va="top", fontsize=7)
    n = max(len(nodes), 1)
    ax.set_xlim(-0.6, n - 0.4)
    ax.set_ylim(-0.9, max(0.5, abs(rad) * span / 2 + 0.3))
    ax.set_axis_off()


def plot_causal_graph(cka_ds: xr.Dataset, path: str | os.PathLike[str], sample) -> Figure:
    """Paper 004 Fig. 2 for one sample: left the CKA of every pair of layers (layer groups
    outlined), right the causal graph: one node per layer group (its member layers below),
    adjacent links straight, skip links as arcs above the chain."""
    _need(cka_ds, ["cka"], "cka.nc")
    edges, labels = graph_edges(cka_ds, sample)
    sel = _check_sample(cka_ds, sample, "cka.nc")
    matrix, names = _cka_matrix(cka_ds, sel)
    groups = np.asarray(cka_ds["group"].sel(sel).values).astype(int)
    sns.set_theme(style="white")
    n_layers, n_nodes = len(names), len(labels)
    fig, (ax_h, ax_g) = plt.subplots(1, 2, figsize=(min(MAX_WIDTH, 4.0 + 0.3 * n_layers + 1.3 * max(n_nodes, 3)),
                                                     min(9.0, 4.6 + 0.05 * n_layers)),
                                     gridspec_kw={"width_ratios": [1.0, max(1.0, 0.35 * n_nodes)]})
    _heatmap(ax_h, matrix, names)
    for _, start, size in _group_runs(groups):
        ax_h.add_patch(Rectangle((start, start), size, size, fill=False, ec="white", lw=2.0))
    eps = cka_ds.attrs.get("eps")
    ax_h.set_title("CKA between layers" + (f" (ε = {float(eps):g})" if eps is not None else ""), fontsize=10)
    _draw_graph(ax_g, edges, labels)
    ax_g.set_title(f"causal graph: {n_nodes} node{'s' if n_nodes != 1 else ''}, {len(edges)} link"
                   f"{'s' if len(edges) != 1 else ''}", fontsize=10)
    fig.suptitle(f"TRACER causal structure, sample {sample}")
    fig.tight_layout()
    return _save(fig, path, bbox_inches="tight")


def plot_cka(cka_ds: xr.Dataset, path: str | os.PathLike[str], samples=None) -> Figure:
    """CKA heat maps (vmin 0, vmax 1) of up to four samples side by side, one shared colour bar;
    ``samples`` defaults to the first four of the dataset."""
    _need(cka_ds, ["cka"], "the CKA dataset")
    ids = _sample_ids(cka_ds)
    if samples is None:
        samples = ids[:MAX_CKA_PANELS]
    elif np.ndim(samples) == 0:
        samples = [samples]
    samples = list(samples)
    if not 1 <= len(samples) <= MAX_CKA_PANELS:
        raise ValueError(f"plot_cka draws 1 to {MAX_CKA_PANELS} samples, got {len(samples)}: {samples}")
    sels = [_check_sample(cka_ds, s, "the CKA dataset") for s in samples]
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
        _heatmap(ax, matrix, names, cbar=k == 0, cbar_ax=cax if k == 0 else None)
        title = f"sample {s}"
        if "n_groups" in cka_ds:
            ng = int(cka_ds["n_groups"].sel(sel))
            title += f": {ng} node{'s' if ng != 1 else ''}"
        ax.set_title(title, fontsize=10)
        if k:
            ax.set_yticklabels([])
    fig.suptitle("linear CKA between layer activations over the interventions")
    fig.tight_layout()
    return _save(fig, path, bbox_inches="tight")


def plot_eps_sweep(cka_ds: xr.Dataset, path: str | os.PathLike[str]) -> Figure:
    """Paper 004 App. G (Fig. 12): left the number of causal nodes per ε (one thin line per
    sample, the mean with the min–max range over samples); right the group of every layer at
    each ε for the first sample (one row per ε). ε are evenly spaced on the axis."""
    _need(cka_ds, ["group_sweep", "n_groups_sweep"], "cka.nc")
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
    strip = np.asarray(cka_ds["group_sweep"].sel(_check_sample(cka_ds, first, "cka.nc"))
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


def plot_contributions(interventions_ds: xr.Dataset, ace_ds: xr.Dataset, path: str | os.PathLike[str],
                       sample) -> Figure:
    """Paper 004 App. B (Fig. 5) for one sample: the input, then one panel per causal node with
    its signed attribution over the input (blue positive, red negative, limits ±max|·| per
    panel, the input's outline on top), titled with the node's output layer and ACE, then the
    binary explanation mask. Padded groups are not drawn."""
    _need(interventions_ds, ["image"], "interventions.nc")
    _need(ace_ds, ["mask"], "ace.nc")
    sel_i = _check_sample(interventions_ds, sample, "interventions.nc")
    frame = contribution_frame(ace_ds, sample)
    sel_a = _check_sample(ace_ds, sample, "ace.nc")
    image = np.asarray(interventions_ds["image"].sel(sel_i).transpose("y", "x").values, dtype=float)
    mask = np.asarray(ace_ds["mask"].sel(sel_a).transpose("y", "x").values, dtype=bool)
    attr = ace_ds["attribution"].sel(sel_a).transpose("group", "y", "x")
    groups = np.asarray(attr["group"].values).tolist() if "group" in attr.coords else list(range(attr.sizes["group"]))

    n_panels = len(frame) + 2
    ncols = min(n_panels, 6)
    nrows = -(-n_panels // ncols)
    sns.set_theme(style="white")
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.6 * ncols, 2.9 * nrows), squeeze=False)
    flat = axes.ravel()
    title = f"input, sample {sample}"
    if "label" in interventions_ds and "pred" in interventions_ds:
        title = (f"input, sample {sample}\nlabel {int(interventions_ds['label'].sel(sel_i))}, "
                 f"pred {int(interventions_ds['pred'].sel(sel_i))}")
    flat[0].imshow(image, cmap="gray", vmin=-1.0, vmax=1.0, interpolation="nearest")
    flat[0].set_title(title, fontsize=9)
    outline = np.ptp(image) > 0

    for k, row in enumerate(frame.itertuples(index=False), start=1):
        ax = flat[k]
        a = np.asarray(attr.isel({"group": groups.index(row.group)}).values, dtype=float)
        vmax = row.vmax if row.vmax > 0 else 1.0
        im = ax.imshow(a, cmap="RdBu", vmin=-vmax, vmax=vmax, interpolation="nearest")
        im.set_gid(f"attribution G{row.group + 1}")
        if outline:
            ax.contour(image, levels=[float(np.mean([image.min(), image.max()]))], colors="0.25", linewidths=0.6)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03).ax.tick_params(labelsize=6)
        ace = "n/a" if not np.isfinite(row.ace) else f"{row.ace:.3g}"
        ax.set_title(f"G{row.group + 1}: {row.output_layer}\nACE = {ace}", fontsize=9)

    ax = flat[len(frame) + 1]
    im = ax.imshow(mask.astype(float), cmap="Greys", vmin=0.0, vmax=1.0, interpolation="nearest")
    im.set_gid("mask")
    if outline:
        ax.contour(image, levels=[float(np.mean([image.min(), image.max()]))], colors="C1", linewidths=0.6)
    ax.set_title(f"explanation mask\n{int(mask.sum())} of {mask.size} features", fontsize=9)
    for ax in flat:
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in flat[n_panels:]:
        ax.set_visible(False)
    fig.suptitle("feature contributions per causal node (blue +, red −)")
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
    ax.set_xlabel("causal mechanism (number of nodes, composition)")
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


def plot_reliability(rel_ds: xr.Dataset, path: str | os.PathLike[str]) -> Figure:
    """Paper 004 Fig. 3: one bar per explanation method, the mean reliability score (share of
    predictions that change when a fraction of the method's mask is perturbed) with ± std
    error bars and the trials as dots; TRACER highlighted. A method without scores is "n/a"."""
    df = reliability_frame(rel_ds)
    x = np.arange(len(df))
    colors = [TRACER_COLOR if m == "tracer" else OTHER_COLOR for m in df["method"]]
    sns.set_theme(style="whitegrid")
    fig, ax = plt.subplots(figsize=(max(5.5, 0.85 * len(df) + 2.0), 4.2))
    bars = ax.bar(x, np.nan_to_num(df["mean"].values, nan=0.0), color=colors, edgecolor="0.2", linewidth=0.6)
    ax.errorbar(x, df["mean"].values, yerr=df["std"].values, fmt="none", ecolor="0.15", capsize=4, lw=1.0,
                gid="std")
    if "score" in rel_ds:
        score = np.asarray(rel_ds["score"].transpose("method", ...).values, dtype=float)
        for i, s in enumerate(score):
            s = s[np.isfinite(s)]
            jitter = np.linspace(-0.18, 0.18, s.size) if s.size > 1 else np.zeros(s.size)
            ax.scatter(x[i] + jitter, s, s=7, color="0.1", alpha=0.5, zorder=3, linewidths=0)
    for i, m in enumerate(df["mean"]):
        if not np.isfinite(m):
            bars[i].set_visible(False)
            ax.text(x[i], 0.02, "n/a", ha="center", va="bottom", fontsize=8, color="0.3")
    ax.set_xticks(x)
    ax.set_xticklabels(df["name"].tolist(), rotation=30, ha="right")
    for lab, m in zip(ax.get_xticklabels(), df["method"]):
        if m == "tracer":
            lab.set_fontweight("bold")
            lab.set_color(TRACER_COLOR)
    top = np.nanmax(np.concatenate([(df["mean"] + df["std"].fillna(0)).values, [1.0]]))
    ax.set_ylim(0, max(1.0, float(top)) * 1.05)
    ax.set_ylabel("reliability score\n(share of changed predictions)")
    trials = int(df["n_trials"].max()) if len(df) else 0
    p = rel_ds.attrs.get("p", rel_ds.attrs.get("fraction"))
    what = f"mean ± std over {trials} trials" + (f", p = {float(p):g}" if p is not None else "")
    ax.set_title(f"reliability of explanation methods ({what})", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)
