"""effects.nc from small synthetic results: eq. (4), correlations, intervals, the placebo and
the permutation null against float64 NumPy/SciPy references and statistical properties."""

from dataclasses import replace

import numpy as np
import pytest
import xarray as xr
from scipy import stats

from causalxai.checks import DegenerateResultError
from causalxai.study.effects import EffectsSettings, check_effects, compute_effects, compute_effects_grid
from causalxai.study.estimators.estimate import KernelSpec
from causalxai.study.estimators.treatments import (
    check_figure_hparam,
    figure_hparam_choices,
    treatment_groups,
    treatment_levels,
)


@pytest.fixture(scope="module")
def small(fast_effects, effect_inputs):
    zoo, buckets, pred, e = effect_inputs(40, 3, 4, seed=0)
    return zoo, buckets, pred, e, compute_effects(zoo, buckets, pred, {"gradient": e}, replace(fast_effects, cap=10))


def test_effects_table(small):
    zoo, buckets, pred, e, ds = small
    assert "b_init" not in ds["hparam"].values  # a single value: no treatment
    assert ds["hparam"].values[-1] == "placebo" and ds["hparam_kind"].values.tolist().count("placebo") == 1
    assert ds["ite_e"].dims == ("effect", "method", "hparam", "value", "bucket", "image")
    assert list(ds["method"].values) == ["identity", "gradient"]
    assert list(ds["bucket"].values) == ["0-50", "50-100", "0-100"]
    assert ds["bucket_n_models"].values.tolist() == [20, 20, 40]
    np.testing.assert_allclose(ds["corr"].sel({"effect": "total", "method": "identity"}).values, 1.0)
    np.testing.assert_allclose(ds["corr_mean"].sel({"effect": "total", "method": "identity"}).values, 1.0)
    assert np.isfinite(ds["corr"].values).all() and np.isfinite(ds["corr_ci"].values).all()
    assert (ds["n_treated"].values <= 10).all()
    real = ds["value_label"] != ""
    empty = ((ds["n_treated"] == 0) | (ds["n_control"] == 0)) & real
    assert ds.attrs["n_empty_cells"] == int(empty.sum())  # real cells only, not the padding
    assert bool(ds["ite_y"].where((ds["n_treated"] == 0) | (ds["n_control"] == 0)).isnull().all())
    assert ds["value_label"].sel(hparam="optimizer").values.tolist()[:3] == ["adam", "rmsprop", "sgd"]
    for key in ("bandwidth", "estimator", "bootstrap", "permutations", "min_models", "ci_level",
                "max_models_per_group"):
        assert key in ds.attrs, key
    assert ds.attrs["bandwidth"] == "fixed" and ds.attrs["estimator"] == "eq4"
    # the mediation quantities are the documented differences
    xr.testing.assert_allclose(ds["ite_e_mediated"], ds["ite_e"].sel(effect="total", drop=True)
                               - ds["ite_e"].sel(effect="direct", drop=True))
    med = ds["corr"].sel(effect="total", drop=True) - ds["corr"].sel(effect="direct", drop=True)
    xr.testing.assert_allclose(ds["corr_mediated"], med)
    xr.testing.assert_allclose(ds["gap_to_identity"],
                               (med.sel({"method": "identity"}, drop=True) - med).transpose(*med.dims))
    np.testing.assert_allclose(ds["gap_to_identity"].sel({"method": "identity"}).values, 0.0)
    np.testing.assert_allclose(ds["gap_to_identity_mean_ci"].sel({"method": "identity"}).values, 0.0)
    # intervals bracket their estimates
    for name in ("corr", "corr_mean", "corr_mediated", "gap_to_identity", "cate_y"):
        lo, hi = ds[f"{name}_ci"].sel(bound="lower"), ds[f"{name}_ci"].sel(bound="upper")
        assert bool((lo <= hi + 1e-12).where(np.isfinite(lo)).fillna(True).all()), name


