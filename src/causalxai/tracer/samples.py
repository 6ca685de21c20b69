"""The test samples TRACER explains (rule ``tracer_samples``, paper 004 App. E, §4.1).

Two class-balanced seeded draws from the dataset's *test* split, made once and written to
``samples.nc`` so that every step reads the same indices:

* ``interventions``: ``tracer.n_samples`` samples for the interventions step (and so the
  causal nodes, ACE and the mechanisms; App. E: "random sampling within all classes"),
  drawn with ``seed``;
* ``reliability``: ``tracer.reliability.n_samples`` samples for the reliability comparison
  (§4.1), drawn with ``seed + 1`` (an independent draw); ``all``: the whole test split, in its
  order (the paper scores all MNIST test samples).

Both are :func:`causalxai.data.images.class_balanced_indices` in its interleaved order
(round-robin over the classes, so every prefix is balanced).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from causalxai.data.images import class_balanced_indices

__all__ = ["STEPS", "tracer_samples"]

#: the steps with a draw of their own: (name, config key of its size, offset of its seed)
STEPS = (("interventions", "tracer.n_samples", 0), ("reliability", "tracer.reliability.n_samples", 1))


ALL = "all"


def tracer_samples(labels: Any, n_interventions: int | str, n_reliability: int | str, seed: int) -> xr.Dataset:
    """``samples.nc``: the test samples of the interventions and of the reliability step.

    Args:
        labels: the labels ``(N,)`` of the test split (in its order).
        n_interventions: ``tracer.n_samples`` (or ``"all"``: the whole test split, in order).
        n_reliability: ``tracer.reliability.n_samples`` (or ``"all"``).
        seed: the config's ``seed`` (the reliability draw uses ``seed + 1``).

    Returns:
        Dataset with ``interventions (interventions_sample)`` and ``reliability
        (reliability_sample)``: int64 indices into the test split, and their labels
        ``interventions_label`` and ``reliability_label``; attrs ``seed_<step>`` and
        ``n_samples_<step>`` (the size as configured: a number or ``"all"``).
    """
    y = np.asarray(labels).reshape(-1)
    sizes = {"interventions": n_interventions, "reliability": n_reliability}
    data: dict[str, Any] = {}
    attrs: dict[str, Any] = {
        "description": "class-balanced seeded draws of test samples (round-robin over the classes) for TRACER's "
        "interventions (paper 004 App. E) and reliability (§4.1) steps",
        "split": "test",
    }
    for step, key, offset in STEPS:
        if sizes[step] == ALL:
            idx = np.arange(y.size, dtype=np.int64)
        elif isinstance(sizes[step], str):
            raise ValueError(f"{key} must be a positive integer or 'all', got {sizes[step]!r}")
        else:
            idx = class_balanced_indices(y, sizes[step], int(seed) + offset, key=key)
        data[step] = (f"{step}_sample", idx)
        data[f"{step}_label"] = (f"{step}_sample", y[idx].astype(np.int64))
        attrs[f"seed_{step}"] = int(seed) + offset
        attrs[f"n_samples_{step}"] = sizes[step] if sizes[step] == ALL else int(sizes[step])
    ds = xr.Dataset(data, attrs=attrs)
    for step, _, _ in STEPS:
        ds[step].attrs["description"] = f"index among the dataset's test split of each sample of the {step} step"
    return ds
