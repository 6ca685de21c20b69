"""Probe images: the inputs every model of the zoo is explained on (paper 000 §3.1).

Every model is explained on the same class-balanced probe images (paper 000 §3.1; its
public code, ``utils.py:extract_new_covariates_and_targets``, draws them class-balanced
from the data set's *train* split with ``USE_IDENTICAL_SAMPLES_OVER_BASE_MODELS``).
:func:`select_probe_images` draws them from the *test* split of a ``dataset.nc`` (seeded):
``n_images // n_classes`` per class, the remainder one each to the lowest class labels.

Why the test split, unlike the public code: in a zoo, ``train_fraction`` decides which
training images a model saw. A probe image from the train split was memorised by some
models (those whose subset held it; every model with ``train_fraction = 1``) and not by
others, so the treatment effect of ``train_fraction`` (and of everything that changes
memorisation: dropout, l2reg, the number of steps) on Y and E would mix "trained on this
very image" into the effect of the hyperparameter. Held-out images are unseen by every
model alike. Set aside by the Small CNN Zoo's own split, they also match its test accuracy,
by which the buckets are formed.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

__all__ = ["select_probe_images"]


def select_probe_images(dataset: xr.Dataset, n_images: int, seed: int) -> xr.Dataset:
    """Class-balanced, seeded probe images from the test split.

    Returns ``images.nc``: ``pixels(image, y, x)`` float32 (preprocessed as in
    ``dataset.nc``), ``label(image)``, and ``sample(image)``: the index of each image in
    ``dataset.nc``'s ``sample`` dimension.
    """
    if n_images < 1:
        raise ValueError(f"images.n_images must be at least 1, got {n_images}")
    test = np.flatnonzero(dataset["split"].values == "test")
    labels = dataset["label"].values[test]
    classes = np.unique(labels)
    k = classes.size
    per_class = np.full(k, n_images // k)
    per_class[: n_images % k] += 1
    rng = np.random.default_rng(seed)
    picked = []
    for c, n in zip(classes, per_class):
        pool = test[labels == c]
        if pool.size < n:
            raise ValueError(
                f"images.n_images={n_images} needs {n} test images of class {c} but the "
                f"{dataset.attrs.get('dataset', '')} test split has {pool.size}; lower images.n_images"
            )
        picked.append(np.sort(rng.choice(pool, size=n, replace=False)))
    idx = np.concatenate(picked)
    out = xr.Dataset(
        {
            "pixels": (("image", "y", "x"), dataset["image"].values[idx].astype(np.float32)),
            "label": ("image", dataset["label"].values[idx].astype(np.int64)),
            "sample": ("image", idx.astype(np.int64)),
        },
        coords={"image": np.arange(idx.size)},
    )
    out.attrs.update({"dataset": dataset.attrs.get("dataset", ""), "n_classes": int(k), "selection": "class-balanced from the test split"})
    return out
