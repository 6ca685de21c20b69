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
rules of :mod:`causalxai.study.estimators.bandwidth`; by default the public code's fixed
``γ = 1 / d`` (scikit-learn's ``rbf_kernel`` default). Computed in float64.

:func:`ite` is the single-cell entry (all weights 1) of :mod:`causalxai.study.estimators.estimate`,
which holds the kernels and evaluates the same quantity for many cells, bootstrap replicates
and permutations at once; the tests check both against pair-by-pair NumPy loops.
"""

from __future__ import annotations

import numpy as np
import torch

from causalxai.study.estimators.estimate import ESTIMATORS, KERNELS, Block, BucketKernel, KernelSpec, kernel_from_gram

__all__ = ["KERNELS", "ESTIMATORS", "gram", "ite"]


def _block(*groups: torch.Tensor) -> Block:
    """The Gram block of the groups' outputs ``(I, n_k, d)``, concatenated along the models."""
    u = torch.cat([g.to(torch.float64) for g in groups], dim=-2)
    return Block.from_outputs(u.transpose(0, 1).detach().cpu().numpy())


def gram(a: torch.Tensor, b: torch.Tensor, kernel: str, gamma: torch.Tensor | float | None = None) -> torch.Tensor:
    """Kernel matrix ``(I, n, m)`` between rows of ``a (I, n, d)`` and ``b (I, m, d)``.

    ``gamma`` (RBF only): a number or one value per image ``(I,)``; ``None`` is the fixed
    ``1 / d``.
    """
    n = a.shape[-2]
    return kernel_from_gram(_block(a, b), KernelSpec(kernel), gamma)[:, :n, n:]


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

    Both groups need at least one model (two for ``mmd_unbiased``). The single-cell entry
    of :class:`causalxai.study.estimators.estimate.BucketKernel`, all weights 1.
    """
    if isinstance(gamma, str) and gamma != "median_cell":
        raise ValueError(f"gamma {gamma!r}: give a number, None (fixed 1/d) or 'median_cell'")
    median = isinstance(gamma, str)
    spec = KernelSpec(kernel, "median_cell" if median else "fixed", estimator)
    need = 2 if estimator == "mmd_unbiased" else 1
    n_t, n_c = treated.shape[-2], control.shape[-2]
    if n_t < need or n_c < need:
        raise ValueError(f"a treatment effect ({estimator}) needs at least {need} treated and {need} control models")
    kern = BucketKernel(_block(treated, control), spec, None if median else gamma)
    est, _ = kern.cell(np.arange(n_t), np.arange(n_t, n_t + n_c), np.ones((1, n_t + n_c)))
    return est[0]
