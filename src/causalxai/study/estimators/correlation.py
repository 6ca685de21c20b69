"""How ITE_E follows ITE_Y: Pearson and Spearman correlation over masked entries (paper 000 Fig. 3-4).

:func:`correlations` correlates two arrays along their last axis for every leading index at
once (every bootstrap replicate, every group of cells), using only the entries where both
are finite. Spearman's ρ is Pearson's r of the average ranks (ties share their mean rank,
as :func:`scipy.stats.spearmanr`; values equal to 10 significant digits tie). Fewer than 3 entries,
or a constant side, give NaN: the correlation is undefined, never a made-up number.

Two aggregations of a bucket's correlation (both stored in ``effects.nc``):

* ``pooled`` (``corr``): one correlation over every (hyperparameter, value, image) entry of
  the bucket;
* ``hparam_mean`` (``corr_mean``): the correlation of each hyperparameter's (value, image)
  entries (``corr_hparam``), then their mean over hyperparameters, with the band
  ``std / √n`` over the ``n`` hyperparameters. This is the paper's figures' aggregation
  (public code ``plotting.py:plot_y_vs_e_ite_corr_bands``: ``nanmean`` of the
  per-hyperparameter correlations; its band divides the std by √(number of buckets), here
  by √(number of hyperparameters), the standard error of that mean).
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import stats

__all__ = ["AGGREGATIONS", "correlations", "hparam_mean"]

AGGREGATIONS = ("hparam_mean", "pooled")


def _pearson(x: np.ndarray, y: np.ndarray, ok: np.ndarray) -> np.ndarray:
    n = ok.sum(-1)
    xz, yz = np.where(ok, x, 0.0), np.where(ok, y, 0.0)
    with np.errstate(all="ignore"):
        mx = xz.sum(-1, keepdims=True) / n[..., None]
        my = yz.sum(-1, keepdims=True) / n[..., None]
        dx, dy = np.where(ok, x - mx, 0.0), np.where(ok, y - my, 0.0)
        r = (dx * dy).sum(-1) / np.sqrt((dx * dx).sum(-1) * (dy * dy).sum(-1))
    spread_x = np.where(ok, x, -np.inf).max(-1) - np.where(ok, x, np.inf).min(-1)
    spread_y = np.where(ok, y, -np.inf).max(-1) - np.where(ok, y, np.inf).min(-1)
    bad = (n < 3) | ~(spread_x > 0) | ~(spread_y > 0)
    return np.where(bad, np.nan, np.clip(r, -1.0, 1.0))


def _snap(x: np.ndarray, ok: np.ndarray, digits: int = 10) -> np.ndarray:
    """``x`` rounded to ``digits`` significant digits of its row's largest magnitude."""
    with np.errstate(all="ignore"):
        top = np.where(ok, np.abs(x), 0).max(-1, keepdims=True)
        unit = np.where(top > 0, 10.0 ** (np.floor(np.log10(np.where(top > 0, top, 1))) - digits), 1.0)
        return np.round(x / unit) * unit


def correlations(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson and Spearman correlation of ``x`` and ``y`` along the last axis: ``(..., 2)``.

    Args:
        x, y: arrays of the same shape; NaN entries (on either side) are left out.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"correlations needs equal shapes, got {x.shape} and {y.shape}")
    ok = np.isfinite(x) & np.isfinite(y)
    pearson = _pearson(x, y, ok)
    # ranks of the jointly finite entries: the others are +inf, ranked after all of them.
    # Values equal to 10 significant digits tie: a binary hyperparameter's two cells have the
    # same ITE up to rounding, which must not decide their order.
    rx = stats.rankdata(np.where(ok, _snap(x, ok), np.inf), axis=-1)
    ry = stats.rankdata(np.where(ok, _snap(y, ok), np.inf), axis=-1)
    spearman = _pearson(rx, ry, ok)
    return np.stack([pearson, spearman], axis=-1)


def hparam_mean(corr_hparam: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean over hyperparameters (NaN ones left out) and its band ``std / √n``.

    Returns:
        ``(mean, band)`` with ``axis`` removed; NaN where no hyperparameter has a
        correlation (the band also where only one has).
    """
    c = np.asarray(corr_hparam, dtype=np.float64)
    n = np.isfinite(c).sum(axis)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(c, axis=axis)
        band = np.nanstd(c, axis=axis) / np.sqrt(n)
    return np.where(n > 0, mean, np.nan), np.where(n > 1, band, np.nan)
