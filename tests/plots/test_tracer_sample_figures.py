"""One TRACER sample's figures (rule tracer_sample_figures; paper 004 Fig. 2, App. B Fig. 5) on
synthetic datasets of the steps' schemas (tests/plots/tracer_outputs.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from matplotlib.patches import FancyArrowPatch

from causalxai.plots.tracer_figures import compact_group
from causalxai.plots.tracer_sample_figures import contribution_frame, graph_edges, plot_causal_graph, plot_contributions
from tests.plots.tracer_outputs import (
    GROUPS,
    LAYERS,
    SAMPLES,
    SKIPS,
    check_png,
    make_ace,
    make_cka,
    make_interventions,
    make_large_cka,
)


@pytest.fixture(scope="module")
def data():
    return {"cka": make_cka(), "int": make_interventions(), "ace": make_ace()}


@pytest.fixture(scope="module")
def drawn(data, tmp_path_factory):
    before = {k: v.copy(deep=True) for k, v in data.items()}
    out = tmp_path_factory.mktemp("figures") / "sub"
    paths = {k: out / f"{k}.png" for k in ["graph", "contrib"]}
    figs = {
        "graph": plot_causal_graph(data["cka"], paths["graph"], 42),
        "contrib": plot_contributions(data["int"], data["ace"], paths["contrib"], 3),
    }
    return paths, figs, before


@pytest.mark.parametrize("fig", ["graph", "contrib"])
def test_writes_png(drawn, fig):
    check_png(drawn[0][fig])


def test_plots_leave_inputs_untouched(data, drawn):
    for k, ds in data.items():
        xr.testing.assert_identical(ds, drawn[2][k])


@pytest.mark.parametrize("sample", SAMPLES)
def test_graph_edges_are_the_link_entries(data, sample):
    ds = data["cka"]
    edges, labels = graph_edges(ds, sample)
    n = int(ds["n_groups"].sel(sample=sample))
    link = ds["link"].sel(sample=sample).values
    assert edges == sorted(map(tuple, np.argwhere(link).tolist()))  # padding is False
    assert edges == sorted([(a, a + 1) for a in range(n - 1)] + SKIPS[sample])
    assert sorted(labels) == list(range(n))
    g = np.asarray(GROUPS[sample])
    for j in range(n):
        assert labels[j] == compact_group([LAYERS[i] for i in np.flatnonzero(g == j)])


def test_causal_graph_draws_every_link_once(data, drawn):
    fig = drawn[1]["graph"]
    ax_h, ax_g = [ax for ax in fig.axes if ax.get_title()][:2]
    edges, labels = graph_edges(data["cka"], 42)
    arrows = [p for p in ax_g.patches if isinstance(p, FancyArrowPatch)]
    assert sorted(p.get_gid() for p in arrows) == sorted(f"edge {a}->{b}" for a, b in edges)
    assert len(arrows) == 5 + 2
    # skip links arc, adjacent links are straight
    for p in arrows:
        a, b = map(int, p.get_gid().split()[1].split("->"))
        assert (p.get_connectionstyle().rad == 0) == (b - a == 1)
    texts = {t.get_text() for t in ax_g.texts}
    assert {f"G{g + 1}" for g in labels} <= texts
    # heat map is the sample's CKA
    mesh = ax_h.collections[0]
    np.testing.assert_allclose(np.asarray(mesh.get_array()).reshape(len(LAYERS), -1),
                               data["cka"]["cka"].sel(sample=42).values)
    assert [t.get_text() for t in ax_h.get_xticklabels()] == LAYERS


def test_graph_positions_are_deterministic(data, tmp_path):
    a = plot_causal_graph(data["cka"], tmp_path / "a.png", 3)
    b = plot_causal_graph(data["cka"], tmp_path / "b.png", 3)
    pa = [p.get_path().vertices.tolist() for p in a.axes[1].patches if isinstance(p, FancyArrowPatch)]
    pb = [p.get_path().vertices.tolist() for p in b.axes[1].patches if isinstance(p, FancyArrowPatch)]
    assert pa and pa == pb


def test_single_node_graph(data, tmp_path):
    edges, labels = graph_edges(data["cka"], 50)
    assert edges == [] and labels == {0: compact_group(LAYERS)}
    plot_causal_graph(data["cka"], tmp_path / "one.png", 50)
    check_png(tmp_path / "one.png")


def test_missing_variable_raises(data, tmp_path):
    with pytest.raises(ValueError, match="link"):
        plot_causal_graph(data["cka"].drop_vars("link"), tmp_path / "x.png", 3)


def test_contribution_frame_skips_padded_groups(data):
    ace = data["ace"]
    for s in SAMPLES:
        df = contribution_frame(ace, s)
        n = max(GROUPS[s]) + 1
        assert df["group"].tolist() == list(range(n))
        np.testing.assert_array_equal(df["ace"].values, ace["ace"].sel(sample=s).values[:n])
        assert df["output_layer"].tolist() == ace["output_layer"].sel(sample=s).values[:n].tolist()
        np.testing.assert_allclose(df["vmax"].values,
                                   np.abs(ace["attribution"].sel(sample=s).values[:n]).max(axis=(1, 2)))


def test_contributions_panels(data, drawn):
    fig = drawn[1]["contrib"]
    ace = data["ace"].sel(sample=3)
    n = max(GROUPS[3]) + 1
    images = [im for ax in fig.axes for im in ax.get_images()]
    attr = [im for im in images if (im.get_gid() or "").startswith("attribution")]
    assert [im.get_gid() for im in attr] == [f"attribution G{g + 1}" for g in range(n)]  # padding not drawn
    for g, im in enumerate(attr):
        a = ace["attribution"].isel(group=g).values
        np.testing.assert_array_equal(np.asarray(im.get_array()), a)
        lo, hi = im.get_clim()
        assert lo == -hi == -np.abs(a).max()
        assert im.get_cmap().name == "RdBu"
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible() and ax.get_title()]
    assert titles[0].startswith("input, sample 3")
    for g in range(n):
        assert f"G{g + 1}: {str(ace['output_layer'].values[g])}\nACE = {float(ace['ace'].values[g]):.3g}" in titles
    (mask,) = [im for im in images if im.get_gid() == "mask"]
    np.testing.assert_array_equal(np.asarray(mask.get_array()), data["ace"]["mask"].sel(sample=3).values)
    (inp,) = [im for im in images if im.get_gid() is None]
    np.testing.assert_array_equal(np.asarray(inp.get_array()), data["int"]["image"].sel(sample=3).values)
    assert inp.get_clim() == (-1.0, 1.0)


def test_contributions_many_groups_wrap(data, tmp_path):
    fig = plot_contributions(data["int"], data["ace"], tmp_path / "c.png", 42)  # 6 nodes → 8 panels, 2 rows
    check_png(tmp_path / "c.png")
    assert len([ax for ax in fig.axes if ax.get_visible() and ax.get_images()]) == 8


def test_missing_sample_raises_naming_it(data, tmp_path):
    with pytest.raises(ValueError, match=r"sample 99 .*causal_nodes\.nc.*3, 11, 17, 42, 50"):
        plot_causal_graph(data["cka"], tmp_path / "x.png", 99)
    with pytest.raises(ValueError, match=r"sample 99 .*interventions\.nc"):
        plot_contributions(data["int"], data["ace"], tmp_path / "x.png", 99)
    with pytest.raises(ValueError, match=r"sample 3 .*ace\.nc.*11, 17"):
        plot_contributions(data["int"], make_ace(samples=[11, 17]), tmp_path / "x.png", 3)
    with pytest.raises(ValueError, match="sample 99"):
        graph_edges(data["cka"], 99)
    assert not (tmp_path / "x.png").exists()


def test_frames_are_dataframes(data):
    for df in (contribution_frame(data["ace"], 3),):
        assert isinstance(df, pd.DataFrame) and len(df)


def test_large_networks_stay_bounded(tmp_path):
    """40 layers, every one its own node (ε = 0): the causal graph's PNG stays under 6,000 px."""
    ds, names = make_large_cka()
    plot_causal_graph(ds, tmp_path / "g.png", 1)
    check_png(tmp_path / "g.png")


