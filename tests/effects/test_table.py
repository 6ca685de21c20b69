"""effects.nc from small synthetic results: shapes, Identity = 1, direct and mediated
effects against a float64 NumPy reference, NaN cells counted."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import stats

from causalxai.effects.groups import treatment_groups, treatment_levels
from causalxai.effects.table import compute_effects
from causalxai.zoo.buckets import make_buckets
from causalxai.zoo.dataset import make_zoo_dataset
from causalxai.zoo.hparams import sample_hparams
from causalxai.zoo.network import zoo_layout


def _inputs(m, i, side, seed):
    rng = np.random.default_rng(seed)
    hp = sample_hparams(m, {}, seed=seed)
    zoo = make_zoo_dataset(
        np.zeros((m, 4970), np.float32), hp, pd.DataFrame({"test_accuracy": rng.uniform(size=m)}),
        zoo_layout(1), dataset="toy", source="train", input_size=28,
    )
    buckets = make_buckets(zoo, [0, 50, 100])
    prob = rng.dirichlet(np.ones(10), size=(m, i))
    perm = rng.permuted(np.broadcast_to(np.arange(10), prob.shape), axis=-1)
    prob_direct = np.empty_like(prob)
    np.put_along_axis(prob_direct, perm, prob, axis=-1)
    pred = xr.Dataset(
        {"prob": (("model", "image", "class"), prob), "prob_direct": (("model", "image", "class"), prob_direct)},
        coords={"image": np.arange(i)},
    )
    e = xr.Dataset({"E": (("model", "effect", "image", "y", "x"), rng.uniform(size=(m, 2, i, side, side)))},
                   coords={"effect": ["total", "direct"]})
    return zoo, buckets, pred, e


def _rbf_ite(a, b):
    """Float64 NumPy eq. (4) with the RBF kernel and the median heuristic on the pooled models."""
    u = np.concatenate([a, b])
    d2 = ((u[:, None] - u[None]) ** 2).sum(-1)
    s2 = np.median(d2[np.triu_indices(len(u), 1)])
    k = np.exp(-d2 / (2 * s2))
    na = len(a)
    return 1 + 1 - 2 * k[:na, na:].mean()


def test_effects_table():
    zoo, buckets, pred, e = _inputs(40, 3, 4, seed=0)
    ds = compute_effects(zoo, buckets, pred, {"gradient": e}, cap=10, seed=0)
    assert "b_init" not in ds["hparam"].values  # a single value: no treatment
    assert ds["ite_e"].dims == ("effect", "method", "hparam", "value", "bucket", "image")
    assert list(ds["method"].values) == ["identity", "gradient"]
    assert list(ds["effect"].values) == ["total", "direct"]
    np.testing.assert_allclose(ds["corr"].sel({"effect": "total", "method": "identity"}).values, 1.0)
    assert np.isfinite(ds["corr"].values).all()
    assert (ds["n_treated"].values <= 10).all()
    empty = (ds["n_treated"] == 0) | (ds["n_control"] == 0)
    assert bool(ds["ite_y"].where(empty).isnull().all())
    assert ds.attrs["n_empty_cells"] == int(empty.sum())
    assert ds["value_label"].sel(hparam="optimizer").values.tolist()[:3] == ["adam", "rmsprop", "sgd"]
    # the mediation quantities are the documented differences
    xr.testing.assert_allclose(ds["ite_e_mediated"], ds["ite_e"].sel(effect="total", drop=True)
                               - ds["ite_e"].sel(effect="direct", drop=True))
    med = ds["corr"].sel(effect="total", drop=True) - ds["corr"].sel(effect="direct", drop=True)
    xr.testing.assert_allclose(ds["corr_mediated"], med)
    xr.testing.assert_allclose(ds["gap_to_identity"], (med.sel({"method": "identity"}, drop=True) - med).transpose(*med.dims))
    np.testing.assert_allclose(ds["gap_to_identity"].sel({"method": "identity"}).values, 0.0)


def test_direct_effects_match_a_numpy_reference():
    m, i = 36, 2
    zoo, buckets, pred, e = _inputs(m, i, 3, seed=4)
    ds = compute_effects(zoo, buckets, pred, {"gradient": e}, cap=8, seed=2)
    h = list(ds["hparam"].values).index("optimizer")
    lv, labels = treatment_levels("optimizer", zoo["optimizer"].values)
    groups = treatment_groups(lv, len(labels), buckets["bucket"].values, 2, 8, 2 + h)
    g = groups[0]
    for eff, method, out in [
        ("direct", "identity", pred["prob_direct"].values),
        ("direct", "gradient", e["E"].sel(effect="direct").values.reshape(m, i, -1)),
        ("total", "gradient", e["E"].sel(effect="total").values.reshape(m, i, -1)),
    ]:
        for img in range(i):
            ref = _rbf_ite(out[g.treated, img], out[g.control, img])
            got = ds["ite_e"].sel({"effect": eff, "method": method}).values[h, g.value, g.bucket, img]
            np.testing.assert_allclose(got, ref, rtol=1e-10)
    # corr(direct) of a method: Pearson of the raw ITE over the bucket's finite entries
    y = ds["ite_y"].isel(bucket=1).values.ravel()
    d = ds["ite_e"].sel({"effect": "direct", "method": "gradient"}).isel(bucket=1).values.ravel()
    ok = np.isfinite(y) & np.isfinite(d)
    np.testing.assert_allclose(ds["corr"].sel({"effect": "direct", "method": "gradient", "stat": "pearson"}).values[1],
                               stats.pearsonr(y[ok], d[ok]).statistic, rtol=1e-12)


def test_old_files_are_refused():
    zoo, buckets, pred, e = _inputs(20, 2, 3, seed=1)
    with pytest.raises(ValueError, match="prob_direct"):
        compute_effects(zoo, buckets, pred.drop_vars("prob_direct"), {"gradient": e})
    old = xr.Dataset({"E": e["E"].sel(effect="total", drop=True)})
    with pytest.raises(ValueError, match="explanations/gradient.nc"):
        compute_effects(zoo, buckets, pred, {"gradient": old})


def test_a_bucket_too_small_for_any_pair_is_named():
    zoo, buckets, pred, e = _inputs(20, 2, 3, seed=1)
    b = np.zeros(20, dtype=np.int64)
    b[np.argmax(zoo["test_accuracy"].values)] = 1  # the best model alone in the upper bucket
    buckets = buckets.assign(bucket=("model", b))
    with pytest.raises(ValueError, match=r"fewer than 2 models .*'50-100': 1.*buckets.edges"):
        compute_effects(zoo, buckets, pred, {"gradient": e})


def test_large_bucket_path_gives_the_same_numbers(monkeypatch):
    import causalxai.effects.table as table

    zoo, buckets, pred, e = _inputs(30, 2, 3, seed=3)
    small = compute_effects(zoo, buckets, pred, {"gradient": e}, cap=5, seed=1)
    monkeypatch.setattr(table, "MAX_GRAM_MODELS", 1)
    large = compute_effects(zoo, buckets, pred, {"gradient": e}, cap=5, seed=1)
    xr.testing.assert_allclose(small, large, rtol=1e-10)
