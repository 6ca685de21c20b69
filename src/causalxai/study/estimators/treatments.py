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
from typing import Any, Mapping, Sequence

import numpy as np

from causalxai.zoo.hparams import (
    CONTINUOUS,
    HPARAMS,
    LOG_ROUNDED,
    MARKERS,
    ZOO_CHOICES,
    ZOO_RANGES,
    round_to_markers,
)

__all__ = ["LOG_ROUNDED", "PLACEBO", "TreatmentGroup", "treatment_levels", "treatment_groups", "placebo_levels",
           "figure_hparam_choices", "check_figure_hparam"]

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
    name: str, values: np.ndarray, log_rounding: Sequence[str] = LOG_ROUNDED,
    spec: Mapping[str, Any] | None = None,
) -> tuple[np.ndarray, list[str]]:
    """Level index of each model and the level labels (markers for continuous ones).

    Args:
        name: the hyperparameter.
        values: its value per model.
        log_rounding: the continuous hyperparameters rounded to the nearest marker in log
            space; the others are rounded linearly.
        spec: the hyperparameter as a zoo of any architecture declares it
            (:func:`causalxai.zoo.hparams.hparam_specs`: ``type``, ``markers``, ``log``);
            overrides ``log_rounding`` and the Small CNN Zoo's markers. A numerical one
            without markers has a level per distinct value (in numerical order).
    """
    v = np.asarray(values)
    markers, log = MARKERS.get(name), name in log_rounding
    if spec is not None:
        markers, log = spec.get("markers"), bool(spec.get("log", False))
        if spec.get("type") == "numerical" and markers is None:
            keys = np.unique(v.astype(float))
            return np.searchsorted(keys, v.astype(float)), [f"{x:g}" for x in keys]
        if spec.get("type") == "categorical":
            markers = None
    if markers is not None and v.dtype.kind in "fi":
        v = round_to_markers(v.astype(float), markers, log=log)
        labels = [f"{x:g}" for x in markers]
        keys = np.asarray(markers, dtype=float)
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


def _levels_possible(name: str, spec: Any, log_rounding: tuple[str, ...]) -> int:
    """How many levels (after rounding to markers) hyperparameter ``name`` can take under a
    zoo spec: a list of values, or a ``{low, high, scale}`` range (read as a dense grid)."""
    if isinstance(spec, Mapping):
        low, high = float(spec["low"]), float(spec["high"])
        if low >= high:
            values = np.asarray([low])
        elif spec.get("scale", "linear") == "log" and low > 0:
            values = np.geomspace(low, high, 1001)[1:-1]
        else:
            values = np.linspace(low, high, 1001)[1:-1]
    else:
        values = np.asarray(list(spec), dtype=float if name in CONTINUOUS else object)
    if name in MARKERS:
        values = round_to_markers(values.astype(float), MARKERS[name], log=name in log_rounding)
    return len(set(values.tolist()))


def figure_hparam_choices(config: Mapping[str, Any]) -> list[str]:
    """The hyperparameters ``effects.nc`` can hold for a config, so the effect figures can
    draw them (``effects.figures.hparam``): those that take at least two values (after the
    continuous ones are rounded to their markers, ``effects.log_rounding``) in the zoo the
    config makes or downloads, and the ``placebo``. A hyperparameter with one value has no
    control group and is left out of the effects (:mod:`causalxai.study.effects`).

    Args:
        config: the workflow's config (validated, defaults filled in).
    """
    zoo = config["zoo"]
    log_rounding = tuple(config.get("effects", {}).get("log_rounding", LOG_ROUNDED))
    source = zoo.get("source", "train")
    if source in ("checkpoints", "modelzoos"):  # the declared ones (their values are known once the zoo is read)
        return [*zoo[source]["hparams"], PLACEBO]
    if source == "train":
        spec = dict(zoo.get("train", {}).get("hparams", {}))
    else:  # the Small CNN Zoo: its own choices and ranges
        spec = {}
    out = [h for h in HPARAMS
           if _levels_possible(h, spec.get(h, ZOO_CHOICES.get(h, ZOO_RANGES.get(h))), log_rounding) > 1]
    return [*out, PLACEBO]


def check_figure_hparam(config: Mapping[str, Any], key: str = "effects.figures.hparam") -> None:
    """Refuse a figure's hyperparameter (``key``: ``effects.figures.hparam``, ``.kernel_comparison``
    or ``.kernel_example.hparam``) that the effects of this config cannot hold
    (:func:`figure_hparam_choices`), naming the key and the choices: before any job runs,
    not after the effects are estimated.

    Args:
        config: the workflow's config (validated, defaults filled in).
        key: the dotted config key of the figure's hyperparameter.

    Raises:
        ValueError: the hyperparameter is unknown or takes a single value in this zoo.
    """
    value: Any = config
    for part in key.split("."):
        value = value.get(part, {}) if isinstance(value, Mapping) else {}
    hparam = value if isinstance(value, str) else "optimizer"
    choices = figure_hparam_choices(config)
    if hparam not in choices:
        source = config["zoo"].get("source", "train")
        declared = config["zoo"][source]["hparams"] if source in ("checkpoints", "modelzoos") else HPARAMS
        why = ("takes a single value in this zoo (no control group, so no effect)" if hparam in declared
               else "is not a hyperparameter")
        raise ValueError(f"{key} {hparam!r} {why}: choose one of {', '.join(choices)}")
