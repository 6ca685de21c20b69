"""Figures of one TRACER sample (rule ``tracer_sample_figures``; paper 004 Fig. 2 and App. B Fig. 5):
its causal graph next to the CKA between its layers, and each causal node's feature contributions.

Inputs and conventions as in :mod:`causalxai.plots.tracer_figures`.
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
from matplotlib.patches import Rectangle  # noqa: E402

from causalxai.plots._figure import require, save_figure as _save  # noqa: E402
from causalxai.plots.tracer_figures import (  # noqa: E402
    MAX_WIDTH,
    _check_sample,
    _cka_matrix,
    _group_runs,
    _heatmap,
    _strs,
    compact_group,
)

__all__ = ["contribution_frame", "graph_edges", "plot_causal_graph", "plot_contributions", "stochastic_groups",
           "unit_frame"]


def graph_edges(cka_ds: xr.Dataset, sample) -> tuple[list[tuple[int, int]], dict[int, str]]:
    """The causal graph of one sample: directed edges ``(a, b)`` (``link[a, b]`` true, ``a < b <
    n_groups``, padding ignored) sorted, and node labels ``{group: "conv1+relu1"}`` (the member
    layer names, :func:`compact_group`)."""
    require(cka_ds, ["group", "n_groups", "link"], "causal_nodes.nc")
    sel = _check_sample(cka_ds, sample, "causal_nodes.nc")
    n = int(cka_ds["n_groups"].sel(sel))
    groups = np.asarray(cka_ds["group"].sel(sel).values).astype(int)
    layers = _strs(cka_ds["layer"].values) if "layer" in cka_ds.coords else [str(i) for i in range(groups.size)]
    link = np.asarray(cka_ds["link"].sel(sel).transpose("group_a", "group_b").values, dtype=bool)[:n, :n]
    edges = [(int(a), int(b)) for a, b in np.argwhere(link)]
    labels = {g: compact_group([lay for lay, gi in zip(layers, groups) if gi == g]) for g in range(n)}
    return sorted(edges), labels


def contribution_frame(ace_ds: xr.Dataset, sample) -> pd.DataFrame:
    """The causal nodes of one sample drawn in Fig. 5: rows (group, output_layer, ace, vmax),
    ``vmax`` being the symmetric colour limit max |attribution|; padded groups (ACE and
    attribution all NaN) are left out."""
    require(ace_ds, ["attribution", "ace", "output_layer"], "ace.nc")
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


def stochastic_groups(cka_ds: xr.Dataset, sample) -> set[int]:
    """The causal nodes of one sample that hold a stochastic (exogenous) layer (paper 004 App. H.2;
    ``causal_nodes.nc`` variable ``stochastic (layer)``, absent: none)."""
    if "stochastic" not in cka_ds:
        return set()
    sel = _check_sample(cka_ds, sample, "causal_nodes.nc")
    groups = np.asarray(cka_ds["group"].sel(sel).values).astype(int)
    return {int(g) for g, s in zip(groups, np.asarray(cka_ds["stochastic"].values, dtype=bool)) if s}


def _draw_graph(ax, edges: list[tuple[int, int]], labels: dict[int, str], stochastic: set[int] = frozenset()
                ) -> None:
    import networkx as nx

    nodes = sorted(labels)
    graph = nx.DiGraph()
    graph.add_nodes_from(nodes)
    graph.add_edges_from(edges)
    pos = {g: (float(g), 0.0) for g in nodes}  # left to right, one line: deterministic
    node_size = 900
    colours = ["#f4cccc" if g in stochastic else "#cfe2f3" for g in nodes]  # stochastic (exogenous) nodes in red
    nx.draw_networkx_nodes(graph, pos, ax=ax, node_size=node_size, node_color=colours, edgecolors="#1f4e79")
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
        ax.text(g, -0.22, labels[g].replace("+", "\n") + ("\n(stochastic)" if g in stochastic else ""), ha="center",
                va="top", fontsize=7)
    n = max(len(nodes), 1)
    ax.set_xlim(-0.6, n - 0.4)
    ax.set_ylim(-0.9, max(0.5, abs(rad) * span / 2 + 0.3))
    ax.set_axis_off()


def plot_causal_graph(cka_ds: xr.Dataset, path: str | os.PathLike[str], sample) -> Figure:
    """Paper 004 Fig. 2 for one sample: left the CKA of every pair of layers (layer groups
    outlined), right the causal graph: one node per layer group (its member layers below),
    adjacent links straight, skip links as arcs above the chain, nodes holding a stochastic
    (exogenous) layer (App. H.2) in red and marked."""
    require(cka_ds, ["cka"], "causal_nodes.nc")
    edges, labels = graph_edges(cka_ds, sample)
    sel = _check_sample(cka_ds, sample, "causal_nodes.nc")
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
    _draw_graph(ax_g, edges, labels, stochastic_groups(cka_ds, sample))
    ax_g.set_title(f"causal graph: {n_nodes} node{'s' if n_nodes != 1 else ''}, {len(edges)} link"
                   f"{'s' if len(edges) != 1 else ''}", fontsize=10)
    fig.suptitle(f"TRACER causal structure, sample {sample}")
    fig.tight_layout()
    return _save(fig, path, bbox_inches="tight")


def unit_frame(ace_ds: xr.Dataset, sample) -> pd.DataFrame:
    """The top units of one sample's causal nodes (App. B, Fig. 5): rows (group, output_layer, rank, unit,
    score), padded groups and ranks left out."""
    require(ace_ds, ["top_unit", "top_unit_score", "output_layer"], "ace.nc")
    sel = _check_sample(ace_ds, sample, "ace.nc")
    unit = np.asarray(ace_ds["top_unit"].sel(sel).transpose("group", "unit_rank").values).astype(int)
    score = np.asarray(ace_ds["top_unit_score"].sel(sel).transpose("group", "unit_rank").values, dtype=float)
    out = _strs(ace_ds["output_layer"].sel(sel).values)
    rows = [(g, out[g], r, int(unit[g, r]), float(score[g, r]))
            for g in range(unit.shape[0]) for r in range(unit.shape[1]) if unit[g, r] >= 0]
    return pd.DataFrame(rows, columns=["group", "output_layer", "rank", "unit", "score"])


def _draw_units(fig: Figure, axes: np.ndarray, one: xr.Dataset, frame: pd.DataFrame,
                image: np.ndarray | None) -> None:
    """One row per drawn node: its top units' contribution maps (non-negative, own colour limit)."""
    maps = np.asarray(one["unit_attribution"].transpose("group", "unit_rank", "y", "x").values, dtype=float)
    unit = np.asarray(one["top_unit"].transpose("group", "unit_rank").values).astype(int)
    score = np.asarray(one["top_unit_score"].transpose("group", "unit_rank").values, dtype=float)
    for row, node in zip(axes, frame.itertuples(index=False)):
        g = int(node.group)
        for r, ax in enumerate(row):
            if r >= unit.shape[1] or unit[g, r] < 0:
                ax.set_visible(False)
                continue
            m = maps[g, r]
            im = ax.imshow(m, cmap="magma", vmin=0.0, vmax=float(np.nanmax(m)) or 1.0, interpolation="nearest")
            im.set_gid(f"unit G{g + 1} #{unit[g, r]}")
            if image is not None:
                ax.contour(image, levels=[float(np.mean([image.min(), image.max()]))], colors="0.8", linewidths=0.5)
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03).ax.tick_params(labelsize=6)
            ax.set_title(f"G{g + 1} {node.output_layer}: top-{r + 1} unit #{unit[g, r]}\n"
                         f"mean |Δ| = {score[g, r]:.3g}", fontsize=8)


