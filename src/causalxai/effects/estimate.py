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

__all__ = ["cell_effects", "BucketGrams", "bucket_cell_effects", "bucket_correlations"]


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


def _kernel_from_gram(g: torch.Tensor, na: torch.Tensor, nb: torch.Tensor, kernel: str, d: int, s2=None) -> torch.Tensor:
    """Kernel block from the linear Gram block ``g (I, n, m)`` and squared norms."""
    if kernel == "linear":
        return g
    if kernel == "poly":
        return (g / d + 1) ** 3
    if kernel == "cosine":
        ra, rb = na.sqrt(), nb.sqrt()
        den = ra[..., :, None] * rb[..., None, :]
        return torch.where(den > 0, g / torch.where(den > 0, den, torch.ones_like(den)), torch.zeros_like(g))
    sq = (na[..., :, None] + nb[..., None, :] - 2 * g).clamp_min(0)
    return torch.exp(-sq / (2 * s2[..., None, None]))


def _self_from_sq(sq: torch.Tensor, kernel: str, d: int) -> torch.Tensor:
    """Mean of ``k(a, a)`` over a group, from its squared norms ``(I, n)``."""
    if kernel == "rbf":
        return torch.ones(sq.shape[:-1], dtype=sq.dtype)
    if kernel == "linear":
        return sq.mean(-1)
    if kernel == "poly":
        return ((sq / d + 1) ** 3).mean(-1)
    return (sq > 0).to(sq.dtype).mean(-1)  # cosine


class BucketGrams:
    """Per bucket, the linear Gram matrix ``(I, n_b, n_b)`` of its models' outputs.

    Computed once per output (Y or one method's E) and shared by every hyperparameter's
    cells: the bucket's models are the same whichever treatment is studied.
    """

    def __init__(self, outputs: np.ndarray | torch.Tensor, buckets: np.ndarray):
        o = torch.as_tensor(np.asarray(outputs)).to(torch.float64)
        o = o.reshape(o.shape[0], o.shape[1], -1)
        self.dim = o.shape[-1]
        self.n_images = o.shape[1]
        self.buckets = np.asarray(buckets)
        self.pos = np.full(self.buckets.size, -1)
        self.grams: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        for b in np.unique(self.buckets):
            members = np.flatnonzero(self.buckets == b)
            self.pos[members] = np.arange(members.size)
            x = o[torch.as_tensor(members)].transpose(0, 1)  # (I, n_b, d)
            gram = x @ x.transpose(-1, -2)
            self.grams[int(b)] = (gram, torch.diagonal(gram, dim1=-2, dim2=-1).clone())


def bucket_cell_effects(
    outputs: np.ndarray | torch.Tensor | BucketGrams,
    groups: Sequence[TreatmentGroup],
    buckets: np.ndarray,
    kernel: str = "rbf",
) -> np.ndarray:
    """Same as :func:`cell_effects`, from one Gram matrix per bucket.

    The linear Gram matrix of each bucket's models (per image) is computed once
    (:class:`BucketGrams`, which may be passed in to share it between calls); every cell
    of the bucket then reads its treated/control blocks from it (the RBF bandwidth still
    comes from the cell's own pooled models). This turns ``cells × pairs × d`` work into
    ``buckets × models² × d``.
    """
    from causalxai.effects.ite import KERNELS
    from causalxai.explain.postprocess import percentile

    if kernel not in KERNELS:
        raise ValueError(f"effects.kernel {kernel!r} is unknown: choose from {list(KERNELS)}")
    bg = outputs if isinstance(outputs, BucketGrams) else BucketGrams(outputs, buckets)
    d = bg.dim
    out = np.empty((len(groups), bg.n_images))
    for k, group in enumerate(groups):
        gram, sq = bg.grams[group.bucket]
        t, c = torch.as_tensor(bg.pos[group.treated]), torch.as_tensor(bg.pos[group.control])
        s2 = None
        if kernel == "rbf":
            u = torch.cat([t, c])
            duu = (sq[:, u][:, :, None] + sq[:, u][:, None, :] - 2 * gram[:, u][:, :, u]).clamp_min(0)
            iu = torch.triu_indices(u.numel(), u.numel(), offset=1)
            if iu.shape[1]:
                med = percentile(duu[:, iu[0], iu[1]], 50.0)[:, 0]
                scale = sq[:, u].mean(-1)
                s2 = torch.where(med > 1e-12 * scale, med, torch.ones_like(med))
            else:
                s2 = torch.ones(bg.n_images, dtype=gram.dtype)
        ktc = _kernel_from_gram(gram[:, t][:, :, c], sq[:, t], sq[:, c], kernel, d, s2)
        effect = _self_from_sq(sq[:, t], kernel, d) + _self_from_sq(sq[:, c], kernel, d) - 2 * ktc.mean(dim=(-1, -2))
        out[k] = effect.numpy()
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
