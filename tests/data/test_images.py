"""Class-balanced probe images."""

import numpy as np
import pytest
import xarray as xr

from causalxai.data.images import class_balanced_indices, select_probe_images


def _dataset(n_per_class=12):
    labels = np.repeat(np.arange(10), n_per_class)
    n = labels.size
    split = np.where(np.arange(n) % 3 == 0, "train", "test")
    img = np.random.default_rng(0).normal(size=(n, 4, 4)).astype(np.float32)
    return xr.Dataset(
        {"image": (("sample", "y", "x"), img), "label": ("sample", labels)},
        coords={"split": ("sample", split)},
        attrs={"dataset": "toy"},
    )


def test_balanced_seeded_and_from_test_split():
    ds = _dataset()
    a = select_probe_images(ds, 25, seed=1)
    assert a.sizes["image"] == 25
    assert np.bincount(a["label"].values).tolist() == [3] * 5 + [2] * 5
    assert (ds["split"].values[a["sample"].values] == "test").all()
    np.testing.assert_array_equal(a["pixels"].values, ds["image"].values[a["sample"].values])
    b = select_probe_images(ds, 25, seed=1)
    c = select_probe_images(ds, 25, seed=2)
    np.testing.assert_array_equal(a["sample"].values, b["sample"].values)
    assert not np.array_equal(a["sample"].values, c["sample"].values)


def test_too_few_images_is_named():
    with pytest.raises(ValueError, match="images.n_images"):
        select_probe_images(_dataset(3), 50, seed=0)


def test_class_balanced_indices_interleaved():
    rng = np.random.default_rng(0)
    labels = rng.permutation(np.repeat(np.arange(10), 30))
    idx = class_balanced_indices(labels, 25, seed=1, key="tracer.n_samples")
    assert idx.size == 25 and np.unique(idx).size == 25
    counts = np.bincount(labels[idx], minlength=10)
    np.testing.assert_array_equal(counts, [3] * 5 + [2] * 5)  # 25 = 10·2 + 5, round-robin
    # interleaved: each prefix of 10 covers every class once
    assert sorted(labels[idx[:10]]) == list(range(10))
    np.testing.assert_array_equal(idx, class_balanced_indices(labels, 25, seed=1, key="tracer.n_samples"))
    assert not np.array_equal(idx, class_balanced_indices(labels, 25, seed=2, key="tracer.n_samples"))
    with pytest.raises(ValueError, match="tracer.n_samples"):
        class_balanced_indices(labels, 310, seed=0, key="tracer.n_samples")
    few = np.array([0] * 5 + [1] * 2)
    with pytest.raises(ValueError, match="tracer.n_samples"):
        class_balanced_indices(few, 6, seed=0, key="tracer.n_samples")
    with pytest.raises(ValueError, match="tracer.n_samples"):
        class_balanced_indices(labels, 0, seed=0, key="tracer.n_samples")