#: features drawn in a tabular sample's contribution figure (paper 004 App. D, Fig. 10: the top 20)
TOP_FEATURES = 20


def _plot_feature_contributions(image: np.ndarray, mask: np.ndarray, attr: np.ndarray, frame: pd.DataFrame,
                                groups: list, feature_names: list[str] | None, title: str,
                                path: str | os.PathLike[str]) -> Figure:
    """Fig. 10 of paper 004 (App. D) for a tabular sample (a 1 × F input): the top
    :data:`TOP_FEATURES` features by their largest |attribution| over the causal nodes, as horizontal
    bars: the input's values (features of the explanation mask in orange), then each node's signed
    attribution (blue positive, red negative)."""
    values, in_mask = image[0], mask[0]
    n_feat = values.size
    names = list(feature_names) if feature_names is not None and len(feature_names) == n_feat else \
        [f"f{i}" for i in range(n_feat)]
    rows = [np.asarray(attr[groups.index(r.group)], dtype=float)[0] for r in frame.itertuples(index=False)]
    score = np.nanmax(np.abs(np.stack(rows)), axis=0) if rows else np.abs(values)
    top = np.argsort(-np.nan_to_num(score), kind="stable")[: min(TOP_FEATURES, n_feat)][::-1]
    sns.set_theme(style="whitegrid")
    n_panels = 1 + len(rows)
    fig, axes = plt.subplots(1, n_panels, figsize=(2.2 + 2.4 * n_panels, 0.9 + 0.24 * top.size), sharey=True,
                             squeeze=False)
    ypos = np.arange(top.size)
    ax = axes[0, 0]
    ax.barh(ypos, values[top], color=["C1" if in_mask[i] else "0.6" for i in top])
    ax.set_yticks(ypos, [names[i] for i in top], fontsize=7)
    ax.set_title(f"{title}\nscaled value (orange: in the mask, {int(in_mask.sum())} of {n_feat})", fontsize=8)
    for ax, row, a in zip(axes[0, 1:], frame.itertuples(index=False), rows):
        ax.barh(ypos, a[top], color=["C0" if v >= 0 else "C3" for v in a[top]])
        ax.axvline(0.0, color="0.3", linewidth=0.6)
        ace = "n/a" if not np.isfinite(row.ace) else f"{row.ace:.3g}"
        ax.set_title(f"G{row.group + 1}: {row.output_layer}\nACE = {ace}", fontsize=8)
        ax.tick_params(axis="x", labelsize=7)
    fig.suptitle(f"feature contributions per causal node (blue +, red −), top {top.size} features", fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def plot_contributions(interventions_ds: xr.Dataset, ace_ds: xr.Dataset, path: str | os.PathLike[str],
                       sample, feature_names: list[str] | None = None) -> Figure:
    """Paper 004 App. B (Fig. 5) for one sample: the input, then one panel per causal node with
    its signed attribution over the input (blue positive, red negative, limits ±max|·| per
    panel, the input's outline on top), titled with the node's output layer and ACE, then the
    binary explanation mask. Padded groups are not drawn. When ace.nc has the nodes' top units
    (``top_unit``, ``unit_attribution``; App. B, Fig. 5), one more row per node shows their
    contribution maps (:func:`unit_frame`).

    A tabular sample (a one-row input, ``y`` of length 1) is drawn as bars over its features instead
    (paper 004 Fig. 10, :func:`_plot_feature_contributions`), labelled with ``feature_names``."""
    require(interventions_ds, ["image"], "interventions.nc")
    require(ace_ds, ["mask"], "ace.nc")
    sel_i = _check_sample(interventions_ds, sample, "interventions.nc")
    frame = contribution_frame(ace_ds, sample)
    sel_a = _check_sample(ace_ds, sample, "ace.nc")
    image = np.asarray(interventions_ds["image"].sel(sel_i).transpose("y", "x").values, dtype=float)
    mask = np.asarray(ace_ds["mask"].sel(sel_a).transpose("y", "x").values, dtype=bool)
    attr = ace_ds["attribution"].sel(sel_a).transpose("group", "y", "x")
    groups = np.asarray(attr["group"].values).tolist() if "group" in attr.coords else list(range(attr.sizes["group"]))
    title = f"input, sample {sample}"
    if "label" in interventions_ds and "pred" in interventions_ds:
        title = (f"input, sample {sample}\nlabel {int(interventions_ds['label'].sel(sel_i))}, "
                 f"pred {int(interventions_ds['pred'].sel(sel_i))}")
    if image.shape[0] == 1:  # a tabular row
        return _plot_feature_contributions(image, mask, np.asarray(attr.values, dtype=float), frame, groups,
                                           feature_names, title, path)

    n_panels = len(frame) + 2
    ncols = min(n_panels, 6)
    nrows = -(-n_panels // ncols)
    units = "unit_attribution" in ace_ds and "top_unit" in ace_ds  # App. B: each node's top units
    n_units = ace_ds.sizes["unit_rank"] if units else 0
    unit_rows = len(frame) if units else 0
    ncols = max(ncols, n_units)
    sns.set_theme(style="white")
    fig, axes = plt.subplots(nrows + unit_rows, ncols, figsize=(2.6 * ncols, 2.9 * (nrows + unit_rows)),
                             squeeze=False)
    flat = axes[:nrows].ravel()
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
    if units:
        _draw_units(fig, axes[nrows:], ace_ds.sel(sel_a), frame, image if outline else None)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in flat[n_panels:]:
        ax.set_visible(False)
    fig.suptitle("feature contributions per causal node (blue +, red −)"
                 + ("; below, each node's top units: mean |Δ activation| of the covering patches" if units else ""))
    fig.tight_layout()
    return _save(fig, path)
