"""Figures of the effects step (paper 000 Fig. 2-4) on synthetic ``effects.nc`` datasets."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from matplotlib.collections import PathCollection
from matplotlib.image import imread
from scipy import stats as sps

from causalxai.plots.effects import (
    correlation_frame,
    ite_by_bucket_frame,
    ite_scatter_frame,
    mediation_frame,
    plot_correlations,
    plot_ite_by_bucket,
    plot_ite_scatter,
    plot_mediation,
)

METHODS = ["identity", "gradient", "smoothgrad", "integrated_gradients", "grad_cam"]
HPARAMS = {"optimizer": ["adam", "rmsprop", "sgd"], "activation": ["relu", "tanh"], "dropout": ["0", "0.2", "0.45", "0.7"]}
BUCKETS = ["0-20", "20-40", "40-60", "60-80", "80-90", "90-95", "95-99", "99-100"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _corr(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3:
        return np.nan, np.nan
    return float(np.corrcoef(x[ok], y[ok])[0, 1]), float(sps.spearmanr(x[ok], y[ok]).statistic)


def make_effects(methods=METHODS, hparams=HPARAMS, buckets=BUCKETS, n_image=5, nan_buckets=(), seed=0) -> xr.Dataset:
    """An ``effects.nc`` of the step's schema with distinct random numbers in every cell."""
    rng = np.random.default_rng(seed)
    names = list(hparams)
    n_h, n_v, n_b = len(names), max(len(v) for v in hparams.values()), len(buckets)
    labels = np.full((n_h, n_v), "", dtype=object)
    for i, h in enumerate(names):
        labels[i, : len(hparams[h])] = hparams[h]
    pad = labels == ""
    ite_y = rng.gamma(2.0, 1.0, (n_h, n_v, n_b, n_image))
    ite_y[pad] = np.nan
    ite_e = rng.gamma(2.0, 1.0, (2, len(methods), n_h, n_v, n_b, n_image))
    ite_e[:, :, pad] = np.nan
    if "identity" in methods:
        ite_e[0, methods.index("identity")] = ite_y
    for b in nan_buckets:
        ite_y[:, :, buckets.index(b)] = np.nan
        ite_e[:, :, :, :, buckets.index(b)] = np.nan
    corr = np.full((2, len(methods), n_b, 2), np.nan)
    corr_h = np.full((2, len(methods), n_h, n_b, 2), np.nan)
    for k in range(2):
        for m in range(len(methods)):
            for b in range(n_b):
                corr[k, m, b] = _corr(ite_y[:, :, b].ravel(), ite_e[k, m, :, :, b].ravel())
                for h in range(n_h):
                    corr_h[k, m, h, b] = _corr(ite_y[h, :, b].ravel(), ite_e[k, m, h, :, b].ravel())
    mediated = corr[0] - corr[1]
    gap = (mediated[methods.index("identity")][None] - mediated) if "identity" in methods else np.full_like(mediated, np.nan)
    counts = rng.integers(1, 50, (n_h, n_v, n_b))
    counts[pad] = 0
    coords = {
        "effect": ["total", "direct"], "method": list(methods), "hparam": names, "value": np.arange(n_v),
        "bucket": list(buckets), "image": np.arange(n_image) * 7 + 3, "stat": ["pearson", "spearman"],
        "value_label": (("hparam", "value"), labels.astype(str)),
    }
    return xr.Dataset(
        {
            "ite_y": (("hparam", "value", "bucket", "image"), ite_y),
            "ite_e": (("effect", "method", "hparam", "value", "bucket", "image"), ite_e),
            "ite_e_mediated": (("method", "hparam", "value", "bucket", "image"), ite_e[0] - ite_e[1]),
            "corr": (("effect", "method", "bucket", "stat"), corr),
            "corr_hparam": (("effect", "method", "hparam", "bucket", "stat"), corr_h),
            "corr_mediated": (("method", "bucket", "stat"), mediated),
            "gap_to_identity": (("method", "bucket", "stat"), gap),
            "n_treated": (("hparam", "value", "bucket"), counts),
            "n_control": (("hparam", "value", "bucket"), counts + 3),
        },
        coords=coords,
        attrs={"dataset": "digits", "kernel": "rbf"},
    )