def test_ite_and_correlations_match_numpy_references(small, numpy_ite):
    zoo, buckets, pred, e, ds = small
    names = list(ds["hparam"].values)
    h = names.index("optimizer")
    lv, labels = treatment_levels("optimizer", zoo["optimizer"].values)
    groups = treatment_groups(lv, len(labels), buckets["bucket"].values, 2, 10, 0 + h)
    glob = treatment_groups(lv, len(labels), np.zeros(40, int), 1, 10, [0, h, 0x61])
    outs = {("total", "identity"): pred["prob"].values, ("direct", "identity"): pred["prob_direct"].values,
            ("total", "gradient"): e["E"].sel(effect="total").values.reshape(40, 3, -1),
            ("direct", "gradient"): e["E"].sel(effect="direct").values.reshape(40, 3, -1)}
    for g, b in [(groups[0], groups[0].bucket), (groups[-1], groups[-1].bucket), (glob[1], 2)]:
        for (eff, method), out in outs.items():
            for img in range(3):
                ref = numpy_ite(out[g.treated, img], out[g.control, img])  # RBF, fixed gamma = 1/d
                got = ds["ite_e"].sel({"effect": eff, "method": method}).values[h, g.value, b, img]
                np.testing.assert_allclose(got, ref, rtol=1e-10)
        np.testing.assert_allclose(ds["cate_y"].values[h, g.value, b], ds["ite_y"].values[h, g.value, b].mean())
    # pooled correlation: Pearson/Spearman over the bucket's real, non-small (value, image) entries
    real = ds["hparam_kind"] == "real"
    keep = (~ds["small_cell"]) & real
    y = ds["ite_y"].where(keep).isel(bucket=1).values.ravel()
    d = ds["ite_e"].sel({"effect": "direct", "method": "gradient"}).where(keep).isel(bucket=1).values.ravel()
    ok = np.isfinite(y) & np.isfinite(d)
    got = ds["corr"].sel({"effect": "direct", "method": "gradient"}).values[1]
    np.testing.assert_allclose(got, [stats.pearsonr(y[ok], d[ok]).statistic, stats.spearmanr(y[ok], d[ok]).statistic],
                               rtol=1e-10)
    # hparam-averaged correlation: the mean of corr_hparam over the real hyperparameters
    ch = ds["corr_hparam"].sel(hparam=ds["hparam"][real.values])
    xr.testing.assert_allclose(ds["corr_mean"], ch.mean("hparam", skipna=True).transpose(*ds["corr_mean"].dims))
    n = np.isfinite(ch).sum("hparam")
    xr.testing.assert_allclose(ds["corr_mean_band"].where(n > 1),
                               (ch.std("hparam", skipna=True) / np.sqrt(n)).where(n > 1)
                               .transpose(*ds["corr_mean"].dims))


def test_dropped_maps_leave_their_image_only(fast_effects, effect_inputs, numpy_ite):
    zoo, buckets, pred, e = effect_inputs(24, 2, 3, seed=5)
    e["E"][3, :, 1] = np.nan  # model 3's maps on image 1 are dropped
    s = replace(fast_effects, cap=None, bootstrap=0, permutations=0, global_bucket=False)
    ds = compute_effects(zoo, buckets, pred, {"gradient": e}, s)
    h = list(ds["hparam"].values).index("activation")
    lv, labels = treatment_levels("activation", zoo["activation"].values)
    g = next(g for g in treatment_groups(lv, 2, buckets["bucket"].values, 2, None, h)
             if 3 in np.r_[g.treated, g.control])
    out = e["E"].sel(effect="total").values.reshape(24, 2, -1)
    for img in range(2):
        t = [m for m in g.treated if np.isfinite(out[m, img]).all()]
        c = [m for m in g.control if np.isfinite(out[m, img]).all()]
        np.testing.assert_allclose(
            ds["ite_e"].sel({"effect": "total", "method": "gradient"}).values[h, g.value, g.bucket, img],
            numpy_ite(out[t, img], out[c, img]), rtol=1e-10)
    assert int(ds["n_dropped_maps"].sel({"effect": "total", "method": "gradient"})) == 1


