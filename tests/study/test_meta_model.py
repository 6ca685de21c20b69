"""Meta-model of paper 000 App. A.2: features, split, determinism, learnability, bad input."""

import numpy as np
import pytest
import torch
import xarray as xr

from causalxai.study.meta_model import (
    MetaModelSettings,
    fit_meta_model,
    hparam_feature_names,
    hparam_features,
    split_models,
)
from causalxai.zoo.hparams import CATEGORICAL, CONTINUOUS

torch.set_num_threads(1)

OPTIMIZERS = ["sgd", "adam", "rmsprop"]
FAST = {"hidden": 64, "epochs": 40, "batch_size": 64, "lr": 3e-3}


def make_zoo(hp: dict, acc=None) -> xr.Dataset:
    n = len(hp["optimizer"])
    full = {
        "optimizer": ["sgd"] * n, "activation": ["relu"] * n, "w_init": ["he_normal"] * n, "b_init": ["zeros"] * n,
        "init_std": [0.01] * n, "l2reg": [1e-4] * n, "dropout": [0.0] * n, "learning_rate": [1e-3] * n,
        "train_fraction": [1.0] * n,
    }
    full.update(hp)
    coords = {"model": np.arange(n)}
    for k in CATEGORICAL:
        coords[k] = ("model", np.asarray(full[k]).astype(str))
    for k in CONTINUOUS:
        coords[k] = ("model", np.asarray(full[k], dtype=np.float64))
    acc = np.linspace(0.1, 0.9, n) if acc is None else acc
    return xr.Dataset({"test_accuracy": ("model", np.asarray(acc, dtype=np.float64))}, coords=coords)


