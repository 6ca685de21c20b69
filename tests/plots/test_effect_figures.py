"""Figures of the effects step (rule effect_figures; paper 000 Fig. 2-4, 10-13) on a real effects.nc of a
small synthetic zoo: frames against the dataset, every figure a PNG, bad choices named."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import xarray as xr
from matplotlib.collections import PathCollection

from causalxai.plots.effect_figures import (  # noqa: E402
    correlation_frame,
    ite_by_bucket_frame,
    ite_scatter_frame,
    mediation_frame,
    plot_correlations,
    plot_ite_by_bucket,
    plot_ite_by_hparam,
    plot_ite_scatter,
    plot_mediation,
    usable_buckets,
)
from causalxai.study.effects import compute_effects  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def effects(fast_effects, effect_inputs):
    zoo, buckets, pred, e = effect_inputs(40, 4, 4, seed=0, effect=1.0)
    return compute_effects(zoo, buckets, pred, {"gradient": e, "grad_cam": e.copy()}, replace(fast_effects, cap=None))


@pytest.fixture(scope="module")
def drawn(effects, tmp_path_factory):
    out = tmp_path_factory.mktemp("figs")
    before = effects.copy(deep=True)
    figs = {
        "corr": plot_correlations(effects, out / "corr.png"),
        "pooled": plot_correlations(effects, out / "pooled.png", aggregation="pooled"),
        "bucket": plot_ite_by_bucket(effects, out / "bucket.png", hparam="optimizer"),
        "hparam": plot_ite_by_hparam(effects, out / "hparam.png"),
        "scatter": plot_ite_scatter(effects, out / "scatter.png"),
        "mediation": plot_mediation(effects, out / "mediation.png"),
    }
    xr.testing.assert_identical(effects, before)  # plotting leaves its input untouched
    return out, figs


@pytest.mark.parametrize("name", ["corr", "pooled", "bucket", "hparam", "scatter", "mediation"])
def test_writes_png(drawn, name):
    out, _ = drawn
    data = (out / f"{name}.png").read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 10_000


def test_correlation_frame_reads_the_chosen_aggregation(effects):
    mean = correlation_frame(effects, "total").set_index(["method", "bucket", "stat"])
    pooled = correlation_frame(effects, "total", "pooled").set_index(["method", "bucket", "stat"])
    key = ("gradient", "0-50", "spearman")
    at = {"effect": "total", "method": "gradient", "bucket": "0-50", "stat": "spearman"}
    assert mean.loc[key, "corr"] == float(effects["corr_mean"].sel(at))
    assert mean.loc[key, "band"] == float(effects["corr_mean_band"].sel(at))
    assert pooled.loc[key, "corr"] == float(effects["corr"].sel(at))
    assert tuple(pooled.loc[key, ["lower", "upper"]]) == tuple(effects["corr_ci"].sel(at).values)
    placebo = correlation_frame(effects, "total", hparam="placebo").set_index(["method", "bucket", "stat"])
    assert placebo.loc[key, "corr"] == float(effects["corr_hparam"].sel({**at, "hparam": "placebo"}))


def test_ite_frames_map_cells_and_leave_out_small_ones(effects):
    df = ite_by_bucket_frame(effects, "optimizer")
    row = df[(df.output == "gradient") & (df.bucket == "50-100") & (df.value_label == "sgd")].iloc[0]
    at = {"effect": "total", "method": "gradient", "hparam": "optimizer", "value": row.value, "bucket": "50-100",
          "image": row.image}
    assert row.ite == float(effects["ite_e"].sel(at))
    assert row.small == bool(effects["small_cell"].sel({k: at[k] for k in ("hparam", "value", "bucket")}))
    sc = ite_scatter_frame(effects)
    assert "placebo" not in set(sc.hparam) and "identity" not in set(sc.method)
    r = sc.iloc[0]
    sel = {"hparam": r.hparam, "value": r.value, "bucket": r.bucket, "image": r.image}
    assert r.ite_y == float(effects["ite_y"].sel(sel))


def test_mediation_frame_and_usable_buckets(effects, fast_effects, effect_inputs):
    df = mediation_frame(effects, "pearson").set_index(["quantity", "method", "bucket"])
    at = {"method": "gradient", "bucket": "0-100", "stat": "pearson"}
    assert df.loc[("mediated", "gradient", "0-100"), "corr"] == float(effects["corr_mean_mediated"].sel(at))
    assert df.loc[("gap_to_identity", "gradient", "0-100"), "corr"] == float(effects["gap_to_identity_mean"].sel(at))
    pooled = mediation_frame(effects, "pearson", "pooled").set_index(["quantity", "method", "bucket"])
    assert pooled.loc[("total", "gradient", "0-100"), "corr"] == float(effects["corr"].sel({"effect": "total", **at}))
    assert usable_buckets(effects) == {"0-50": True, "50-100": True, "0-100": True}
    few = compute_effects(*effect_inputs(12, 2, 3, seed=1)[:3], {"gradient": effect_inputs(12, 2, 3, seed=1)[3]},
                          replace(fast_effects, min_models=4, cap=None))
    assert not all(usable_buckets(few).values())


def test_scatter_panels_show_the_right_points(effects, drawn):
    _, figs = drawn
    ax = figs["scatter"].axes[0]  # gradient, first bucket
    pts = np.concatenate([c.get_offsets() for c in ax.collections if isinstance(c, PathCollection)])
    sc = ite_scatter_frame(effects)
    sub = sc[(sc.method == "gradient") & (sc.bucket == "0-50")]
    assert len(pts) == len(sub)


def test_bad_choices_raise_naming_them(effects, tmp_path):
    with pytest.raises(ValueError, match=r"effects.figures.hparam 'momentum' .*choose one of optimizer, activation"):
        plot_ite_by_bucket(effects, tmp_path / "x.png", hparam="momentum")
    with pytest.raises(ValueError, match=r"effects.figures.hparam 'b_init' .*placebo"):  # one value: not estimated
        plot_ite_by_bucket(effects, tmp_path / "x.png", hparam="b_init")
    with pytest.raises(ValueError, match="effects.aggregation 'median'"):
        plot_correlations(effects, tmp_path / "x.png", aggregation="median")
    with pytest.raises(ValueError, match="statistic 'kendall'"):
        mediation_frame(effects, "kendall")
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("hparam", ["activation", "placebo"])
def test_ite_by_bucket_draws_the_configured_hparam_and_records_it(effects, tmp_path, hparam):
    """effects.figures.hparam: another hyperparameter's boxes, named in the title and the PNG's metadata."""
    from PIL import Image

    fig = plot_ite_by_bucket(effects, tmp_path / "b.png", hparam=hparam)
    assert f"ITE of {hparam} " in fig._suptitle.get_text()
    with Image.open(tmp_path / "b.png") as im:
        assert im.text["Description"] == f"effects.figures.hparam: {hparam}"
    df = ite_by_bucket_frame(effects, hparam)
    labels = [str(v) for v in effects["value_label"].sel({"hparam": hparam}).values if str(v)]
    assert sorted(set(df.value_label)) == sorted(labels)  # that hyperparameter's values, not the optimizer's
    y = df[df.output == "Y"]
    r = y.iloc[len(y) // 2]
    assert r.ite == float(effects["ite_y"].sel({"hparam": hparam, "value": r.value, "bucket": r.bucket,
                                                "image": r.image}))
    legend = fig.legends[0]
    assert legend.get_title().get_text() == hparam
    assert [t.get_text() for t in legend.get_texts()][: len(labels)] == labels