def test_grid_paths_and_pooling_agree(monkeypatch, fast_effects, effect_inputs):
    import causalxai.study.effects as table

    zoo, buckets, pred, e = effect_inputs(30, 2, 3, seed=3)
    s = replace(fast_effects, cap=5)
    specs = [KernelSpec("rbf", bw, est)
             for bw in ("fixed", "median_bucket", "median_cell") for est in ("eq4", "mmd_unbiased")]
    grid = compute_effects_grid(zoo, buckets, pred, {"gradient": e}, s, specs)
    for spec, ds in zip(specs, grid):
        one = compute_effects(zoo, buckets, pred, {"gradient": e},
                              replace(s, bandwidth=spec.bandwidth, estimator=spec.estimator))
        xr.testing.assert_identical(ds, one)
    # a bucket too large to share its Gram matrix is evaluated cell by cell: same numbers
    monkeypatch.setattr(table, "GRAM_BYTES", 0)
    large = compute_effects_grid(zoo, buckets, pred, {"gradient": e}, s, specs)
    for a, b in zip(grid, large):
        xr.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    # 15-model buckets: one image's Gram block (15² x 8 B = 1,800 B) fits in 3,000 B, both images'
    # do not: the cells share it an image at a time; the 30-model global bucket (7,200 B an image)
    # is evaluated cell by cell; same numbers
    reads = []

    class Counting(table._OutputReader):
        def __call__(self, key, idx):
            reads.append(len(idx))
            return super().__call__(key, idx)

    monkeypatch.setattr(table, "_OutputReader", Counting)
    monkeypatch.setattr(table, "GRAM_BYTES", 3000)
    assert table._image_chunks(15, 2, [10] * 4, 160) == [slice(0, 1), slice(1, 2)]
    assert table._image_chunks(30, 2, [10] * 4, 160) is None
    once = compute_effects_grid(zoo, buckets, pred, {"gradient": e}, s, specs)
    for a, b in zip(grid, once):
        xr.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    assert reads == [30] * 4  # the zoo's outputs (6,000 B) fit: each is read once, for every bucket
    # the zoo's outputs no longer fit in 4,000 B: each 15-model bucket reads its own (2,400 B) and
    # shares its Gram an image at a time; the global bucket's cells read their own models
    reads.clear()
    monkeypatch.setattr(table, "GRAM_BYTES", 2000)
    per_cell = compute_effects_grid(zoo, buckets, pred, {"gradient": e}, s, specs)
    for a, b in zip(grid, per_cell):
        xr.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    # (and median_bucket reads the global bucket's 30 models once per output for its bandwidth)
    assert reads.count(15) == 2 * 4 and reads.count(30) == 4 and max(r for r in reads if r not in (15, 30)) <= 10
    monkeypatch.undo()
    # pooling as many models as a bucket holds is no pooling
    uncapped = compute_effects(zoo, buckets, pred, {"gradient": e}, replace(fast_effects, cap=None))
    pooled = compute_effects(zoo, buckets, pred, {"gradient": e}, replace(fast_effects, pool=30))
    xr.testing.assert_allclose(uncapped["ite_e"], pooled["ite_e"], rtol=1e-10)
    fewer = compute_effects(zoo, buckets, pred, {"gradient": e}, replace(fast_effects, pool=6))
    assert not np.allclose(np.nan_to_num(fewer["ite_y"].values), np.nan_to_num(uncapped["ite_y"].values))


def test_bootstrap_is_seeded_and_shrinks_with_the_bucket(fast_effects, effect_inputs):
    small = effect_inputs(40, 4, 3, seed=1, effect=1.0)
    large = effect_inputs(320, 4, 3, seed=1, effect=1.0)
    s = replace(fast_effects, bootstrap=60, permutations=0, cap=None, global_bucket=False)
    a = compute_effects(*small[:3], {"gradient": small[3]}, s)
    xr.testing.assert_identical(a, compute_effects(*small[:3], {"gradient": small[3]}, s))
    other = compute_effects(*small[:3], {"gradient": small[3]}, replace(s, seed=9))
    assert not np.allclose(a["cate_y_ci"].values, other["cate_y_ci"].values, equal_nan=True)
    b = compute_effects(*large[:3], {"gradient": large[3]}, s)

    def width(ds):
        ci = ds["cate_e_ci"].sel({"effect": "total", "method": "gradient", "hparam": "optimizer"})
        return float((ci.sel(bound="upper") - ci.sel(bound="lower")).mean())

    assert width(b) < 0.6 * width(a)  # 8x the models: about 1/sqrt(8) the width