def synthetic(n_models=100, n_images=20, rule="label_optimizer", seed=0):
    """A zoo whose base-model predictions follow ``rule``; images are noisy class templates."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n_images) % 10
    templates = rng.normal(size=(10, 8, 8))
    pixels = (templates[labels] + 0.3 * rng.normal(size=(n_images, 8, 8))).astype(np.float32)
    opt = rng.choice(OPTIMIZERS, n_models)
    zoo = make_zoo(
        {
            "optimizer": opt,
            "activation": rng.choice(["relu", "tanh"], n_models),
            "l2reg": 10 ** rng.uniform(-8, -2, n_models),
            "dropout": rng.uniform(0, 0.7, n_models),
        },
        acc=rng.uniform(size=n_models),
    )
    if rule == "label_optimizer":
        shift = np.array([OPTIMIZERS.index(o) * 3 for o in opt])
        target = (labels[None, :] + shift[:, None]) % 10
    else:
        target = rng.integers(0, 10, (n_models, n_images))
    images = xr.Dataset(
        {"pixels": (("image", "y", "x"), pixels), "label": ("image", labels)}, coords={"image": np.arange(n_images)}
    )
    predictions = xr.Dataset(
        {"target": (("model", "image"), target.astype(np.int64))},
        coords={"model": np.arange(n_models), "image": np.arange(n_images), "class": np.arange(10)},
    )
    return zoo, images, predictions


def test_features_one_hot_and_standardised():
    zoo = make_zoo(
        {
            "optimizer": ["sgd", "adam", "sgd", "rmsprop"],
            "activation": ["tanh", "relu", "relu", "relu"],
            "l2reg": [1e-8, 1e-6, 1e-4, 0.0],
            "dropout": [0.0, 0.2, 0.4, 0.6],
        }
    )
    names = hparam_feature_names(zoo)
    assert names[:5] == ["optimizer=adam", "optimizer=rmsprop", "optimizer=sgd", "activation=relu", "activation=tanh"]
    assert names[-5:] == ["log10_init_std", "log10_l2reg", "dropout", "log10_learning_rate", "log10_train_fraction"]
    f = hparam_features(zoo, fit_models=np.array([0, 1, 2]))
    # 3 optimizers + 2 activations + 1 w_init + 1 b_init + 5 continuous
    assert f.shape == (4, 12) and len(names) == 12 and f.dtype == np.float32
    np.testing.assert_array_equal(f[:, :3], [[0, 0, 1], [1, 0, 0], [0, 0, 1], [0, 1, 0]])
    np.testing.assert_array_equal(f[:, 3:5], [[0, 1], [1, 0], [1, 0], [1, 0]])
    np.testing.assert_array_equal(f[:, 5:7], np.ones((4, 2)))
    # log10 l2reg = -8, -6, -4 on the fit models: mean -6, std sqrt(8/3); l2reg 0 -> log10(1e-8 / 10) = -9
    sd = np.sqrt(8 / 3)
    np.testing.assert_allclose(f[:, names.index("log10_l2reg")], np.array([-2, 0, 2, -3]) / sd, rtol=1e-6)
    # dropout is linear: mean 0.2, std sqrt(0.08/3) over models 0-2
    np.testing.assert_allclose(f[:, names.index("dropout")], (np.array([0, 0.2, 0.4, 0.6]) - 0.2) / np.sqrt(0.08 / 3),
                               rtol=1e-5, atol=1e-6)
    # constant columns are centred to 0
    np.testing.assert_array_equal(f[:, names.index("log10_init_std")], 0)


def test_split_disjoint_and_sized():
    acc = np.random.default_rng(1).uniform(size=600)
    s = split_models(acc, train_fraction=0.1, top_fraction=0.15, seed=3)
    tr, ev = s["all"]
    assert tr.size == 60 and ev.size == 540
    assert np.intersect1d(tr, ev).size == 0 and np.union1d(tr, ev).size == 600
    tr, ev = s["top"]
    top = np.argsort(-acc)[:90]
    assert tr.size == 9 and ev.size == 81
    assert np.intersect1d(tr, ev).size == 0
    np.testing.assert_array_equal(np.union1d(tr, ev), np.sort(top))
    # seeded: same seed same split, other seed other split
    assert np.array_equal(split_models(acc, seed=3)["all"][0], s["all"][0])
    assert not np.array_equal(split_models(acc, seed=4)["all"][0], s["all"][0])


def test_deterministic():
    zoo, images, pred = synthetic(n_models=20, n_images=20)
    kw = dict(FAST, epochs=3, train_fraction=0.3, top_fraction=0.5, seed=5)
    a = fit_meta_model(zoo, images, pred, MetaModelSettings(**kw))
    b = fit_meta_model(zoo, images, pred, MetaModelSettings(**kw))
    xr.testing.assert_identical(a, b)
    assert (a["split"].sel(subset="top") != "none").sum() == 10
    assert a["n_train_models"].values.tolist() == [6, 3] and a["n_eval_models"].values.tolist() == [14, 7]
    # agreement is NaN exactly where the model was not evaluated
    np.testing.assert_array_equal(np.isnan(a["agreement"].values), a["split"].values != "eval")


def test_learns_label_optimizer_rule():
    zoo, images, pred = synthetic()
    ds = fit_meta_model(zoo, images, pred, MetaModelSettings(train_fraction=0.3, top_fraction=0.6, seed=0, **FAST))
    assert ds["accuracy"].sel(subset="all") > 0.9
    assert ds["accuracy"].sel(subset="top") > 0.9
    # the optimizer matters: the per-image majority class cannot reach this
    assert ds["chance_accuracy"].sel(subset="all") < 0.6
    assert ds["loss"].sel(subset="all")[-1] < ds["loss"].sel(subset="all")[0]


def test_random_targets_are_at_chance():
    zoo, images, pred = synthetic(rule="random")
    ds = fit_meta_model(zoo, images, pred, MetaModelSettings(train_fraction=0.3, top_fraction=0.6, seed=0, **FAST))
    assert abs(float(ds["accuracy"].sel(subset="all")) - 0.1) < 0.05
    assert abs(float(ds["chance_accuracy"].sel(subset="all")) - 0.1) < 0.05


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"train_fraction": 0.0}, "meta_model.train_fraction"),
        ({"train_fraction": 1.0}, "meta_model.train_fraction"),
        ({"top_fraction": 0.0}, "meta_model.top_fraction"),
        ({"top_fraction": 1.5}, "meta_model.top_fraction"),
        ({"top_fraction": 0.05}, "raise meta_model.top_fraction"),  # 1 top model of 20
        ({"train_fraction": 0.99}, "lower meta_model.train_fraction"),
        ({"epochs": 0}, "meta_model.epochs"),
    ],
)
def test_bad_arguments(kw, message):
    zoo, images, pred = synthetic(n_models=20, n_images=10)
    with pytest.raises(ValueError, match=message):
        fit_meta_model(zoo, images, pred, MetaModelSettings(**{**FAST, "epochs": 1, **kw}))


def test_mismatched_models():
    zoo, images, pred = synthetic(n_models=20, n_images=10)
    with pytest.raises(ValueError, match="model coordinates of predictions.nc"):
        fit_meta_model(zoo.isel(model=slice(0, 19)), images, pred, MetaModelSettings(**FAST))
    with pytest.raises(ValueError, match="image coordinates"):
        fit_meta_model(zoo, images.isel(image=slice(0, 9)), pred, MetaModelSettings(**FAST))


def test_a_diverged_meta_model_is_refused():
    """A learning rate far too high: NaN weights, whose argmax 'predictions' would give a
    meaningless accuracy; refused naming meta_model.lr (issue 17)."""
    from causalxai.checks import DegenerateResultError

    zoo, images, pred = synthetic(n_models=20, n_images=10)
    with pytest.raises(DegenerateResultError, match=r"meta_model: the training loss of subset 'all' is not finite at "
                                                    r"the last epoch .*meta_model.lr: 1e\+3.*lower meta_model.lr"):
        fit_meta_model(zoo, images, pred, MetaModelSettings(**{**FAST, "epochs": 3, "lr": 1e37}))
