"""Figures of the TRACER steps (paper 004 Fig. 2, 3, 5, 11, 12) on synthetic datasets of the steps' schemas."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from matplotlib.image import imread
from matplotlib.patches import FancyArrowPatch

from causalxai.plots.tracer_figures import (
    compact_group,
    coverage_frame,
    eps_sweep_frame,
    plot_cka,
    plot_coverage,
    plot_eps_sweep,
    plot_reliability,
    reliability_frame,
    short_composition,
)
from causalxai.plots.tracer_sample_figures import contribution_frame, graph_edges, plot_causal_graph, plot_contributions

LAYERS = ["conv1", "relu1", "pool1", "conv2", "relu2", "pool2", "fc1", "relu3", "fc2", "fc3"]
EPS = [0.0, 0.05, 0.1, 0.2, 1.0]
SAMPLES = [3, 11, 17, 42, 50]
METHODS = ["tracer", "gradient", "smoothgrad", "integrated_gradients", "grad_cam", "lime", "kernel_shap", "lrp"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SIDE = 12

# per sample: group id of each layer (chains, ids in layer order) and the skip links
GROUPS = {
    3: [0, 0, 0, 1, 1, 1, 2, 2, 3, 3],
    11: [0, 0, 1, 1, 1, 2, 2, 2, 2, 2],
    17: [0, 0, 0, 0, 0, 1, 1, 1, 1, 1],
    42: [0, 1, 2, 3, 3, 3, 4, 4, 5, 5],
    50: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
}
SKIPS = {3: [(0, 2)], 11: [], 17: [], 42: [(1, 4), (0, 5)], 50: []}


def make_cka(samples=SAMPLES, seed=0) -> xr.Dataset:
    """A ``causal_nodes.nc``: CKA high inside groups, groups, padded directed links, an ε sweep."""
    rng = np.random.default_rng(seed)
    n_s, n_l = len(samples), len(LAYERS)
    cka = np.empty((n_s, n_l, n_l))
    group = np.zeros((n_s, n_l), dtype=np.int64)
    n_groups = np.zeros(n_s, dtype=np.int64)
    link = np.zeros((n_s, n_l, n_l), dtype=bool)
    sweep = np.zeros((n_s, len(EPS), n_l), dtype=np.int64)
    for k, s in enumerate(samples):
        g = np.asarray(GROUPS[s])
        same = g[:, None] == g[None, :]
        c = np.where(same, rng.uniform(0.96, 1.0, (n_l, n_l)), rng.uniform(0.1, 0.9, (n_l, n_l)))
        c = (c + c.T) / 2
        np.fill_diagonal(c, 1.0)
        cka[k], group[k], n_groups[k] = c, g, g.max() + 1
        for a in range(g.max()):
            link[k, a, a + 1] = True
        for a, b in SKIPS[s]:
            link[k, a, b] = True
        # sweep: ε = 0 every layer alone, the chosen ε the groups, larger ε merges pairs, ε = 1 one node
        sweep[k, 0] = np.arange(n_l)
        sweep[k, 1] = g
        sweep[k, 2] = g // 2
        sweep[k, 3] = g // 3
        sweep[k, 4] = 0
    n_sweep = sweep.max(axis=-1) + 1
    return xr.Dataset(
        {
            "cka": (("sample", "layer_i", "layer_j"), cka),
            "group": (("sample", "layer"), group),
            "n_groups": (("sample",), n_groups),
            "link": (("sample", "group_a", "group_b"), link),
            "group_sweep": (("sample", "eps", "layer"), sweep),
            "n_groups_sweep": (("sample", "eps"), n_sweep),
        },
        coords={"sample": list(samples), "layer": LAYERS, "layer_i": LAYERS, "layer_j": LAYERS,
                "group_a": np.arange(n_l), "group_b": np.arange(n_l), "eps": EPS},
        attrs={"eps": 0.05, "step": "causal_nodes"},
    )


def make_interventions(samples=SAMPLES, seed=1) -> xr.Dataset:
    rng = np.random.default_rng(seed)
    n_s = len(samples)
    yy, xx = np.mgrid[:SIDE, :SIDE]
    ring = (np.hypot(yy - SIDE / 2, xx - SIDE / 2) < SIDE / 3).astype(float)
    image = np.clip(ring[None] * 2 - 1 + rng.normal(0, 0.05, (n_s, SIDE, SIDE)), -1, 1)
    cka = make_cka(samples)["cka"].values
    return xr.Dataset(
        {
            "image": (("sample", "y", "x"), image),
            "label": (("sample",), rng.integers(0, 10, n_s)),
            "pred": (("sample",), rng.integers(0, 10, n_s)),
            "cka": (("sample", "layer_i", "layer_j"), cka),
        },
        coords={"sample": list(samples), "layer": LAYERS, "layer_i": LAYERS, "layer_j": LAYERS,
                "intervention": np.arange(4)},
    )


def make_ace(samples=SAMPLES, seed=2) -> xr.Dataset:
    """An ``ace.nc``: groups beyond the sample's n_groups are NaN padding."""
    rng = np.random.default_rng(seed)
    n_s, n_g = len(samples), len(LAYERS)
    attr = np.full((n_s, n_g, SIDE, SIDE), np.nan)
    ace = np.full((n_s, n_g), np.nan)
    out = np.full((n_s, n_g), "", dtype=object)
    for k, s in enumerate(samples):
        g = np.asarray(GROUPS[s])
        for j in range(g.max() + 1):
            attr[k, j] = rng.normal(0, 1 + j, (SIDE, SIDE))
            ace[k, j] = rng.normal()
            out[k, j] = LAYERS[np.flatnonzero(g == j)[-1]]
    return xr.Dataset(
        {
            "attribution": (("sample", "group", "y", "x"), attr),
            "ace": (("sample", "group"), ace),
            "mask": (("sample", "y", "x"), rng.random((n_s, SIDE, SIDE)) < 0.3),
            "output_layer": (("sample", "group"), out.astype(str)),
        },
        coords={"sample": list(samples), "group": np.arange(n_g)},
    )


