"""Kernelised individual treatment effects, paper 000 eq. (4): the reference definition.

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

Because eq. (4) pairs every treated with every control model and ``k(a, a)`` enters,
it is > 0 even when ``h`` has no effect at all: it contains the spread of the outputs
within the groups. ``estimator="mmd_unbiased"`` is the unbiased estimate of the squared
maximum mean discrepancy instead (Gretton et al. 2012, eq. 3), ``E k(a, a') + E k(b, b')
− 2 E k(a, b)`` over distinct pairs within each group, whose expectation is 0 under no
effect (it can be negative).

Kernels (paper Fig. 8 compares them): ``rbf`` ``k = exp(−γ ‖a − b‖²)``; ``linear``
``k = a·b``; ``poly`` ``k = (a·b / d + 1)³`` (scikit-learn's defaults); ``cosine``
``k = a·b / (‖a‖‖b‖)`` (0 for a zero vector). The RBF bandwidth ``γ`` follows one of the
rules of :mod:`causalxai.effects.bandwidth`; by default the public code's fixed
``γ = 1 / d`` (scikit-learn's ``rbf_kernel`` default). Computed in float64.

:func:`ite` is the single-cell reference; :mod:`causalxai.effects.estimate` evaluates the
same quantity for many cells, bootstrap replicates and permutations at once.
"""

from __future__ import annotations

import torch

from causalxai.effects.bandwidth import fixed_gamma, median_gamma

__all__ = ["KERNELS", "ESTIMATORS", "gram", "ite"]

KERNELS = ("rbf", "linear", "poly", "cosine")
ESTIMATORS = ("eq4", "mmd_unbiased")


def _check(kernel: str, estimator: str = "eq4") -> None:
    if kernel not in KERNELS:
        raise ValueError(f"effects.kernel {kernel!r} is unknown: choose from {list(KERNELS)}")
    if estimator not in ESTIMATORS:
        raise ValueError(f"effects.estimator {estimator!r} is unknown: choose from {list(ESTIMATORS)}")


def _sq_dist(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    d = (a * a).sum(-1)[..., :, None] + (b * b).sum(-1)[..., None, :] - 2 * a @ b.transpose(-1, -2)
    return d.clamp_min(0)


def gram(a: torch.Tensor, b: torch.Tensor, kernel: str, gamma: torch.Tensor | float | None = None) -> torch.Tensor:
    """Kernel matrix ``(I, n, m)`` between rows of ``a (I, n, d)`` and ``b (I, m, d)``.

    ``gamma`` (RBF only): a number or one value per image ``(I,)``; ``None`` is the fixed
    ``1 / d``.
    """
    _check(kernel)
    if kernel == "rbf":
        g = fixed_gamma(a.shape[-1]) if gamma is None else gamma
        g = torch.as_tensor(g, dtype=a.dtype)
        if g.ndim:
            g = g[..., None, None]
        return torch.exp(-g * _sq_dist(a, b))
    if kernel == "linear":
        return a @ b.transpose(-1, -2)
    if kernel == "poly":
        return (a @ b.transpose(-1, -2) / a.shape[-1] + 1) ** 3
    na = a.norm(dim=-1, keepdim=True)
    nb = b.norm(dim=-1, keepdim=True)
    an = torch.where(na > 0, a / torch.where(na > 0, na, torch.ones_like(na)), torch.zeros_like(a))
    bn = torch.where(nb > 0, b / torch.where(nb > 0, nb, torch.ones_like(nb)), torch.zeros_like(b))
    return an @ bn.transpose(-1, -2)


def ite(
    treated: torch.Tensor,
    control: torch.Tensor,
    kernel: str = "rbf",
    gamma: torch.Tensor | float | str | None = None,
    estimator: str = "eq4",
) -> torch.Tensor:
    """Eq. (4) (or the unbiased MMD²) for every image at once: ``(I,)``.

    Args:
        treated, control: outputs ``(I, n, d)`` and ``(I, m, d)`` of the two groups.
        kernel: one of :data:`KERNELS`.
        gamma: RBF bandwidth: a number or ``(I,)``; ``None`` the fixed ``1 / d``;
            ``"median_cell"`` the median heuristic on the pooled groups, per image.
        estimator: ``eq4`` (the paper's) or ``mmd_unbiased``.

    Both groups need at least one model (two for ``mmd_unbiased``).
    """
    _check(kernel, estimator)
    need = 2 if estimator == "mmd_unbiased" else 1
    if treated.shape[-2] < need or control.shape[-2] < need:
        raise ValueError(f"a treatment effect ({estimator}) needs at least {need} treated and {need} control models")
    t = treated.to(torch.float64)
    c = control.to(torch.float64)
    if isinstance(gamma, str):
        if gamma != "median_cell":
            raise ValueError(f"gamma {gamma!r}: give a number, None (fixed 1/d) or 'median_cell'")
        u = torch.cat([t, c], dim=-2)
        n = u.shape[-2]
        iu = torch.triu_indices(n, n, offset=1)
        gamma = median_gamma(_sq_dist(u, u)[..., iu[0], iu[1]])
    k_tt, k_cc, k_tc = gram(t, t, kernel, gamma), gram(c, c, kernel, gamma), gram(t, c, kernel, gamma)
    cross = k_tc.mean(dim=(-1, -2))
    if estimator == "eq4":
        return torch.diagonal(k_tt, dim1=-2, dim2=-1).mean(-1) + torch.diagonal(k_cc, dim1=-2, dim2=-1).mean(-1) - 2 * cross

    def within(k: torch.Tensor) -> torch.Tensor:
        n = k.shape[-1]
        return (k.sum(dim=(-1, -2)) - torch.diagonal(k, dim1=-2, dim2=-1).sum(-1)) / (n * (n - 1))

    return within(k_tt) + within(k_cc) - 2 * cross
