"""Treatment and control groups within accuracy buckets (paper 000 §3.2).

For a hyperparameter ``h_i`` and one of its values ``n``, within bucket ``b`` the treated
models have ``h_i = n`` and the controls ``h_i ≠ n`` (within-bucket control groups: "the
effect of h_i = n w.r.t. h_i ≠ n on x such that training on h_i ≠ n gives a similarly
performing model"). Continuous hyperparameters are first rounded to the paper's markers
(:data:`causalxai.zoo.hparams.MARKERS`): in log space for the hyperparameters of
``log_rounding`` (default :data:`LOG_ROUNDED`, the public code's
``utils.py:process_hparams``: l2reg, init_std and learning_rate), linearly for the others.
Each group is capped at ``cap`` models by a seeded subsample, drawn once per
(hyperparameter, value, bucket) and then used for Y and for every explanation method
alike, so their effects are computed on the same pairs.

The **placebo** (:func:`placebo_levels`) is a hyperparameter that does nothing: each
model draws one of its levels at random (seeded, independently of everything it was
trained with), so any effect it shows is what eq. (4) reports for no effect at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from causalxai.zoo.hparams import MARKERS, round_to_markers

__all__ = ["LOG_ROUNDED", "PLACEBO", "TreatmentGroup", "treatment_levels", "treatment_groups", "placebo_levels"]

#: the continuous hyperparameters the public code rounds to their markers in log space
LOG_ROUNDED = ("l2reg", "init_std", "learning_rate")
#: the name of the placebo hyperparameter
PLACEBO = "placebo"


@dataclass(frozen=True)
class TreatmentGroup:
    """Models of one (value, bucket) cell: ``treated`` have the value, ``control`` not."""

    value: int
    bucket: int
    treated: np.ndarray
    control: np.ndarray


def treatment_levels(
    name: str, values: np.ndarray, log_rounding: Sequence[str] = LOG_ROUNDED
) -> tuple[np.ndarray, list[str]]:
    """Level index of each model and the level labels (markers for continuous ones).

    Args:
        name: the hyperparameter.
        values: its value per model.
        log_rounding: the continuous hyperparameters rounded to the nearest marker in log
            space; the others are rounded linearly.
    """
    v = np.asarray(values)
    if name in MARKERS and v.dtype.kind in "fi":
        v = round_to_markers(v.astype(float), MARKERS[name], log=name in log_rounding)
        labels = [f"{x:g}" for x in MARKERS[name]]
        keys = np.asarray(MARKERS[name], dtype=float)
        return np.searchsorted(keys, v), labels
    labels = sorted(set(v.astype(str).tolist()))
    return np.searchsorted(np.asarray(labels), v.astype(str)), labels


def placebo_levels(n_models: int, n_levels: int, seed: int) -> tuple[np.ndarray, list[str]]:
    """A placebo hyperparameter: a uniformly random level per model, ``(n_models,)``, and labels."""
    if n_levels < 2:
        raise ValueError(f"effects.placebo_levels must be at least 2, got {n_levels}")
    rng = np.random.default_rng([int(seed), 0x91ACEB0])
    return rng.integers(0, n_levels, n_models), [f"p{k}" for k in range(n_levels)]


def treatment_groups(
    levels: np.ndarray,
    n_levels: int,
    buckets: np.ndarray,
    n_buckets: int,
    cap: int | None,
    seed: int | Sequence[int],
) -> list[TreatmentGroup]:
    """Every (value, bucket) cell with at least one treated and one control model.

    Args:
        levels: level index per model (:func:`treatment_levels`).
        buckets: bucket index per model.
        cap: at most this many treated and this many control models (seeded subsample);
            None: no cap.
        seed: seeds the subsamples; the same seed gives the same groups.
    """
    if cap is not None and cap < 1:
        raise ValueError(f"effects.max_models_per_group must be at least 1, got {cap}")
    rng = np.random.default_rng(seed)
    out = []
    for b in range(n_buckets):
        in_b = buckets == b
        for v in range(n_levels):
            t = np.flatnonzero(in_b & (levels == v))
            c = np.flatnonzero(in_b & (levels != v))
            if t.size and c.size:
                if cap is not None and t.size > cap:
                    t = np.sort(rng.choice(t, cap, replace=False))
                if cap is not None and c.size > cap:
                    c = np.sort(rng.choice(c, cap, replace=False))
                out.append(TreatmentGroup(v, b, t, c))
    return out
