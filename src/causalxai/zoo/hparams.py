"""Hyperparameters of the Small CNN Zoo (Unterthiner et al. 2020, App. A.2).

The zoo draws each hyperparameter independently: categorical ones uniformly from a
set, continuous ones uniformly or log-uniformly from a range. Paper 000 (§3, App. A.3)
rounds the continuous ones to a few markers before estimating treatment effects; the
markers here are those of the paper's public code.
"""

from __future__ import annotations

import json
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

__all__ = [
    "CATEGORICAL",
    "CONTINUOUS",
    "HPARAMS",
    "ZOO_CHOICES",
    "ZOO_RANGES",
    "MARKERS",
    "sample_hparams",
    "round_to_markers",
    "LOG_ROUNDED",
    "HPARAM_TYPES",
    "hparam_specs",
    "check_hparam_specs",
]

CATEGORICAL = ("optimizer", "activation", "w_init", "b_init")
CONTINUOUS = ("init_std", "l2reg", "dropout", "learning_rate", "train_fraction")
HPARAMS = CATEGORICAL + CONTINUOUS

#: the values the Small CNN Zoo used for its categorical hyperparameters
ZOO_CHOICES: dict[str, list[str]] = {
    "optimizer": ["sgd", "adam", "rmsprop"],
    "activation": ["relu", "tanh"],
    "w_init": ["he_normal", "orthogonal", "glorot_normal", "RandomNormal", "TruncatedNormal"],
    "b_init": ["zeros"],
}

#: the ranges the Small CNN Zoo drew its continuous hyperparameters from
ZOO_RANGES: dict[str, dict[str, Any]] = {
    "init_std": {"low": 1e-3, "high": 0.5, "scale": "log"},
    "l2reg": {"low": 1e-8, "high": 1e-2, "scale": "log"},
    "dropout": {"low": 0.0, "high": 0.7, "scale": "linear"},
    "learning_rate": {"low": 5e-4, "high": 5e-2, "scale": "log"},
    "train_fraction": {"low": 0.1, "high": 1.0, "scale": "log"},
}

#: markers the continuous hyperparameters are rounded to for the effect estimates
#: (paper 000's code, ``ALL_HPARAM_RANGES``)
MARKERS: dict[str, list[float]] = {
    "l2reg": [1e-8, 1e-6, 1e-4, 1e-2],
    "dropout": [0.0, 0.2, 0.45, 0.7],
    "init_std": [1e-3, 1e-2, 1e-1, 0.5],
    "learning_rate": [5e-4, 5e-3, 5e-2],
    "train_fraction": [0.1, 0.25, 0.5, 1.0],
}


#: the continuous hyperparameters the public code rounds to their markers in log space
LOG_ROUNDED = ("l2reg", "init_std", "learning_rate")
#: the kinds of hyperparameter a zoo of any architecture declares
HPARAM_TYPES = ("categorical", "numerical")


def check_hparam_specs(specs: Mapping[str, Any], key: str) -> dict[str, dict[str, Any]]:
    """Validate declared hyperparameters ``{name: {type, markers, log}}`` (``zoo.<source>.hparams``)
    and return them normalised (``markers`` a sorted list or None, ``log`` a bool).

    Args:
        specs: per name ``type`` (``categorical`` or ``numerical``), for a numerical one
            optionally ``markers`` (the values are rounded to the nearest, paper 000 App. A.3;
            without markers each distinct value is a level) and ``log`` (round in log space).
        key: the config key, named in errors.

    Raises:
        ValueError: an unknown type, markers on a categorical one, non-positive markers with
            ``log``, or a name that is not a valid variable name.
    """
    if not specs:
        raise ValueError(f"{key}: declare at least one hyperparameter")
    out = {}
    for name, spec in specs.items():
        spec = dict(spec or {})
        kind = spec.get("type")
        if not str(name).isidentifier():
            raise ValueError(f"{key}.{name}: a hyperparameter's name must be a Python identifier (letters, digits, _)")
        if kind not in HPARAM_TYPES:
            raise ValueError(f"{key}.{name}.type must be one of {list(HPARAM_TYPES)}, got {kind!r}")
        markers = spec.get("markers")
        log = bool(spec.get("log", False))
        if kind == "categorical" and (markers is not None or log):
            raise ValueError(f"{key}.{name}: markers and log apply to numerical hyperparameters only")
        if markers is not None:
            markers = sorted(float(m) for m in markers)
            if len(markers) < 2 or len(set(markers)) != len(markers):
                raise ValueError(f"{key}.{name}.markers: give at least two distinct values, got {markers}")
            if log and markers[0] <= 0:
                raise ValueError(f"{key}.{name}: log rounding needs markers > 0, got {markers}")
        out[str(name)] = {"type": kind, "markers": markers, "log": log}
        if "key" in spec:
            out[str(name)]["key"] = str(spec["key"])
    return out


