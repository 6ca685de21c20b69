"""Treatment and control groups within accuracy buckets (paper 000 §3.2).

For a hyperparameter ``h_i`` and one of its values ``n``, within bucket ``b`` the treated
models have ``h_i = n`` and the controls ``h_i ≠ n`` (within-bucket control groups: "the
effect of h_i = n w.r.t. h_i ≠ n on x such that training on h_i ≠ n gives a similarly
performing model"). Continuous hyperparameters are first rounded to the paper's markers
(:data:`causalxai.zoo.hparams.MARKERS`). Each group is capped at ``cap`` models by a
seeded subsample, drawn once per (hyperparameter, value, bucket) and then used for Y and
for every explanation method alike, so their effects are computed on the same pairs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from causalxai.zoo.hparams import MARKERS, round_to_markers

__all__ = ["TreatmentGroup", "treatment_levels", "treatment_groups"]


@dataclass(frozen=True)
class TreatmentGroup:
    """Models of one (value, bucket) cell: ``treated`` have the value, ``control`` not."""

    value: int
    bucket: int
    treated: np.ndarray
    control: np.ndarray


def treatment_levels(name: str, values: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Level index of each model and the level labels (markers for continuous ones)."""
    v = np.asarray(values)
    if name in MARKERS and v.dtype.kind in "fi":
        v = round_to_markers(v.astype(float), MARKERS[name])
        labels = [f"{x:g}" for x in MARKERS[name]]
        keys = np.asarray(MARKERS[name], dtype=float)
        return np.searchsorted(keys, v), labels
    labels = sorted(set(v.astype(str).tolist()))
    return np.searchsorted(np.asarray(labels), v.astype(str)), labels


def treatment_groups(
    levels: np.ndarray, n_levels: int, buckets: np.ndarray, n_buckets: int, cap: int, seed: int
) -> list[TreatmentGroup]:
    """Every (value, bucket) cell with at least one treated and one control model.

    Args:
        levels: level index per model (:func:`treatment_levels`).
        buckets: bucket index per model.
        cap: at most this many treated and this many control models (seeded subsample).
        seed: seeds the subsamples; the same seed gives the same groups.
    """
    if cap < 1:
        raise ValueError(f"effects.max_models_per_group must be at least 1, got {cap}")
    rng = np.random.default_rng(seed)
    out = []
    for b in range(n_buckets):
        in_b = buckets == b
        for v in range(n_levels):
            t = np.flatnonzero(in_b & (levels == v))
            c = np.flatnonzero(in_b & (levels != v))
            if t.size and c.size:
                if t.size > cap:
                    t = np.sort(rng.choice(t, cap, replace=False))
                if c.size > cap:
                    c = np.sort(rng.choice(c, cap, replace=False))
                out.append(TreatmentGroup(v, b, t, c))
    return out