def test_interval_endpoints_settle_as_replicates_grow(fast_effects, effect_inputs):
    zoo, buckets, pred, e = effect_inputs(60, 3, 3, seed=2, effect=1.0)

    def spread(b):
        ends = [compute_effects(zoo, buckets, pred, {"gradient": e},
                                replace(fast_effects, bootstrap=b, permutations=0, seed=k, global_bucket=False))
                ["cate_y_ci"].sel(hparam="optimizer").values for k in range(4)]
        return float(np.nanmean(np.nanstd(np.stack(ends), axis=0)))

    assert spread(200) < 0.8 * spread(15)


def test_permutation_null_is_calibrated_and_detects_a_planted_effect(fast_effects, effect_inputs):
    zoo, buckets, pred, e = effect_inputs(80, 6, 3, seed=4, effect=1.5)
    ds = compute_effects(zoo, buckets, pred, {"gradient": e},
                         replace(fast_effects, permutations=100, bootstrap=0, cap=None))
    real = [h for h, k in zip(ds["hparam"].values, ds["hparam_kind"].values) if k == "real" and h != "optimizer"]
    null_p = ds["p_value_y"].sel(hparam=real + ["placebo"]).values
    null_p = null_p[np.isfinite(null_p)]
    assert 0.4 < null_p.mean() < 0.6 and (null_p < 0.05).mean() < 0.1  # no effect: uniform p-values
    sgd = ds["p_value_y"].sel(hparam="optimizer", value=2).values
    assert np.nanmax(sgd) < 0.05  # the planted effect of sgd is found on every image
    # eq. (4) for no effect is the permutation level, not 0
    pl = ds["ite_y"].sel(hparam="placebo")
    assert (float(pl.mean()) > 0
            and abs(float((pl - ds["ite_y_null"].sel(hparam="placebo")).mean())) < 0.2 * float(pl.mean()))


def test_small_cells_are_flagged_and_left_out(fast_effects, effect_inputs):
    zoo, buckets, pred, e = effect_inputs(30, 2, 3, seed=6)
    s = replace(fast_effects, min_models=100, global_bucket=False)
    ds = compute_effects_grid(zoo, buckets, pred, {"gradient": e}, s, [s.spec])[0]  # the grid does not refuse
    assert bool(ds["small_cell"].where(ds["n_treated"] > 0).fillna(True).all())
    assert ds.attrs["n_small_cells"] > 0 and np.isnan(ds["corr"].values).all()
    assert np.isfinite(ds["ite_y"].values).any()  # still estimated, just not correlated
    # the step refuses it: every correlation NaN, every figure empty
    with pytest.raises(DegenerateResultError, match=r"effects: corr of method 'identity' .* is all NaN .*every cell "
                                                    r"is small.*effects.min_models=100.*lower effects.min_models"):
        compute_effects(zoo, buckets, pred, {"gradient": e}, s)


def test_old_files_are_refused(effect_inputs):
    zoo, buckets, pred, e = effect_inputs(20, 2, 3, seed=1)
    with pytest.raises(ValueError, match="prob_direct"):
        compute_effects(zoo, buckets, pred.drop_vars("prob_direct"), {"gradient": e})
    old = xr.Dataset({"E": e["E"].sel(effect="total", drop=True)})
    with pytest.raises(ValueError, match="explanations/gradient.nc"):
        compute_effects(zoo, buckets, pred, {"gradient": old})
    with pytest.raises(ValueError, match="effects.bandwidth"):
        EffectsSettings(bandwidth="silverman")