def _check_png(path, min_w=300, min_h=200) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    img = imread(path)
    h, w = img.shape[:2]
    assert w >= min_w and h >= min_h
    assert w < 6000 and h < 6000
    assert img.std() > 0.01  # not a blank canvas
    assert not list(path.parent.glob(".*.tmp"))  # atomic write left nothing behind


def _draw(effects, path, fn, **kw):
    if fn == "correlations":
        return plot_correlations(effects, path)
    return {"ite_by_bucket": plot_ite_by_bucket, "ite_scatter": plot_ite_scatter, "mediation": plot_mediation}[fn](
        effects, path, **kw
    )


ALL = ["correlations", "ite_by_bucket", "ite_scatter", "mediation"]


@pytest.fixture(scope="module")
def effects() -> xr.Dataset:
    return make_effects()


@pytest.fixture(scope="module")
def drawn(effects, tmp_path_factory):
    """Each figure drawn once from ``effects``: (paths, figures, a deep copy made before)."""
    before = effects.copy(deep=True)
    out = tmp_path_factory.mktemp("figures")
    paths = {fn: out / "sub" / f"{fn}.png" for fn in ALL}
    figs = {fn: _draw(effects, paths[fn], fn) for fn in ALL}
    return paths, figs, before


@pytest.mark.parametrize("fn", ALL)
def test_writes_png(drawn, fn):
    paths, _, _ = drawn
    _check_png(paths[fn])


def test_plots_leave_input_untouched(effects, drawn):
    xr.testing.assert_identical(effects, drawn[2])


@pytest.mark.parametrize("fn", ALL)
def test_nan_buckets_single_bucket_and_method_subset(tmp_path, fn):
    ds = make_effects(methods=["identity", "gradient", "grad_cam"], nan_buckets=("0-20", "99-100"), seed=1)
    _draw(ds, tmp_path / "nan.png", fn)
    _check_png(tmp_path / "nan.png")
    one = make_effects(methods=["identity", "smoothgrad"], buckets=["99-100"], seed=2)
    _draw(one, tmp_path / "one.png", fn)
    _check_png(tmp_path / "one.png", min_w=200, min_h=150)


@pytest.mark.parametrize("fn", ["ite_by_bucket", "ite_scatter", "mediation"])
def test_all_nan_dataset_does_not_crash(tmp_path, fn):
    ds = make_effects(methods=["identity", "gradient"], buckets=["0-50", "50-100"], nan_buckets=("0-50", "50-100"))
    _draw(ds, tmp_path / "empty.png", fn)
    assert (tmp_path / "empty.png").read_bytes()[:8] == PNG_MAGIC


def test_missing_hparam_raises_naming_it(effects, tmp_path):
    with pytest.raises(ValueError, match=r"'learning_rate'.*optimizer, activation, dropout"):
        plot_ite_by_bucket(effects, tmp_path / "x.png", hparam="learning_rate")
    with pytest.raises(ValueError, match="learning_rate"):
        ite_by_bucket_frame(effects, "learning_rate")
    assert not (tmp_path / "x.png").exists()


def test_bad_effect_and_stat_raise(effects, tmp_path):
    with pytest.raises(ValueError, match=r"'indirect'.*total, direct"):
        plot_ite_scatter(effects, tmp_path / "x.png", effect="indirect")
    with pytest.raises(ValueError, match=r"'kendall'.*pearson, spearman"):
        plot_mediation(effects, tmp_path / "x.png", stat="kendall")


