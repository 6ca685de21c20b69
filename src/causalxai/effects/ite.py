"""Kernelised individual treatment effects, paper 000 eq. (4).

For a probe image ``x``, a hyperparameter ``h_i`` and one of its values ``n``, the effect
of ``h_i = n`` with respect to ``h_i ≠ n`` is the mean, over pairs of models ``(a, b)``
with ``a`` from the treated group (``h_i = n``) and ``b`` from the control group
(``h_i ≠ n``), of the squared distance of their outputs in a kernel's feature space:

    ITE(x) = mean_{a ∈ T, b ∈ C} ‖φ(o_a(x)) − φ(o_b(x))‖²
           = mean_a k(o_a, o_a) + mean_b k(o_b, o_b) − 2 mean_{a,b} k(o_a, o_b),

where ``o_m(x)`` is model ``m``'s prediction Y (softmax vector) or explanation E (the
flattened map). Averaging over all pairs marginalises the other hyperparameters (the
outer expectation of eq. 4, the zoo drawing them independently). The second line is
exact and lets all pairs be evaluated as three Gram blocks, for all images at once.

Kernels (paper Fig. 8 compares them): ``rbf`` ``k = exp(−‖a − b‖² / (2 s²))`` with the
median heuristic ``s² = median`` of the squared distances between distinct outputs of the
pooled treated and control models, per image (``s² = 1`` if they are all equal);
``linear`` ``k = a·b``; ``poly`` ``k = (a·b / d + 1)³`` (scikit-learn's defaults);
``cosine`` ``k = a·b / (‖a‖‖b‖)`` (0 for a zero vector). Computed in float64.
"""

from __future__ import annotations

import torch

from causalxai.explain.postprocess import percentile

__all__ = ["KERNELS", "gram", "median_sq_distance", "ite"]

KERNELS = ("rbf", "linear", "poly", "cosine")


def _sq_dist(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    d = (a * a).sum(-1)[..., :, None] + (b * b).sum(-1)[..., None, :] - 2 * a @ b.transpose(-1, -2)
    return d.clamp_min(0)


def median_sq_distance(x: torch.Tensor) -> torch.Tensor:
    """Median squared distance between distinct rows, per leading batch: ``(I,)``.

    ``x`` is ``(I, n, d)``; pairs ``i < j`` only. Returns 1 where every distance is 0 or
    ``n < 2`` (distances below 1e-12 of the mean squared norm count as 0: rounding of
    identical outputs), so that the RBF kernel stays defined.
    """
    n = x.shape[-2]
    if n < 2:
        return torch.ones(x.shape[:-2], dtype=x.dtype, device=x.device)
    d = _sq_dist(x, x)
    iu = torch.triu_indices(n, n, offset=1, device=x.device)
    med = percentile(d[..., iu[0], iu[1]], 50.0)[..., 0]  # as numpy.median (mean of the middle two)
    # distances at rounding level (identical outputs) count as zero
    scale = (x * x).sum(-1).mean(-1)
    return torch.where(med > 1e-12 * scale, med, torch.ones_like(med))


def gram(a: torch.Tensor, b: torch.Tensor, kernel: str, s2: torch.Tensor | None = None) -> torch.Tensor:
    """Kernel matrix ``(I, n, m)`` between rows of ``a (I, n, d)`` and ``b (I, m, d)``."""
    if kernel == "rbf":
        if s2 is None:
            raise ValueError("the rbf kernel needs a bandwidth s2")
        return torch.exp(-_sq_dist(a, b) / (2 * s2[..., None, None]))
    if kernel == "linear":
        return a @ b.transpose(-1, -2)
    if kernel == "poly":
        return (a @ b.transpose(-1, -2) / a.shape[-1] + 1) ** 3
    if kernel == "cosine":
        na = a.norm(dim=-1, keepdim=True)
        nb = b.norm(dim=-1, keepdim=True)
        an = torch.where(na > 0, a / torch.where(na > 0, na, torch.ones_like(na)), torch.zeros_like(a))
        bn = torch.where(nb > 0, b / torch.where(nb > 0, nb, torch.ones_like(nb)), torch.zeros_like(b))
        return an @ bn.transpose(-1, -2)
    raise ValueError(f"effects.kernel {kernel!r} is unknown: choose from {list(KERNELS)}")


def _self_kernel(a: torch.Tensor, kernel: str) -> torch.Tensor:
    """``k(a_i, a_i)`` for each row: ``(I, n)``."""
    if kernel == "rbf":
        return torch.ones(a.shape[:-1], dtype=a.dtype, device=a.device)
    sq = (a * a).sum(-1)
    if kernel == "linear":
        return sq
    if kernel == "poly":
        return (sq / a.shape[-1] + 1) ** 3
    if kernel == "cosine":
        return (sq > 0).to(a.dtype)
    raise ValueError(f"effects.kernel {kernel!r} is unknown: choose from {list(KERNELS)}")


def ite(treated: torch.Tensor, control: torch.Tensor, kernel: str = "rbf") -> torch.Tensor:
    """Eq. (4) for every image at once: ``(I,)`` from ``treated (I, n, d)``, ``control (I, m, d)``.

    Both groups need at least one model.
    """
    if treated.shape[-2] < 1 or control.shape[-2] < 1:
        raise ValueError("a treatment effect needs at least one treated and one control model")
    t = treated.to(torch.float64)
    c = control.to(torch.float64)
    s2 = median_sq_distance(torch.cat([t, c], dim=-2)) if kernel == "rbf" else None
    return (
        _self_kernel(t, kernel).mean(-1)
        + _self_kernel(c, kernel).mean(-1)
        - 2 * gram(t, c, kernel, s2).mean(dim=(-1, -2))
    )
