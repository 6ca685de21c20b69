"""Resampling for the effects' uncertainty and null: the bootstrap over models, label permutations.

* **Bootstrap** (:func:`bootstrap_counts`): each replicate draws a bucket's ``n`` models
  ``n`` times with replacement (seeded per bucket); a model drawn ``w`` times gets weight
  ``w`` in every cell of that bucket, for Y and every E alike, so each replicate recomputes
  all ITEs and every correlation on one resample of the zoo. Intervals are percentile
  intervals (:func:`percentile_interval`, 95 % by default) over the replicates. The RBF
  bandwidth is held at its point-estimate value (the interval is conditional on it).
* **Permutations** (:func:`permutation_indicators`): under "h has no effect within the
  bucket" the labels treated/control are exchangeable among the cell's models, so each
  permutation draws which ``n_T`` of the cell's ``n_T + n_C`` models it treats.
  :func:`p_values` is the one-sided permutation p-value ``(1 + #{ITE_perm ≥ ITE}) / (1 +
  P)`` (Phipson & Smyth 2010: never 0), per image.
"""

from __future__ import annotations

import warnings

import numpy as np

__all__ = ["bootstrap_counts", "permutation_indicators", "percentile_interval", "p_values"]


def bootstrap_counts(n: int, replicates: int, seed) -> np.ndarray:
    """Columns ``(1 + replicates, n)``: row 0 all ones (the point estimate), then the
    multiplicity of each model in one bootstrap resample of the ``n`` models."""
    if replicates < 0:
        raise ValueError(f"effects.bootstrap must be >= 0, got {replicates}")
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(n, np.full(n, 1.0 / n), size=replicates) if replicates else np.zeros((0, n))
    return np.concatenate([np.ones((1, n)), counts]).astype(np.float64)


def permutation_indicators(n_treated: int, n: int, permutations: int, seed) -> np.ndarray:
    """``(permutations, n)`` 0/1: the models each permutation treats, ``n_treated`` per row."""
    if not 0 < n_treated < n:
        raise ValueError(f"a permutation needs treated and control models, got {n_treated} of {n}")
    rng = np.random.default_rng(seed)
    order = rng.permuted(np.tile(np.arange(n), (permutations, 1)), axis=1)
    z = np.zeros((permutations, n))
    np.put_along_axis(z, order[:, :n_treated], 1.0, axis=1)
    return z


def percentile_interval(replicates: np.ndarray, level: float = 0.95, axis: int = 0) -> np.ndarray:
    """Percentile bootstrap interval: ``(..., 2)`` (lower, upper) with ``axis`` reduced.

    NaN replicates (a resample that left a group empty) are ignored; NaN where none is finite.
    """
    if not 0 < level < 1:
        raise ValueError(f"effects.ci_level must lie in (0, 1), got {level}")
    a = np.moveaxis(np.asarray(replicates, dtype=np.float64), axis, -1)
    q = [100 * (1 - level) / 2, 100 * (1 + level) / 2]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        out = np.nanpercentile(a, q, axis=-1) if a.shape[-1] else np.full((2, *a.shape[:-1]), np.nan)
    return np.moveaxis(out, 0, -1)


def p_values(observed: np.ndarray, permuted: np.ndarray, axis: int = 0) -> np.ndarray:
    """One-sided permutation p-values ``(1 + #{perm ≥ obs}) / (1 + #finite perms)``.

    ``permuted`` has the permutations along ``axis``; NaN where ``observed`` is NaN or no
    permutation is finite. Ties within 1e-12 (relative) count as ≥.
    """
    obs = np.asarray(observed, dtype=np.float64)
    perm = np.moveaxis(np.asarray(permuted, dtype=np.float64), axis, 0)
    finite = np.isfinite(perm)
    tol = 1e-12 * np.maximum(1.0, np.abs(obs))
    with np.errstate(invalid="ignore"):
        hits = (finite & (perm >= obs - tol)).sum(0)
    n = finite.sum(0)
    out = (1.0 + hits) / (1.0 + n)
    return np.where(np.isfinite(obs) & (n > 0), out, np.nan)