def test_ite_by_bucket_frame_maps_cells(effects):
    df = ite_by_bucket_frame(effects, "activation")
    ds = effects.sel({"hparam": "activation"})
    expected = []
    for v, label in enumerate(["relu", "tanh", "", ""]):
        for b in BUCKETS:
            for img in effects["image"].values:
                cell = {"bucket": b, "value": v, "image": img}
                for out in ["Y", *METHODS]:
                    if out == "Y":
                        x = float(ds["ite_y"].sel(cell))
                    else:
                        x = float(ds["ite_e"].sel(cell).sel({"effect": "total", "method": out}))
                    if label and np.isfinite(x):
                        expected.append((out, b, v, label, int(img), x))
    exp = pd.DataFrame(expected, columns=["output", "bucket", "value", "value_label", "image", "ite"])
    key = ["output", "bucket", "value", "image"]
    got = df.sort_values(key).reset_index(drop=True)
    exp = exp.sort_values(key).reset_index(drop=True)
    assert len(got) == len(exp) == (1 + len(METHODS)) * 2 * len(BUCKETS) * effects.sizes["image"]
    pd.testing.assert_frame_equal(got[exp.columns], exp, check_dtype=False)
    # identity's total effect is ITE_Y itself
    y = got[got["output"] == "Y"]["ite"].values
    np.testing.assert_array_equal(got[got["output"] == "identity"]["ite"].values, y)


def test_ite_scatter_frame_pairs_y_with_e(effects):
    df = ite_scatter_frame(effects, "direct")
    assert "identity" not in set(df["method"])
    n_cells = sum(len(v) for v in HPARAMS.values()) * len(BUCKETS) * effects.sizes["image"]
    assert len(df) == 4 * n_cells
    rng = np.random.default_rng(0)
    for i in rng.choice(len(df), 50, replace=False):
        row = df.iloc[i]
        cell = {"hparam": row["hparam"], "value": row["value"], "bucket": row["bucket"], "image": row["image"]}
        assert row["ite_y"] == float(effects["ite_y"].sel(cell))
        assert row["ite_e"] == float(effects["ite_e"].sel(cell).sel({"effect": "direct", "method": row["method"]}))
    # Pearson over a panel's points is the dataset's corr (the synthetic corr is computed so)
    sub = df[(df["method"] == "gradient") & (df["bucket"] == "40-60")]
    r = np.corrcoef(sub["ite_y"], sub["ite_e"])[0, 1]
    expected = effects["corr"].sel({"effect": "direct", "method": "gradient", "bucket": "40-60", "stat": "pearson"})
    assert r == pytest.approx(float(expected))


def test_ite_scatter_panels_show_the_right_points_fast(tmp_path):
    """~2,700 points in each of 4 × 8 panels, drawn quickly; every panel holds its own points."""
    import time

    ds = make_effects(n_image=300, seed=3)
    t0 = time.perf_counter()
    fig = plot_ite_scatter(ds, tmp_path / "s.png")
    assert time.perf_counter() - t0 < 10
    _check_png(tmp_path / "s.png")
    df = ite_scatter_frame(ds, "total")
    axes = np.asarray(fig.axes).reshape(4, len(BUCKETS))
    for i, m in enumerate(METHODS[1:]):
        for j, b in enumerate(BUCKETS):
            ax = axes[i, j]
            sub = df[(df["method"] == m) & (df["bucket"] == b)]
            assert len(sub) == 9 * 300
            (coll,) = [c for c in ax.collections if isinstance(c, PathCollection)]
            np.testing.assert_array_equal(np.asarray(coll.get_offsets()), sub[["ite_y", "ite_e"]].values)
            r = float(ds["corr"].sel({"effect": "total", "method": m, "bucket": b, "stat": "pearson"}))
            assert f"r = {r:.2f}" in [t.get_text() for t in ax.texts]
            assert coll.get_rasterized()


