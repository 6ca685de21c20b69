"""Effects of every (value, bucket) cell for Y and E, and how they correlate (paper 000 §3.2).

:func:`cell_effects` evaluates eq. (4) (:func:`causalxai.effects.ite.ite`) for each
treatment group of :func:`causalxai.effects.groups.treatment_groups`, for all probe
images at once. :func:`bucket_correlations` summarises, per bucket, how the effects on
an explanation E follow those on the prediction Y: Pearson and Spearman correlation over
all (hyperparameter value, image) entries of the bucket (paper Fig. 3, right). The
reference method Identity (E := Y) gives 1 by construction.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from scipy import stats

from causalxai.effects.groups import TreatmentGroup
from causalxai.effects.ite import ite

__all__ = ["cell_effects", "bucket_correlations"]


def cell_effects(outputs: np.ndarray | torch.Tensor, groups: Sequence[TreatmentGroup], kernel: str = "rbf") -> np.ndarray:
    """ITE ``(n_groups, n_images)`` of every group on every image.

    Args:
        outputs: per model and image the output compared, ``(M, I, ...)``: Y (softmax
            vector) or E (a map; flattened here).
        groups: treatment groups (indices into the model axis).
        kernel: see :mod:`causalxai.effects.ite`.
    """
    o = torch.as_tensor(np.asarray(outputs)).to(torch.float64)
    o = o.reshape(o.shape[0], o.shape[1], -1).transpose(0, 1)  # (I, M, d)
    out = np.empty((len(groups), o.shape[0]))
    for k, g in enumerate(groups):
        out[k] = ite(o[:, torch.as_tensor(g.treated)], o[:, torch.as_tensor(g.control)], kernel).numpy()
    return out


def bucket_correlations(
    ite_y: np.ndarray, ite_e: np.ndarray, cell_bucket: np.ndarray, n_buckets: int
) -> np.ndarray:
    """Pearson and Spearman correlation ``(n_buckets, 2)`` of ITE_Y and ITE_E per bucket.

    ``ite_y``/``ite_e`` are ``(cells, images)`` with each cell's bucket in ``cell_bucket``.
    A bucket with fewer than 3 entries, or a constant ITE, gets NaN (undefined), never a
    made-up number.
    """
    out = np.full((n_buckets, 2), np.nan)
    for b in range(n_buckets):
        y = ite_y[cell_bucket == b].ravel()
        e = ite_e[cell_bucket == b].ravel()
        if y.size < 3 or np.ptp(y) == 0 or np.ptp(e) == 0:
            continue
        out[b, 0] = stats.pearsonr(y, e).statistic
        out[b, 1] = stats.spearmanr(y, e).statistic
    return out