def make_mechanisms() -> xr.Dataset:
    n = np.array([3, 4, 5, 2])
    comp = ["conv1+relu1+pool1|conv2+relu2+pool2|fc1+relu3+fc2+fc3",
            "conv1+relu1|pool1+conv2|relu2+pool2|fc1+relu3+fc2+fc3",
            "conv1|relu1|pool1+conv2|relu2+pool2+fc1|relu3+fc2+fc3",
            "conv1+relu1+pool1+conv2+relu2|pool2+fc1+relu3+fc2+fc3"]
    n_samples = np.array([85, 14, 1, 0])
    share = n_samples / n_samples.sum()
    return xr.Dataset(
        {"n_nodes": (("mechanism",), n), "composition": (("mechanism",), comp),
         "n_samples": (("mechanism",), n_samples), "share": (("mechanism",), share),
         "coverage": (("mechanism",), np.cumsum(share))},
        coords={"mechanism": np.arange(4)},
    )


def make_reliability(seed=3, nan_method=None) -> xr.Dataset:
    rng = np.random.default_rng(seed)
    score = rng.uniform(0.05, 0.6, (len(METHODS), 10))
    score[0] += 0.35
    if nan_method is not None:
        score[METHODS.index(nan_method)] = np.nan
    return xr.Dataset(
        {"score": (("method", "trial"), score), "mean": (("method",), score.mean(axis=1)),
         "std": (("method",), score.std(axis=1))},
        coords={"method": METHODS, "trial": np.arange(10)},
        attrs={"p": 0.5},
    )


def _check_png(path, min_w=300, min_h=200) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    img = imread(path)
    h, w = img.shape[:2]
    assert w >= min_w and h >= min_h
    assert w < 6000 and h < 6000
    assert img.std() > 0.01
    assert not list(path.parent.glob(".*.tmp"))


@pytest.fixture(scope="module")
def data():
    return {"cka": make_cka(), "int": make_interventions(), "ace": make_ace(), "mech": make_mechanisms(),
            "rel": make_reliability()}


@pytest.fixture(scope="module")
def drawn(data, tmp_path_factory):
    before = {k: v.copy(deep=True) for k, v in data.items()}
    out = tmp_path_factory.mktemp("figures") / "sub"
    paths = {k: out / f"{k}.png" for k in ["graph", "cka", "eps", "contrib", "coverage", "reliability"]}
    figs = {
        "graph": plot_causal_graph(data["cka"], paths["graph"], 42),
        "cka": plot_cka(data["cka"], paths["cka"]),
        "eps": plot_eps_sweep(data["cka"], paths["eps"]),
        "contrib": plot_contributions(data["int"], data["ace"], paths["contrib"], 3),
        "coverage": plot_coverage(data["mech"], paths["coverage"]),
        "reliability": plot_reliability(data["rel"], paths["reliability"]),
    }
    return paths, figs, before