def test_contributions_with_top_units(tmp_path):
    from causalxai.plots.tracer_sample_figures import plot_contributions, unit_frame
    from tests.plots.tracer_outputs import make_ace, make_interventions, with_validation

    ace = with_validation(make_ace())
    frame = unit_frame(ace, 3)
    n_nodes = int(ace["n_groups"].sel(sample=3))
    assert len(frame) == 3 * n_nodes and frame["unit"].ge(0).all()
    assert frame["unit"].tolist()[:3] == ace["top_unit"].sel(sample=3, group=0).values.tolist()
    fig = plot_contributions(make_interventions(), ace, tmp_path / "units.png", 3)
    check_png(tmp_path / "units.png")
    drawn = [im for ax in fig.axes for im in ax.get_images() if (im.get_gid() or "").startswith("unit")]
    assert len(drawn) == 3 * n_nodes
    first = [im for im in drawn if im.get_gid() == f"unit G1 #{frame['unit'].iloc[0]}"][0]
    np.testing.assert_allclose(np.asarray(first.get_array()), ace["unit_attribution"].sel(sample=3, group=0,
                                                                                           unit_rank=0).values)


def test_tabular_contributions_are_bars_of_the_top_features(tmp_path):
    """A one-row input (tabular data, paper 004 Fig. 10): per node, bars of the signed attribution over
    the 20 features with the largest |attribution| over the nodes, named, largest on top."""
    rng = np.random.default_rng(7)
    n_f, names = 26, [f"feat{i}" for i in range(26)]
    row = rng.uniform(-1, 1, (1, 1, n_f))
    attr = np.full((1, 3, 1, n_f), np.nan)
    attr[0, :2] = rng.normal(0, 1, (2, 1, n_f))  # group 2: padding
    inter = xr.Dataset({"image": (("sample", "y", "x"), row), "label": (("sample",), [1]), "pred": (("sample",), [0])},
                       coords={"sample": [5]})
    mask = np.zeros((1, 1, n_f), dtype=bool)
    mask[0, 0, [3, 9]] = True
    ace = xr.Dataset({"attribution": (("sample", "group", "y", "x"), attr),
                      "ace": (("sample", "group"), [[0.5, -0.25, np.nan]]),
                      "mask": (("sample", "y", "x"), mask),
                      "output_layer": (("sample", "group"), [["relu1", "fc4", ""]])},
                     coords={"sample": [5], "group": [0, 1, 2]})
    fig = plot_contributions(inter, ace, tmp_path / "tab.png", 5, feature_names=names)
    assert (tmp_path / "tab.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    top = np.argsort(-np.abs(attr[0, :2, 0]).max(axis=0))[:20]  # largest first
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert len(axes) == 3  # the input and the two nodes (padding not drawn)
    labels = [t.get_text() for t in axes[0].get_yticklabels()]
    assert labels == [names[i] for i in top[::-1]]  # largest on top
    for ax, g in zip(axes[1:], (0, 1)):
        widths = [p.get_width() for p in ax.patches]
        np.testing.assert_allclose(widths, attr[0, g, 0, top[::-1]])
    from matplotlib.colors import to_rgba

    colours = [p.get_facecolor() for p in axes[0].patches]  # mask features orange (C1), the others grey
    assert colours == [to_rgba("C1") if i in (3, 9) else to_rgba("0.6") for i in top[::-1]]
    np.testing.assert_allclose([p.get_width() for p in axes[0].patches], row[0, 0, top[::-1]])


def test_a_stochastic_layers_node_is_marked(data, tmp_path):
    from causalxai.plots.tracer_sample_figures import stochastic_groups

    ds = data["cka"].copy()
    assert stochastic_groups(ds, 42) == set()  # no stochastic variable: none
    flags = np.zeros(len(LAYERS), dtype=bool)
    flags[2] = True
    ds["stochastic"] = ("layer", flags)
    group = int(GROUPS[42][2])
    assert stochastic_groups(ds, 42) == {group}
    fig = plot_causal_graph(ds, tmp_path / "s.png", 42)
    marked = [t.get_text() for t in fig.axes[1].texts if t.get_text().endswith("(stochastic)")]
    assert marked == [f"{LAYERS[2]}\n(stochastic)"]  # pool1, a node of its own
