"""Figures of the TRACER steps (rule tracer_figures; paper 004 Fig. 3, 11, 12, App. G) on synthetic
datasets of the steps' schemas (tests/plots/tracer_outputs.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

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
from tests.plots.tracer_outputs import (
    EPS,
    LAYERS,
    METHODS,
    SAMPLES,
    check_png,
    make_ace,
    make_cka,
    make_interventions,
    make_large_cka,
    make_mechanisms,
    make_reliability,
    make_reliability_protocols,
)


@pytest.fixture(scope="module")
def data():
    return {"cka": make_cka(), "int": make_interventions(), "ace": make_ace(), "mech": make_mechanisms(),
            "rel": make_reliability()}


@pytest.fixture(scope="module")
def drawn(data, tmp_path_factory):
    before = {k: v.copy(deep=True) for k, v in data.items()}
    out = tmp_path_factory.mktemp("figures") / "sub"
    paths = {k: out / f"{k}.png" for k in ["cka", "eps", "coverage", "reliability"]}
    figs = {
        "cka": plot_cka(data["cka"], paths["cka"]),
        "eps": plot_eps_sweep(data["cka"], paths["eps"]),
        "coverage": plot_coverage(data["mech"], paths["coverage"]),
        "reliability": plot_reliability(data["rel"], paths["reliability"]),
    }
    return paths, figs, before


@pytest.mark.parametrize("fig", ["cka", "eps", "coverage", "reliability"])
def test_writes_png(drawn, fig):
    check_png(drawn[0][fig])


def test_plots_leave_inputs_untouched(data, drawn):
    for k, ds in data.items():
        xr.testing.assert_identical(ds, drawn[2][k])


def test_compact_labels():
    assert compact_group(["conv1", "relu1"]) == "conv1+relu1"
    assert compact_group(["a", "b", "c", "d", "e"]) == "a+…+e (5)"
    assert short_composition("conv1+relu1|conv2|fc1+relu3+fc2") == "conv1…relu1 | conv2 | fc1…fc2"
    assert short_composition("a|b|c|d|e|f") == "a | b | … | f"


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
    check_png(tmp_path / "one.png", min_w=200)
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
    check_png(tmp_path / "r.png")
    assert np.isnan(reliability_frame(make_reliability(nan_method="lrp"))["mean"].iloc[-1])


def test_reliability_both_protocols_intervals_and_empty_masks(tmp_path):
    rel = make_reliability_protocols()
    df = reliability_frame(rel)
    assert len(df) == 20 and df["protocol"].tolist()[:2] == ["paper", "equal_size"]
    row = df[(df["method"] == "grad_cam") & (df["protocol"] == "equal_size")].iloc[0]
    sel = {"method": "grad_cam", "protocol": "equal_size"}
    assert row["name"] == "Grad-CAM" and row["n_empty"] == int(rel["n_empty"].sel(sel))
    assert row["ci_low"] == float(rel["ci_low"].sel(sel)) and row["ci_high"] == float(rel["ci_high"].sel(sel))
    assert row["mask_fraction"] == float(rel["mask_fraction"].sel(sel))
    fig = plot_reliability(rel, tmp_path / "r.png")
    check_png(tmp_path / "r.png")
    ax = fig.axes[0]
    bars = [b for b in ax.patches if b.get_height() > 0]
    assert len(bars) == 20
    np.testing.assert_allclose([b.get_height() for b in bars[:10]], rel["mean"].sel(protocol="paper").values)
    np.testing.assert_allclose([b.get_height() for b in bars[10:]], rel["mean"].sel(protocol="equal_size").values)
    assert all(b.get_hatch() for b in bars[10:]) and not any(b.get_hatch() for b in bars[:10])
    (err,) = [c for c in ax.collections if c.get_gid() == "ci"]  # the bootstrap interval, not ± std
    lows = sorted(s[0][1] for s in err.get_segments())
    np.testing.assert_allclose(lows, np.sort(rel["ci_low"].values.T.ravel()))
    texts = {t.get_gid(): t.get_text() for t in ax.texts if t.get_gid()}
    assert texts["n_empty grad_cam equal_size"] == f"∅{int(rel['n_empty'].sel(sel))}" and len(texts) == 20


def test_missing_sample_raises_naming_it(data, tmp_path):
    with pytest.raises(ValueError, match="sample 7"):
        plot_cka(data["cka"], tmp_path / "x.png", samples=[3, 7])
    with pytest.raises(ValueError, match="1 to 4"):
        plot_cka(data["cka"], tmp_path / "x.png", samples=SAMPLES)
    assert not (tmp_path / "x.png").exists()


def test_frames_are_dataframes(data):
    for df in (coverage_frame(data["mech"]), reliability_frame(data["rel"]), eps_sweep_frame(data["cka"])):
        assert isinstance(df, pd.DataFrame) and len(df)


def test_large_networks_stay_bounded(tmp_path):
    """40 layers, every one its own node (ε = 0), and 30 mechanisms: PNGs stay under 6,000 px."""
    ds, names = make_large_cka()
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
    for name in ["c", "e", "m"]:
        check_png(tmp_path / f"{name}.png")


def test_cka_three_decimals_and_near_threshold_boxes(tmp_path):
    from causalxai.plots.tracer_figures import near_threshold

    ds = make_cka(samples=[3])
    c = ds["cka"].values.copy()
    c[0, 0, 1] = c[0, 1, 0] = 0.9449  # 0.0051 below 1 − 0.05: near with margin 0.01
    c[0, 2, 3] = c[0, 3, 2] = 0.9612  # 0.0112 above: not near
    ds["cka"].values[:] = c
    near = near_threshold(c[0], 0.05, 0.01)
    ref = (np.abs(c[0] - 0.95) <= 0.01) & ~np.eye(len(LAYERS), dtype=bool)
    np.testing.assert_array_equal(near, ref)
    assert near[0, 1] and near[1, 0] and not near[2, 3]
    fig = plot_cka(ds, tmp_path / "cka.png", margin=0.01)  # ε from the dataset's attribute
    check_png(tmp_path / "cka.png", min_w=200)
    ax = [a for a in fig.axes if a.get_title()][0]
    boxes = {p.get_gid() for p in ax.patches if (p.get_gid() or "").startswith("near")}
    assert boxes == {f"near {i} {j}" for i, j in zip(*np.nonzero(ref))}
    texts = [t.get_text() for t in ax.texts]
    assert "0.945" in texts and "0.961" in texts  # three decimals: the side of 0.95 is visible
    assert "≤ 0.01" in fig._suptitle.get_text()
    fig = plot_cka(ds, tmp_path / "plain.png")  # no margin: no boxes
    assert not [p for a in fig.axes for p in a.patches if (p.get_gid() or "").startswith("near")]


def test_coverage_labels_count_intermediate_nodes(data, tmp_path):
    mech = data["mech"].assign(n_intermediate=data["mech"]["n_nodes"] - 1)
    df = coverage_frame(mech)
    assert df["label"].iloc[0] == "2 intermediate (3 nodes)\nconv1…pool1\nconv2…pool2\nfc1…fc3"
    np.testing.assert_array_equal(df["n_intermediate"].values, [2, 3, 4, 1])
    fig = plot_coverage(mech, tmp_path / "cov.png")
    assert "intermediate" in fig.axes[0].get_xlabel()


def test_mechanism_stability_figure(tmp_path):
    from causalxai.plots.tracer_figures import plot_mechanism_stability, stability_frame
    from causalxai.tracer.mechanisms import mechanisms_dataset
    from causalxai.tracer.settings import MechanismSettings
    from causalxai.tracer.stability import stability_dataset

    cka = make_cka()
    settings = MechanismSettings(eps_radius=0.04, eps_step=0.01, bootstrap=30, top=2, margin=0.02, seed=1)
    mech = xr.merge([mechanisms_dataset(cka["group"]), stability_dataset(cka["cka"], 0.05, settings)],
                    combine_attrs="drop").assign_attrs(eps=0.05, margin=0.02)
    df = stability_frame(mech)
    np.testing.assert_allclose(df["eps"], [0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.09])
    np.testing.assert_array_equal(df["n_mechanisms"], mech["eps_n_mechanisms"].values)
    q = np.quantile(mech["boot_dominant_share"].values, 0.975, axis=1)
    np.testing.assert_allclose(df["boot_dominant_share_q975"], q)
    fig = plot_mechanism_stability(mech, tmp_path / "stability.png")
    check_png(tmp_path / "stability.png")
    ax_n, ax_s, ax_p = fig.axes[:3]
    (line,) = [ln for ln in ax_n.get_lines() if ln.get_gid() == "n_mechanisms"]
    np.testing.assert_array_equal(line.get_ydata(), mech["eps_n_mechanisms"].values)
    (share,) = [ln for ln in ax_s.get_lines() if ln.get_gid() == "dominant_share"]
    np.testing.assert_allclose(share.get_ydata(), mech["eps_dominant_share"].values)
    (top2,) = [ln for ln in ax_s.get_lines() if ln.get_gid() == "coverage_top2"]
    np.testing.assert_allclose(top2.get_ydata(), mech["eps_coverage"].values[:, 1])
    heights = [p.get_height() for p in ax_p.patches]
    np.testing.assert_array_equal(heights, np.bincount(mech["near_pairs"].values))


def test_node_validation_frame_and_figure(tmp_path):
    from causalxai.plots.tracer_figures import node_validation_frame, plot_node_validation
    from tests.plots.tracer_outputs import with_validation

    ace = with_validation(make_ace())
    df = node_validation_frame(ace)
    assert len(df) == 2 * int(ace["n_groups"].sum())
    for row in df.sample(15, random_state=0).itertuples():
        assert row.abs_ace == abs(float(ace["ace"].sel(sample=row.sample, group=row.group)))
        assert row.ablation_kl == float(ace["ablation_kl"].sel(sample=row.sample, group=row.group,
                                                                ablation=row.ablation))
        assert row.output_node == (row.group == int(ace["n_groups"].sel(sample=row.sample)) - 1)
    fig = plot_node_validation(ace, tmp_path / "validation.png")
    check_png(tmp_path / "validation.png")
    ax = fig.axes[0]
    pts = np.concatenate([c.get_offsets() for c in ax.collections if (c.get_gid() or "").startswith("interventions")])
    part = df[df["ablation"] == "interventions"]
    assert len(pts) == len(part)
    assert np.isclose(pts[:, 1].min(), max(part["ablation_kl"].min(), 1e-12))  # the zero on the floor
    rho = float(ace["ace_ablation_spearman_pooled"].sel(ablation="interventions"))
    assert f"ρ = {rho:.2f}" in ax.get_title()
    strips = [c for c in fig.axes[-1].collections if (c.get_gid() or "").startswith("spearman")]
    finite = np.isfinite(ace["ace_ablation_spearman"].sel(ablation="samples").values)
    np.testing.assert_allclose(np.sort(strips[1].get_offsets()[:, 1]),
                               np.sort(ace["ace_ablation_spearman"].sel(ablation="samples").values[finite]))