@pytest.mark.parametrize("fig", ["graph", "cka", "eps", "contrib", "coverage", "reliability"])
def test_writes_png(drawn, fig):
    _check_png(drawn[0][fig])


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


def test_compact_labels():
    assert compact_group(["conv1", "relu1"]) == "conv1+relu1"
    assert compact_group(["a", "b", "c", "d", "e"]) == "a+…+e (5)"
    assert short_composition("conv1+relu1|conv2|fc1+relu3+fc2") == "conv1…relu1 | conv2 | fc1…fc2"
    assert short_composition("a|b|c|d|e|f") == "a | b | … | f"


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
    _check_png(tmp_path / "one.png")


def test_missing_sample_raises_naming_it(data, tmp_path):
    with pytest.raises(ValueError, match=r"sample 99 .*causal_nodes\.nc.*3, 11, 17, 42, 50"):
        plot_causal_graph(data["cka"], tmp_path / "x.png", 99)
    with pytest.raises(ValueError, match=r"sample 99 .*interventions\.nc"):
        plot_contributions(data["int"], data["ace"], tmp_path / "x.png", 99)
    with pytest.raises(ValueError, match=r"sample 3 .*ace\.nc.*11, 17"):
        plot_contributions(data["int"], make_ace(samples=[11, 17]), tmp_path / "x.png", 3)
    with pytest.raises(ValueError, match="sample 7"):
        plot_cka(data["cka"], tmp_path / "x.png", samples=[3, 7])
    with pytest.raises(ValueError, match="1 to 4"):
        plot_cka(data["cka"], tmp_path / "x.png", samples=SAMPLES)
    with pytest.raises(ValueError, match="sample 99"):
        graph_edges(data["cka"], 99)
    assert not (tmp_path / "x.png").exists()


def test_missing_variable_raises(data, tmp_path):
    with pytest.raises(ValueError, match="link"):
        plot_causal_graph(data["cka"].drop_vars("link"), tmp_path / "x.png", 3)


def test_cka_panels(data, drawn, tmp_path):
    fig = drawn[1]["cka"]
    titled = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in titled] == ["sample 3: 4 nodes", "sample 11: 3 nodes", "sample 17: 2 nodes",
                                                 "sample 42: 6 nodes"]
    for ax, s in zip(titled, SAMPLES):
        mesh = ax.collections[0]
        assert mesh.get_clim() == (0.0, 1.0)
        np.testing.assert_allclose(np.asarray(mesh.get_array()).reshape(len(LAYERS), -1),
                                   data["cka"]["cka"].sel(sample=s).values)
    fig = plot_cka(data["int"], tmp_path / "one.png", samples=50)  # interventions.nc has cka too
    _check_png(tmp_path / "one.png", min_w=200)
    assert [ax.get_title() for ax in fig.axes if ax.get_title()] == ["sample 50"]


def test_eps_sweep_frame_and_lines(data, drawn):
    ds = data["cka"]
    df = eps_sweep_frame(ds)
    assert len(df) == len(SAMPLES) * len(EPS)
    for row in df.itertuples():
        assert row.n_groups == int(ds["n_groups_sweep"].sel(sample=row.sample, eps=row.eps))
    fig = drawn[1]["eps"]
    ax, ax_s = fig.axes[:2]
    mean = [ln for ln in ax.get_lines() if ln.get_gid() == "mean"][0]
    np.testing.assert_allclose(mean.get_ydata(), ds["n_groups_sweep"].mean("sample").values)
    per_sample = [ln for ln in ax.get_lines() if (ln.get_gid() or "").startswith("sample")]
    assert len(per_sample) == len(SAMPLES)
    np.testing.assert_array_equal(per_sample[1].get_ydata(), ds["n_groups_sweep"].sel(sample=11).values)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "0.05", "0.1", "0.2", "1"]
    (strip,) = [im for im in ax_s.get_images()]
    np.testing.assert_array_equal(np.asarray(strip.get_array()),
                                  ds["group_sweep"].sel(sample=3).transpose("eps", "layer").values)
    assert any("chosen" in t.get_text() for t in ax.get_legend().get_texts())


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
    _check_png(tmp_path / "c.png")
    assert len([ax for ax in fig.axes if ax.get_visible() and ax.get_images()]) == 8


