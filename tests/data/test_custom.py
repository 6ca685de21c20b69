"""User data sets (data.custom: loader or .npz) and the tabular breast_cancer: validation with clear
errors, and the preprocessing against independent references (scikit-learn's MinMaxScaler, the
Small CNN Zoo's zoo_preprocess)."""

from __future__ import annotations

import sys
import textwrap

import numpy as np
import pytest
import torch

from causalxai.data.custom import (
    CustomDataError,
    apply_minmax,
    fit_minmax,
    load_arrays,
    load_breast_cancer,
    load_custom,
    loader_source,
    validate_arrays,
)
from causalxai.data.dataset import grayscale, model_inputs, to_raw, zoo_preprocess
from causalxai.tracer.interventions import patch_masks, window_masks
from causalxai.tracer.mlp import mlp, mlp_layers
from causalxai.tracer.target_model import dataset_tensors


def _arrays(shape=(8, 8), n_train=12, n_test=6, k=3, seed=0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "x_train": rng.integers(0, 256, size=(n_train, *shape)).astype(np.uint8),
        "y_train": np.arange(n_train) % k,
        "x_test": rng.integers(0, 256, size=(n_test, *shape)).astype(np.uint8),
        "y_test": np.arange(n_test) % k,
    }


@pytest.fixture
def loaders(tmp_path, monkeypatch):
    """A module ``userdata`` on sys.path with loaders good and bad."""
    (tmp_path / "userdata.py").write_text(textwrap.dedent("""
        import numpy as np

        def good():
            rng = np.random.default_rng(0)
            x = rng.integers(0, 256, size=(12, 3, 8, 8)).astype(np.uint8)
            return x, np.arange(12) % 3, x[:6], np.arange(6) % 3

        def as_dict():
            x, y, xt, yt = good()
            return {"x_train": x, "y_train": y, "x_test": xt, "y_test": yt}

        def flat_labels_missing():
            x, y, xt, yt = good()
            return {"x_train": x, "y_train": y, "x_test": xt}

        def one_dim():
            return np.zeros(12), np.arange(12) % 3, np.zeros(6), np.arange(6) % 3
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("userdata", None)


def test_a_loader_may_return_a_tuple_or_a_dict(loaders):
    a = load_arrays("mine", {"loader": "userdata:good"})
    b = load_arrays("mine", {"loader": "userdata:as_dict"})
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert validate_arrays("mine", a) == ("image", 3)
    assert loader_source("userdata:good") == str(loaders / "userdata.py")  # the dataset rule's input


@pytest.mark.parametrize(
    "loader, needle",
    [
        ("no_such_pkg.data:load", r"data\.custom\.mine: loader 'no_such_pkg\.data:load': cannot import "
                                  r"'no_such_pkg\.data'.*PYTHONPATH"),
        ("userdata:nothing", r"module 'userdata' has no function 'nothing'"),
        ("userdata", r"is not 'package\.module:function'"),
        ("userdata:flat_labels_missing", r"returned a mapping without \['y_test'\]"),
    ],
)
def test_a_bad_loader_is_named_with_the_fix(loaders, loader, needle):
    with pytest.raises(CustomDataError, match=needle):
        load_arrays("mine", {"loader": loader})


def test_a_loader_returning_the_wrong_shapes_is_refused(loaders):
    arrays = load_arrays("mine", {"loader": "userdata:one_dim"})
    with pytest.raises(CustomDataError, match=r"data\.custom\.mine: x_train has shape \(12,\); give images "
                                              r"\(N, H, W\) or \(N, C, H, W\), or tabular rows \(N, F\)"):
        validate_arrays("mine", arrays)


def test_an_npz_without_a_key_names_the_file_and_the_key(tmp_path):
    a = _arrays()
    del a["y_test"]
    np.savez(tmp_path / "d.npz", **a)
    with pytest.raises(CustomDataError, match=r"d\.npz lacks the arrays \['y_test'\].*np\.savez"):
        load_arrays("mine", {"path": str(tmp_path / "d.npz")})
    with pytest.raises(CustomDataError, match=r"path '.*nowhere\.npz' does not exist"):
        load_arrays("mine", {"path": str(tmp_path / "nowhere.npz")})
    with pytest.raises(CustomDataError, match="exactly one of loader and path"):
        load_arrays("mine", {"path": "a.npz", "loader": "m:f"})


@pytest.mark.parametrize(
    "edit, needle",
    [
        (lambda a: a["x_train"].__setitem__((2, 3, 4), np.nan) or a,  # float data with a NaN
         r"x_train holds 1 NaN or infinite values \(the first at \(2, 3, 4\)\); impute or drop"),
        (lambda a: {**a, "y_test": np.array([0, 1, 2, 3, 0, 1])},
         r"labels \[0, 1, 2, 3\] lie outside 0\.\.2 \(the declared n_classes 3\)"),
        (lambda a: {**a, "y_train": a["y_train"] + 0.5}, "not whole numbers"),
        (lambda a: {**a, "y_train": a["y_train"][:5]}, r"y_train has shape \(5,\) for x_train of 12 samples"),
        (lambda a: {**a, "x_test": a["x_test"][:, :4]}, r"x_test has shape \(6, 4, 8\) but x_train \(12, 8, 8\)"),
        (lambda a: {**a, "x_train": a["x_train"].astype(bool)}, "x_train has dtype bool"),
        (lambda a: {**a, "x_train": np.zeros((12, 8, 8, 3)), "x_test": np.zeros((6, 8, 8, 3))},
         r"looks channel-last.*transpose\(0, 3, 1, 2\)"),
        (lambda a: {**a, "y_train": a["y_train"] * 0, "y_test": a["y_test"] * 0}, None),
    ],
)
def test_arrays_breaking_the_contract_are_refused(edit, needle):
    a = _arrays()
    a["x_train"] = a["x_train"].astype(np.float64)
    a = edit(a)
    if needle is None:  # one class only, n_classes not declared
        with pytest.raises(CustomDataError, match="1 class; a classifier needs labels of at least two"):
            validate_arrays("mine", a)
        return
    with pytest.raises(CustomDataError, match=r"^data\.custom\.mine: .*" + needle):
        validate_arrays("mine", a, n_classes=3)


def test_images_outside_the_declared_range_are_refused(tmp_path):
    a = _arrays()
    np.savez(tmp_path / "d.npz", **a)
    with pytest.raises(CustomDataError, match=r"x_train has values in \[.*\], outside range \[0, 100\]"):
        load_custom("mine", {"path": str(tmp_path / "d.npz"), "range": [0, 100]})


def test_one_channel_images_match_the_zoo_preprocessing(tmp_path):
    a = _arrays()
    np.savez(tmp_path / "d.npz", **a)
    ds = load_custom("mine", {"path": str(tmp_path / "d.npz")})
    assert ds["image"].dims == ("sample", "y", "x") and ds.attrs["kind"] == "image" and ds.attrs["n_classes"] == 3
    ref = zoo_preprocess(np.concatenate([a["x_train"], a["x_test"]]))[:, 0]
    np.testing.assert_allclose(ds["image"].values, ref, atol=1e-6)
    assert list(ds["split"].values) == ["train"] * 12 + ["test"] * 6


def test_colour_images_keep_their_channels_and_the_zoo_averages_them(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.uniform(-2.0, 6.0, size=(10, 3, 5, 7))  # any declared range, non-square images
    a = {"x_train": x[:6], "y_train": np.arange(6) % 2, "x_test": x[6:], "y_test": np.arange(4) % 2}
    np.savez(tmp_path / "d.npz", **a)
    ds = load_custom("rgb", {"path": str(tmp_path / "d.npz"), "range": [-2.0, 6.0]})
    assert ds["image"].dims == ("sample", "channel", "y", "x")
    assert (ds.attrs["channels"], ds.attrs["height"], ds.attrs["width"]) == (3, 5, 7)
    np.testing.assert_allclose(to_raw(ds["image"].values), (x + 2.0) / 8.0, atol=1e-6)  # raw 0 = the range's low
    x_t, _ = dataset_tensors(ds, "train")
    assert tuple(x_t.shape) == (6, 3, 5, 7)
    # the zoo's grayscale: the Small CNN Zoo's pipeline (normalise, then average the channels), computed from
    # 0..255 pixels of the same values
    pixels = (x + 2.0) / 8.0 * 255.0
    np.testing.assert_allclose(grayscale(ds), zoo_preprocess(pixels.transpose(0, 2, 3, 1))[:, 0], atol=1e-5)


def test_tabular_min_max_scaling_matches_sklearn(tmp_path):
    from sklearn.preprocessing import MinMaxScaler

    rng = np.random.default_rng(2)
    x = rng.normal(size=(40, 6)) * [1, 10, 100, 0.1, 1, 1]
    x[:, 4] = 3.0  # a constant feature: raw 0 (sklearn: the range's low end too)
    a = {"x_train": x[:30], "y_train": np.arange(30) % 2, "x_test": x[30:], "y_test": np.arange(10) % 2}
    np.savez(tmp_path / "t.npz", **a)
    ds = load_custom("tab", {"path": str(tmp_path / "t.npz")})
    assert ds.attrs["kind"] == "tabular" and ds["image"].shape == (40, 1, 6)
    scaler = MinMaxScaler(feature_range=(-1, 1)).fit(x[:30])
    np.testing.assert_allclose(ds["image"].values[:, 0], scaler.transform(x), atol=1e-6)  # test rows not clipped
    lo, hi = fit_minmax(x[:30])
    np.testing.assert_allclose(apply_minmax(x[30:], lo, hi), scaler.transform(x[30:]), atol=1e-6)
    assert tuple(model_inputs(ds).shape) == (40, 1, 1, 6)


def test_breast_cancer_is_sklearns_data_split_and_scaled():
    from sklearn.datasets import load_breast_cancer as sk
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import MinMaxScaler

    ds = load_breast_cancer(test_fraction=0.2, seed=3)
    data = sk()
    itr, ite = train_test_split(np.arange(569), test_size=0.2, random_state=3, stratify=data.target)
    itr, ite = np.sort(itr), np.sort(ite)
    scaler = MinMaxScaler(feature_range=(-1, 1)).fit(data.data[itr])
    np.testing.assert_allclose(ds["image"].values[:, 0], scaler.transform(data.data[np.r_[itr, ite]]), atol=1e-5)
    np.testing.assert_array_equal(ds["label"].values, data.target[np.r_[itr, ite]])
    np.testing.assert_array_equal(ds["source_index"].values, np.r_[itr, ite])
    assert ds.attrs["n_classes"] == 2 and ds.attrs["kind"] == "tabular"
    assert '"mean radius"' in ds.attrs["feature_names"]


def test_one_row_patches_are_the_tabular_windows():
    for d, k, s in [(30, 3, 1), (30, 4, 3), (7, 7, 1), (10, 3, 5)]:
        assert torch.equal(patch_masks(1, d, (1, k), (1, s)), window_masks(d, k, s)[:, None, :])


def test_the_mlp_has_the_hand_counted_parameters_and_observed_layers():
    model = mlp(n_classes=2, n_inputs=30)
    assert sum(p.numel() for p in model.parameters()) == 30 * 64 + 64 + 64 * 32 + 32 + 32 * 16 + 16 + 16 * 2 + 2
    assert mlp_layers() == ["fc1", "relu1", "fc2", "relu2", "fc3", "relu3", "fc4"]
    assert tuple(model(torch.zeros(5, 1, 1, 30)).shape) == (5, 2)
    with pytest.raises(ValueError, match="n_classes >= 2"):
        mlp(n_classes=1)