def test_inputs_of_different_zoos_are_refused_naming_their_sizes(effect_inputs):
    zoo, buckets, pred, e = effect_inputs(20, 2, 3, seed=1)
    other_zoo, _, other_pred, other_e = effect_inputs(24, 2, 3, seed=1)  # a stale file of another zoo
    with pytest.raises(ValueError, match=r"different zoos \(zoo.nc 20 models, buckets.nc 20 models, "
                                         r"predictions.nc 24 models, explanations/gradient.nc 20 models\)"):
        compute_effects(zoo, buckets, other_pred, {"gradient": e})
    with pytest.raises(ValueError, match="explanations/gradient.nc 24 models"):
        compute_effects(zoo, buckets, pred, {"gradient": other_e})
    with pytest.raises(ValueError, match="zoo.nc 24 models"):
        compute_effects(other_zoo, buckets, pred, {"gradient": e})


def test_a_bucket_too_small_for_any_pair_is_named(effect_inputs):
    zoo, buckets, pred, e = effect_inputs(20, 2, 3, seed=1)
    b = np.zeros(20, dtype=np.int64)
    b[np.argmax(zoo["test_accuracy"].values)] = 1  # the best model alone in the upper bucket
    buckets = buckets.assign(bucket=("model", b))
    with pytest.raises(ValueError, match=r"fewer than 2 models .*'50-100': 1.*buckets.edges"):
        compute_effects(zoo, buckets, pred, {"gradient": e})


def test_lazy_and_packed_maps(tmp_path, fast_effects, effect_inputs):
    """Read lazily from disk: the same numbers; packed to 16 bits: correlations move < 1e-3."""
    from causalxai.io import open_lazy, write_dataset
    from causalxai.study.explain import E_ENCODING

    zoo, buckets, pred, e = effect_inputs(40, 3, 4, seed=0)
    s = replace(fast_effects, cap=10)
    ref = compute_effects(zoo, buckets, pred, {"gradient": e}, s)
    write_dataset(e, tmp_path / "plain.nc", step="explain", compress=False)
    with open_lazy(tmp_path / "plain.nc") as lazy:
        xr.testing.assert_identical(compute_effects(zoo, buckets, pred, {"gradient": lazy}, s), ref)
    e32 = e.astype(np.float32)
    write_dataset(e32, tmp_path / "packed.nc", step="explain", encoding={"E": E_ENCODING})
    with open_lazy(tmp_path / "packed.nc") as packed:
        assert packed["E"].encoding["dtype"] == np.uint16
        got = compute_effects(zoo, buckets, pred, {"gradient": packed}, s)
    exact = compute_effects(zoo, buckets, pred, {"gradient": e32}, s)
    for name in ("corr", "corr_mean", "corr_hparam", "gap_to_identity"):
        diff = np.nanmax(np.abs(got[name].values - exact[name].values))
        assert diff < 1e-3, name
    assert 0 < np.nanmax(np.abs(got["ite_e"].values - exact["ite_e"].values)) < 1e-4


# --- degenerate results refused (issue 17) ------------------------------------------------


def test_one_model_a_side_makes_every_ite_one_constant_and_is_refused(effect_inputs):
    """The issue's case: one model on each side of a cell with a median bandwidth makes eq. (4)
    ``2 − 2·exp(−1/2)`` in every cell, whatever the outputs (γ = 1 / (2·d²) of the one pair)."""
    zoo, buckets, pred, e = effect_inputs(40, 3, 4, seed=0)
    s = EffectsSettings(bootstrap=5, permutations=5, min_models=1, cap=1, bandwidth="median_cell")
    raw = compute_effects_grid(zoo, buckets, pred, {"gradient": e}, s, [s.spec])[0]
    finite = raw["ite_y"].values[np.isfinite(raw["ite_y"].values)]
    np.testing.assert_allclose(finite, 2 - 2 * np.exp(-0.5), rtol=1e-12)
    with pytest.raises(DegenerateResultError, match=r"effects: ite_y .* is constant: all \d+ finite values equal "
                                                    r"0\.78693868.*effects.max_models_per_group=1.*raise "
                                                    r"effects.max_models_per_group") as err:
        compute_effects(zoo, buckets, pred, {"gradient": e}, s)
    assert (err.value.step, err.value.finding) == ("effects", "constant")