def test_coverage_frame_and_bars(data, drawn):
    mech = data["mech"]
    df = coverage_frame(mech)
    for col in ["n_nodes", "n_samples", "share", "coverage"]:
        np.testing.assert_array_equal(df[col].values, mech[col].values)
    assert df["composition"].tolist() == mech["composition"].values.tolist()
    assert df["label"].iloc[0] == "3 nodes\nconv1…pool1\nconv2…pool2\nfc1…fc3"
    assert df["label"].iloc[2] == "5 nodes\nconv1\nrelu1\n…\nrelu3…fc3"
    fig = drawn[1]["coverage"]
    ax, ax2 = fig.axes[:2]
    np.testing.assert_allclose([r.get_height() for r in ax.patches if r.get_width() < 1], mech["share"].values)
    (line,) = ax2.get_lines()
    np.testing.assert_allclose(line.get_ydata(), mech["coverage"].values)
    assert [t.get_text() for t in ax.get_xticklabels()] == df["label"].tolist()


def test_reliability_frame_and_bars(data, drawn, tmp_path):
    rel = data["rel"]
    df = reliability_frame(rel)
    assert df["method"].tolist() == METHODS
    np.testing.assert_array_equal(df["mean"].values, rel["mean"].values)
    np.testing.assert_array_equal(df["std"].values, rel["std"].values)
    assert (df["n_trials"] == 10).all()
    assert df["name"].tolist()[:1] == ["TRACER"]
    fig = drawn[1]["reliability"]
    ax = fig.axes[0]
    bars = ax.patches[: len(METHODS)]
    np.testing.assert_allclose([b.get_height() for b in bars], rel["mean"].values)
    colors = [b.get_facecolor() for b in bars]
    assert all(c != colors[0] for c in colors[1:]) and len(set(colors[1:])) == 1  # TRACER highlighted
    (err,) = [c for c in ax.collections if c.get_gid() == "std"]
    segs = err.get_segments()
    np.testing.assert_allclose([s[1][1] - s[0][1] for s in segs], 2 * rel["std"].values)
    assert ax.get_xticklabels()[0].get_fontweight() == "bold"
    # a method that did not run: n/a, no crash
    plot_reliability(make_reliability(nan_method="lrp"), tmp_path / "r.png")
    _check_png(tmp_path / "r.png")
    assert np.isnan(reliability_frame(make_reliability(nan_method="lrp"))["mean"].iloc[-1])


def test_frames_are_dataframes(data):
    for df in (coverage_frame(data["mech"]), reliability_frame(data["rel"]), eps_sweep_frame(data["cka"]),
               contribution_frame(data["ace"], 3)):
        assert isinstance(df, pd.DataFrame) and len(df)


def test_large_networks_stay_bounded(tmp_path):
    """40 layers, every one its own node (ε = 0), and 30 mechanisms: PNGs stay under 6,000 px."""
    n_l, names = 40, [f"layer{i}" for i in range(40)]
    rng = np.random.default_rng(4)
    c = rng.uniform(0, 1, (2, n_l, n_l))
    link = np.zeros((2, n_l, n_l), dtype=bool)
    link[:, np.arange(n_l - 1), np.arange(1, n_l)] = True
    ds = xr.Dataset(
        {"cka": (("sample", "layer_i", "layer_j"), c),
         "group": (("sample", "layer"), np.tile(np.arange(n_l), (2, 1))),
         "n_groups": (("sample",), np.array([n_l, n_l])),
         "link": (("sample", "group_a", "group_b"), link),
         "group_sweep": (("sample", "eps", "layer"), np.tile(np.arange(n_l), (2, 2, 1))),
         "n_groups_sweep": (("sample", "eps"), np.full((2, 2), n_l))},
        coords={"sample": [0, 1], "layer": names, "layer_i": names, "layer_j": names, "eps": [0.0, 0.05]},
    )
    plot_causal_graph(ds, tmp_path / "g.png", 1)
    plot_cka(ds, tmp_path / "c.png")
    plot_eps_sweep(ds, tmp_path / "e.png")
    k = 30
    share = np.full(k, 1 / k)
    mech = xr.Dataset(
        {"n_nodes": (("mechanism",), np.arange(k) % 5 + 1),
         "composition": (("mechanism",), ["|".join(names[: i % 5 + 1]) for i in range(k)]),
         "n_samples": (("mechanism",), np.ones(k, dtype=int)), "share": (("mechanism",), share),
         "coverage": (("mechanism",), np.cumsum(share))},
        coords={"mechanism": np.arange(k)},
    )
    fig = plot_coverage(mech, tmp_path / "m.png")
    assert fig.axes[0].get_xticklabels()[2].get_text() == "3 nodes"
    for name in ["g", "c", "e", "m"]:
        _check_png(tmp_path / f"{name}.png")
