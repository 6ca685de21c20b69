"""Bandwidth rules of the RBF kernel ``k(a, b) = exp(−γ ‖a − b‖²)`` (config ``effects.bandwidth``).

* ``fixed`` (default): ``γ = 1 / d``, ``d`` the output's dimension (10 for Y, H·W for a
  map), the same for every cell and image. This is scikit-learn's ``rbf_kernel`` default,
  which the paper's public code uses (google-research ``invariant_explanations/utils.py``,
  ``pairwise_kernels(X, Y, metric="rbf")`` with no ``gamma``).
* ``median_bucket``: the median heuristic, ``γ = 1 / (2 m)`` with ``m`` the median squared
  distance between distinct models of the bucket, over all its images, one value per
  output (Y, or one method's maps) and bucket, shared by all its cells and images. For a
  bucket of more than :data:`MEDIAN_MODELS` models the median is taken over a seeded
  subsample of that many.
* ``median_cell``: ``m`` per (hyperparameter, value, bucket, image), from the pooled treated
  and control models of the cell (the rule of earlier versions).

A median bandwidth puts a typical pair at ``k = e^{−1/2}``, so eq. (4) sits near
``2 − 2e^{−1/2} ≈ 0.79`` whatever the models do: it measures distances relative to their
own spread. The fixed rule keeps one scale for all cells, so effects are comparable
across buckets (paper 000 §3.2, Fig. 7: small for chance-level models, largest mid-range).
Medians of exactly-zero distances (identical outputs) fall back to ``m = 1``.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["BANDWIDTHS", "MEDIAN_MODELS", "fixed_gamma", "median_gamma"]

BANDWIDTHS = ("fixed", "median_bucket", "median_cell")

#: median_bucket: the most models of a bucket whose pairwise distances enter the median
MEDIAN_MODELS = 256


def fixed_gamma(dim: int) -> float:
    """``γ = 1 / d`` (scikit-learn's default, the public code's rule)."""
    if dim < 1:
        raise ValueError(f"an output needs at least one dimension, got {dim}")
    return 1.0 / dim


def median_gamma(sq_pairs: torch.Tensor, scale: torch.Tensor | None = None) -> torch.Tensor:
    """``γ = 1 / (2 m)``, ``m`` the median of squared distances over the last axis.

    Args:
        sq_pairs: squared distances of distinct pairs ``(..., n_pairs)``; NaN entries
            (pairs with a dropped map) are ignored. The median is NumPy's (mean of the two
            middle values).
        scale: optional typical squared norm ``(...)``: medians below ``1e-12 × scale``
            are rounding of identical outputs and count as 0.

    Returns:
        ``(...)`` float64; ``m = 1`` (``γ = 1/2``) where the median is 0 or undefined.
    """
    values = np.asarray(sq_pairs.detach().cpu().to(torch.float64))
    if values.shape[-1] == 0:
        med = np.full(values.shape[:-1], np.nan)
    elif np.isfinite(values).all():  # the two middle values by partition (the same values as sorting)
        mid = [(values.shape[-1] - 1) // 2, values.shape[-1] // 2]
        part = np.partition(values, mid, axis=-1)
        med = (part[..., mid[0]] + part[..., mid[1]]) / 2
    else:  # NumPy's median of the finite entries, vectorised: NaN sort last
        srt = np.sort(values, axis=-1)
        n = np.isfinite(srt).sum(-1)
        lo = np.take_along_axis(srt, np.maximum((n - 1) // 2, 0)[..., None], -1)[..., 0]
        hi = np.take_along_axis(srt, np.maximum(n // 2, 0)[..., None], -1)[..., 0]
        med = np.where(n > 0, (lo + hi) / 2, np.nan)
    m = torch.as_tensor(med, dtype=torch.float64)
    tiny = 0.0 if scale is None else 1e-12 * torch.as_tensor(scale, dtype=torch.float64)
    m = torch.where(torch.isfinite(m) & (m > tiny), m, torch.ones_like(m))
    return 1.0 / (2.0 * m)
