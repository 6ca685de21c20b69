"""effects.nc from small synthetic results: shapes, Identity = 1, NaN cells counted."""

import numpy as np
import pandas as pd
import xarray as xr

from causalxai.effects.table import compute_effects
from causalxai.zoo.buckets import make_buckets
from causalxai.zoo.dataset import make_zoo_dataset
from causalxai.zoo.hparams import sample_hparams
from causalxai.zoo.network import zoo_layout


def test_effects_table():
    rng = np.random.default_rng(0)
    m, i = 40, 3
    hp = sample_hparams(m, {}, seed=0)
    zoo = make_zoo_dataset(
        np.zeros((m, 4970), np.float32), hp, pd.DataFrame({"test_accuracy": rng.uniform(size=m)}),
        zoo_layout(1), dataset="toy", source="train", input_size=28,
    )
    buckets = make_buckets(zoo, [0, 50, 100])
    prob = rng.dirichlet(np.ones(10), size=(m, i)).astype(np.float32)
    pred = xr.Dataset({"prob": (("model", "image", "class"), prob)}, coords={"image": np.arange(i)})
    e = xr.Dataset({"E": (("model", "image", "y", "x"), rng.uniform(size=(m, i, 4, 4)).astype(np.float32))})
    ds = compute_effects(zoo, buckets, pred, {"gradient": e}, cap=10, seed=0)
    assert "b_init" not in ds["hparam"].values  # a single value: no treatment
    assert ds["ite_e"].dims == ("method", "hparam", "value", "bucket", "image")
    assert list(ds["method"].values) == ["identity", "gradient"]
    np.testing.assert_allclose(ds["corr"].sel({"method": "identity"}).values, 1.0)
    assert np.isfinite(ds["corr"].sel({"method": "gradient"}).values).all()
    assert (ds["n_treated"].values <= 10).all()
    empty = (ds["n_treated"] == 0) | (ds["n_control"] == 0)
    assert bool(ds["ite_y"].where(empty).isnull().all())
    assert ds.attrs["n_empty_cells"] == int(empty.sum())
    assert ds["value_label"].sel(hparam="optimizer").values.tolist()[:3] == ["adam", "rmsprop", "sgd"]


def test_large_bucket_path_gives_the_same_numbers(monkeypatch):
    import causalxai.effects.table as table

    rng = np.random.default_rng(3)
    m, i = 30, 2
    hp = sample_hparams(m, {}, seed=3)
    zoo = make_zoo_dataset(
        np.zeros((m, 4970), np.float32), hp, pd.DataFrame({"test_accuracy": rng.uniform(size=m)}),
        zoo_layout(1), dataset="toy", source="train", input_size=28,
    )
    buckets = make_buckets(zoo, [0, 50, 100])
    pred = xr.Dataset({"prob": (("model", "image", "class"), rng.dirichlet(np.ones(10), size=(m, i)))}, coords={"image": np.arange(i)})
    e = xr.Dataset({"E": (("model", "image", "y", "x"), rng.uniform(size=(m, i, 3, 3)))})
    small = compute_effects(zoo, buckets, pred, {"gradient": e}, cap=5, seed=1)
    monkeypatch.setattr(table, "MAX_GRAM_MODELS", 1)
    large = compute_effects(zoo, buckets, pred, {"gradient": e}, cap=5, seed=1)
    xr.testing.assert_allclose(small, large, rtol=1e-10)
