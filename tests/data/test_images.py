"""Class-balanced probe images."""

import numpy as np
import pytest
import xarray as xr

from causalxai.data.images import select_probe_images


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