def test_a_zoo_of_identical_models_is_refused(effect_inputs, fast_effects):
    """Every model gives the same Y: every ITE_Y is 0 (eq. 4 of equal outputs)."""
    zoo, buckets, pred, e = effect_inputs(30, 3, 4, seed=2)
    same = pred.copy(data={k: np.broadcast_to(v.values[:1], v.shape).copy() for k, v in pred.data_vars.items()})
    with pytest.raises(DegenerateResultError, match=r"ite_y .* constant: all \d+ finite values equal 0 .*every model "
                                                    r"of the zoo gives the same Y"):
        compute_effects(zoo, buckets, same, {"gradient": e}, fast_effects)


def test_check_effects_on_hand_made_degenerate_results(small):
    ds = small[-1]
    check_effects(ds)  # a real result, NaN in its empty cells: informative
    real = ds["hparam_kind"] == "real"
    const = ds.copy()
    const["ite_y"] = xr.where(ds["ite_y"].notnull(), 0.25, np.nan)
    with pytest.raises(DegenerateResultError, match=r"ite_y .* constant: all \d+ finite values equal 0.25"):
        check_effects(const)
    placebo_only = ds.copy()  # the placebo's ITEs do not count: only the real hyperparameters'
    placebo_only["ite_y"] = ds["ite_y"].where(~real)
    with pytest.raises(DegenerateResultError, match=r"ite_y .* all NaN \(none of its \d+ values is finite\)"):
        check_effects(placebo_only)
    dropped = ds.copy()
    dropped["ite_e"] = ds["ite_e"].where(~((ds["method"] == "gradient") & (ds["effect"] == "direct")))
    with pytest.raises(DegenerateResultError, match=r"ite_e of method 'gradient' \(direct effect\) is all NaN.*"
                                                    r"explain.zero_maps"):
        check_effects(dropped)
    no_corr = ds.copy()
    no_corr["corr"] = ds["corr"].where(ds["method"] != "gradient")
    with pytest.raises(DegenerateResultError, match=r"corr of method 'gradient' \(total effect.*all NaN"):
        check_effects(no_corr)
    partly = ds.copy()  # some NaN cells and correlations are normal
    partly["corr"] = ds["corr"].where(ds["bucket"] != "0-50")
    partly["ite_e"] = ds["ite_e"].where(ds["image"] != 0)
    check_effects(partly)


def test_figure_hparam_choices_follow_the_zoo():
    default = {"zoo": {"source": "train", "train": {"hparams": {}}}, "effects": {"figures": {"hparam": "optimizer"}}}
    expected = ["optimizer", "activation", "w_init", "init_std", "l2reg", "dropout", "learning_rate",
                "train_fraction", "placebo"]  # b_init has one value: no effect
    assert figure_hparam_choices(default) == expected
    assert figure_hparam_choices({"zoo": {"source": "smallcnnzoo"}}) == expected
    check_figure_hparam(default)
    narrow = {"zoo": {"source": "train", "train": {"hparams": {
        "optimizer": ["adam"],  # one value
        "learning_rate": {"low": 1e-3, "high": 1.2e-3, "scale": "log"},  # every value rounds to the marker 5e-4
        "dropout": [0.5, 0.55],  # two values, both rounded to the marker 0.45
        "activation": ["relu", "tanh"]}}}, "effects": {"figures": {"hparam": "optimizer"}}}
    choices = figure_hparam_choices(narrow)
    assert "optimizer" not in choices and "learning_rate" not in choices and "dropout" not in choices
    assert "activation" in choices and choices[-1] == "placebo"
    with pytest.raises(ValueError, match=r"effects.figures.hparam 'optimizer' takes a single value in this zoo.*"
                                         r"choose one of activation, w_init"):
        check_figure_hparam(narrow)
    with pytest.raises(ValueError, match=r"effects.figures.hparam 'momentum' is not a hyperparameter"):
        check_figure_hparam({**default, "effects": {"figures": {"hparam": "momentum"}}})
    check_figure_hparam({**narrow, "effects": {"figures": {"hparam": "placebo"}}})
