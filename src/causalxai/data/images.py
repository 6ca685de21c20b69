"""Probe images: the inputs every model of the zoo is explained on (paper 000 §3.1).

Every model is explained on the same class-balanced probe images (paper 000 §3.1; its
public code, ``utils.py:extract_new_covariates_and_targets``, draws them class-balanced
from the data set's *train* split with ``USE_IDENTICAL_SAMPLES_OVER_BASE_MODELS``).
:func:`select_probe_images` draws them from the *test* split of a ``dataset.nc`` (seeded):
``n_images // n_classes`` per class, the remainder one each to the lowest class labels, with
:func:`class_balanced_indices`, the one class-balanced seeded draw (TRACER's samples too).

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

from collections.abc import Sequence

import numpy as np
import xarray as xr

from causalxai.data.dataset import grayscale

__all__ = ["class_balanced_indices", "select_probe_images"]


def class_balanced_indices(
    labels: Sequence[int] | np.ndarray, n: int, seed: int, *, interleave: bool = True, key: str = "n"
) -> np.ndarray:
    """``n`` indices into ``labels`` drawn evenly over the classes present (seeded).

    Each of the K classes (``np.unique(labels)``, e.g. 10 digits) gets ``n // K`` samples;
    the ``n % K`` remaining go one each to the first classes in sorted order. Within a class
    the samples are drawn uniformly without replacement by ``numpy.random.default_rng(seed)``,
    one ``choice`` per class in sorted class order (the same draws for both orders below).

    Args:
        labels: the class of every candidate ``(N,)``.
        n: how many to draw (>= 1).
        seed: the generator's seed.
        interleave: ``True``: round-robin, one sample of each class in turn (class 0, 1, …,
            K−1, class 0, …), each class in draw order, so every prefix is as balanced as
            possible (TRACER's samples, paper 004 App. E); ``False``: class by class, each
            class's indices sorted (the zoo's probe images, paper 000 §3.1).
        key: the config key of ``n``, named in the errors.

    Returns:
        int64 ``(n,)`` indices. Raises if a class has fewer samples than it needs.
    """
    lab = np.asarray(labels).reshape(-1)
    n = int(n)
    if n < 1:
        raise ValueError(f"{key} must be >= 1, got {n}")
    if lab.size == 0:
        raise ValueError(f"{key}: no labels to draw from")
    classes = np.unique(lab)
    k = len(classes)
    need = np.full(k, n // k, dtype=np.int64)
    need[: n % k] += 1
    rng = np.random.default_rng(int(seed))
    picked: list[np.ndarray] = []
    for c, m in zip(classes, need):
        pool = np.flatnonzero(lab == c)
        if pool.size < m:
            raise ValueError(
                f"{key}={n} needs {int(m)} samples of class {c!r} ({k} classes) but there are {pool.size}; "
                f"lower {key} to at most {int(min(np.sum(lab == cc) for cc in classes)) * k}"
            )
        picked.append(rng.choice(pool, size=int(m), replace=False))
    if not interleave:
        return np.concatenate([np.sort(p) for p in picked]).astype(np.int64)
    out = [int(p[r]) for r in range(int(need.max())) for p in picked if r < p.size]
    return np.asarray(out, dtype=np.int64)


def select_probe_images(dataset: xr.Dataset, n_images: int, seed: int) -> xr.Dataset:
    """Class-balanced, seeded probe images from the test split.

    Returns ``images.nc``: ``pixels(image, y, x)`` float32 (preprocessed as in
    ``dataset.nc``), ``label(image)``, and ``sample(image)``: the index of each image in
    ``dataset.nc``'s ``sample`` dimension.
    """
    test = np.flatnonzero(dataset["split"].values == "test")
    labels = dataset["label"].values[test]
    idx = test[class_balanced_indices(labels, n_images, seed, interleave=False, key="images.n_images")]
    k = np.unique(labels).size
    out = xr.Dataset(
        {
            "pixels": (("image", "y", "x"), grayscale(dataset)[idx]),  # channels averaged (the zoo's input)
            "label": ("image", dataset["label"].values[idx].astype(np.int64)),
            "sample": ("image", idx.astype(np.int64)),
        },
        coords={"image": np.arange(idx.size)},
    )
    out.attrs.update({"dataset": dataset.attrs.get("dataset", ""), "n_classes": int(k),
                      "selection": "class-balanced from the test split"})
    return out