def hparam_specs(zoo_attrs: Mapping[str, Any], log_rounding: Sequence[str] = LOG_ROUNDED) -> dict[str, dict[str, Any]]:
    """The hyperparameters of a zoo, ``{name: {type, markers, log}}``: a zoo of any architecture
    records them in its attribute ``hparams`` (JSON, :func:`check_hparam_specs`); a Small CNN Zoo
    (no such attribute) has :data:`HPARAMS`, its continuous ones with :data:`MARKERS` and rounded
    in log space where named in ``log_rounding`` (``effects.log_rounding``).

    Args:
        zoo_attrs: the attributes of ``zoo.nc`` (``zoo.attrs``).
        log_rounding: the Small CNN Zoo's hyperparameters rounded in log space.
    """
    if "hparams" in zoo_attrs:
        return json.loads(zoo_attrs["hparams"])
    out: dict[str, dict[str, Any]] = {n: {"type": "categorical", "markers": None, "log": False} for n in CATEGORICAL}
    for n in CONTINUOUS:
        out[n] = {"type": "numerical", "markers": MARKERS[n], "log": n in log_rounding}
    return out


def sample_hparams(n_models: int, spec: Mapping[str, Any], seed: int) -> pd.DataFrame:
    """Draw ``n_models`` hyperparameter settings independently, as the zoo did.

    Args:
        n_models: number of settings to draw.
        spec: for each name in :data:`HPARAMS`, either a list of values (drawn uniformly)
            or a mapping ``{low, high, scale}`` with ``scale`` ``log`` or ``linear``.
            Names missing from ``spec`` use the zoo's own choices and ranges.
        seed: seed of the NumPy generator; the same seed gives the same table.

    Returns:
        One row per model, one column per hyperparameter, in :data:`HPARAMS` order.
    """
    if n_models < 1:
        raise ValueError(f"zoo.n_models must be at least 1, got {n_models}")
    rng = np.random.default_rng(seed)
    cols: dict[str, np.ndarray] = {}
    for name in HPARAMS:
        s = spec.get(name, ZOO_CHOICES.get(name, ZOO_RANGES.get(name)))
        if isinstance(s, Mapping):
            low, high, scale = float(s["low"]), float(s["high"]), s.get("scale", "linear")
            if not low <= high:
                raise ValueError(f"zoo.train.hparams.{name}: low ({low}) must not exceed high ({high})")
            if scale == "log":
                if low <= 0:
                    raise ValueError(f"zoo.train.hparams.{name}: a log scale needs low > 0, got {low}")
                cols[name] = np.exp(rng.uniform(np.log(low), np.log(high), n_models))
            else:
                cols[name] = rng.uniform(low, high, n_models)
        else:
            values = list(s)
            if not values:
                raise ValueError(f"zoo.train.hparams.{name}: give at least one value")
            picked = rng.integers(0, len(values), n_models)
            arr = np.asarray(values, dtype=object)[picked]
            cols[name] = arr.astype(float) if name in CONTINUOUS else arr.astype(str)
    return pd.DataFrame(cols)


def round_to_markers(values: np.ndarray, markers: list[float], log: bool = True) -> np.ndarray:
    """Round each value to its nearest marker: in log space when ``log`` and all markers and
    values are > 0, linearly otherwise."""
    v = np.asarray(values, dtype=float)
    m = np.asarray(markers, dtype=float)
    if log and np.all(m > 0) and np.all(v > 0):
        d = np.abs(np.log(v)[:, None] - np.log(m)[None, :])
    else:
        d = np.abs(v[:, None] - m[None, :])
    return m[np.argmin(d, axis=1)]