def test_mediation_frame_and_lines(effects, tmp_path):
    df = mediation_frame(effects, "spearman")
    assert set(df["quantity"]) == {"total", "direct", "mediated", "gap_to_identity"}
    t = df.set_index(["quantity", "method", "bucket"])["corr"]
    for m in METHODS:
        for b in BUCKETS:
            c = effects["corr"].sel({"method": m, "bucket": b, "stat": "spearman"})
            assert t[("total", m, b)] == float(c.sel({"effect": "total"}))
            assert t[("direct", m, b)] == float(c.sel({"effect": "direct"}))
            assert t[("mediated", m, b)] == pytest.approx(t[("total", m, b)] - t[("direct", m, b)])
            assert t[("gap_to_identity", m, b)] == pytest.approx(t[("mediated", "identity", b)] - t[("mediated", m, b)])
    fig = plot_mediation(effects, tmp_path / "m.png", stat="spearman")
    _check_png(tmp_path / "m.png")
    ax_corr, ax_med, ax_gap = fig.axes[:3]
    # lines: (total, direct) per method; mediated per method; gap per method but identity
    data = [ln for ln in ax_corr.get_lines() if len(ln.get_xdata()) == len(BUCKETS)]
    assert len(data) == 2 * len(METHODS)
    total_grad = [ln for ln in data if ln.get_linestyle() == "-"][METHODS.index("gradient")]
    np.testing.assert_allclose(total_grad.get_ydata(), [t[("total", "gradient", b)] for b in BUCKETS])
    assert len([ln for ln in ax_gap.get_lines() if len(ln.get_xdata()) == len(BUCKETS)]) == len(METHODS) - 1
    med = [ln for ln in ax_med.get_lines() if len(ln.get_xdata()) == len(BUCKETS)]
    np.testing.assert_allclose(med[-1].get_ydata(), [t[("mediated", "grad_cam", b)] for b in BUCKETS])


def test_correlation_frame_total_effect(effects):
    df = correlation_frame(effects)
    assert len(df) == len(METHODS) * len(BUCKETS) * 2
    row = df[(df["method"] == "smoothgrad") & (df["bucket"] == "90-95") & (df["stat"] == "spearman")]
    expected = effects["corr"].sel({"effect": "total", "method": "smoothgrad", "bucket": "90-95", "stat": "spearman"})
    assert float(row["corr"].iloc[0]) == float(expected)
    ident = df[(df["method"] == "identity")]["corr"].values
    np.testing.assert_allclose(ident, 1.0)


def test_correlations_and_ite_by_bucket_figures_show_the_dataset(effects, drawn):
    _, figs, _ = drawn
    ax_p, ax_s = figs["correlations"].axes[:2]
    lines = [ln for ln in ax_s.get_lines() if len(ln.get_xdata()) == len(BUCKETS)]
    assert [ln.get_label() for ln in lines][:2] == ["Identity", "Gradient"]
    want = effects["corr"].sel({"effect": "total", "method": "integrated_gradients", "stat": "spearman"})
    np.testing.assert_allclose(lines[3].get_ydata(), want.values)
    axes = [ax for ax in figs["ite_by_bucket"].axes if ax.get_visible()]
    assert [ax.get_title() for ax in axes] == ["Y (prediction)"] + [f"E: {n}" for n in
                                                                  ["Identity", "Gradient", "SmoothGrad",
                                                                   "Integrated Gradients", "Grad-CAM"]]
    assert [ax.get_xticklabels()[-1].get_text() for ax in axes] == ["99-100"] * 6
    legend = figs["ite_by_bucket"].legends[0]
    assert [t.get_text() for t in legend.get_texts()] == ["adam", "rmsprop", "sgd"]
    # Y panel: box medians (every 5th line: 2 whiskers, 2 caps, median) are the ITE_Y medians
    # over images of each (bucket, value), boxes ordered by value within each bucket
    y = effects["ite_y"].sel({"hparam": "optimizer"}).transpose("bucket", "value", "image").values
    medians = axes[0].get_lines()[4::5]
    assert len(medians) == len(BUCKETS) * 3
    got = {}
    for ln in medians:
        x = float(np.mean(ln.get_xdata()))
        got.setdefault(int(round(x)), []).append((x, ln.get_ydata()[0]))
    for b in range(len(BUCKETS)):
        np.testing.assert_allclose([m for _, m in sorted(got[b])], np.median(y[b, :3], axis=-1))
