"""Centered Kernel Alignment between layers (paper 004 §3.3.2, App. A.4).

For one input and its ``n − 1`` interventions, layer ``i`` gives activations
``f_i ∈ R^{n × d_i}`` (any trailing shape, flattened). With the kernel matrix
``K_i = f_i f_iᵀ`` (linear) and the centering matrix ``H = I − 11ᵀ/n``, paper 004 §3.3.2 writes

    HSIC(K_i, K_j) = (n − 1)⁻² Tr(H K_i H K_j),
    CKA(K_i, K_j)  = HSIC(K_i, K_j) / sqrt(HSIC(K_i, K_i) · HSIC(K_j, K_j)).

Because ``H`` is idempotent, ``Tr(H K_i H K_j) = ⟨K̃_i, K̃_j⟩_F`` with ``K̃ = H K H``, so every
pairwise HSIC of ``L`` layers is one matrix product of the flattened centred Grams,
``(L, n²) @ (n², L)``; :func:`cka_matrix` builds each layer's centred Gram once and does exactly
that. The ``(n − 1)⁻²`` factor cancels in the ratio and is not applied. For the linear kernel
``K̃ = f̃ f̃ᵀ`` with ``f̃`` the column-centred activations (centring the features first is
exact and better conditioned than ``H K H``); the Gram is accumulated over feature chunks in
the working dtype, so a wide float32 layer is never copied whole to float64.

Choices where the paper leaves room (each is tested):

* **Precision.** Everything is computed in float64 by default, whatever the activations'
  dtype. ``dtype=torch.float32`` builds the Grams (the ``n²·d`` cost) in float32 for speed;
  the HSIC reduction over ``n²`` terms is float64 in every case (in float32 it alone costs
  ~1e-5 in CKA at ``n = 677``); the float32 path agrees with float64 to ~1e-8.
* **RBF kernel** (paper: "various kernel functions, such as linear or Gaussian", no bandwidth
  given). Kornblith et al. (2019)'s convention and reference code (``gram_rbf``):
  ``K = exp(−D² / (2 σ_f² · median(D²)))`` with ``D²`` the squared Euclidean distances and
  the median (``numpy.median``: mean of the two middle values) over the full ``n × n`` matrix,
  diagonal zeros included; i.e. the bandwidth is ``σ_f`` times the median distance.
  Default ``sigma_frac = 0.8``, the largest fraction Kornblith et al. report. If that median
  is 0 (more than half the pairs coincide) the median of the non-zero squared distances is
  used; if all distances are 0 the layer is constant (below).
* **Range.** CKA of two PSD kernels lies in [0, 1]; results are clamped to [0, 1] (rounding
  can give 1 + 1e-16) and symmetrised, and the diagonal is exactly 1.
* **Degenerate layers.** A layer that is constant over the interventions has ``K̃ = 0`` and
  ``HSIC(K, K) = 0``, so the paper's ratio is 0/0. Rather than let NaN leak into the grouping
  (where ``NaN ≥ 1 − ε`` is silently false, and ε = 1 would no longer give one node), we set
  CKA = 1 between two degenerate layers (both representations are the same point, identical up
  to the translation CKA ignores) and CKA = 0 between a degenerate and a non-degenerate layer
  (``HSIC = 0``: nothing aligns). A layer is degenerate when
  ``‖K̃‖_F ≤ degenerate_tol · scale`` with ``scale = ‖f‖_F²`` (linear; an upper bound of
  ``‖K‖_F``) or ``‖K‖_F`` (RBF), i.e. its variation is at rounding level (≈ 1e-6 relative
  in the activations for the default ``1e-12``, about 10 float32 ulps: a layer whose
  variation is float32 rounding noise, e.g. a saturated softmax, is constant).
* **Memory.** The Gram stack takes ``L · n² · 8`` bytes (``L = 20``, ``n = 677``: 73 MB).
"""

from __future__ import annotations

from typing import Literal, Mapping, Sequence

import numpy as np
import torch
import xarray as xr

__all__ = ["KERNELS", "centered_gram", "cka_matrix", "linear_cka", "cka_dataset"]

KERNELS = ("linear", "rbf")
Kernel = Literal["linear", "rbf"]
Activations = Sequence[torch.Tensor] | Mapping[str, torch.Tensor]

_CHUNK_BYTES = 1 << 27  # 128 MiB of working-dtype features per Gram update


def _layers(acts: Activations) -> tuple[list[str], list[torch.Tensor]]:
    """Layer names and tensors; a sequence's layers are named ``"0"``, ``"1"``, …"""
    if isinstance(acts, Mapping):
        names, tensors = [str(k) for k in acts.keys()], list(acts.values())
    else:
        tensors = list(acts)
        names = [str(i) for i in range(len(tensors))]
    if not tensors:
        raise ValueError("CKA needs at least one layer's activations, got none")
    tensors = [torch.as_tensor(t) for t in tensors]
    n = tensors[0].shape[0] if tensors[0].dim() else 0
    for name, t in zip(names, tensors):
        if t.dim() < 1 or t.shape[0] != n:
            raise ValueError(
                f"layer {name!r} has shape {tuple(t.shape)}; every layer needs the same number of "
                f"samples (interventions + original) along dim 0, here {n}"
            )
        if not torch.is_floating_point(t) and t.dtype not in (torch.int32, torch.int64, torch.uint8, torch.bool):
            raise ValueError(f"layer {name!r} has unsupported dtype {t.dtype}")
    if n < 2:
        raise ValueError(f"CKA needs at least 2 samples (an input and one intervention), got {n}")
    return names, tensors


def _check_kernel(kernel: str) -> None:
    if kernel not in KERNELS:
        raise ValueError(f"CKA kernel {kernel!r} is unknown: choose from {list(KERNELS)}")


def _centered_features_gram(x: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """``(f̃ f̃ᵀ, ‖f‖_F²)`` in ``dtype``, accumulated over feature chunks of ``x (n, d)``."""
    n, d = x.shape
    itemsize = torch.empty((), dtype=dtype).element_size()
    chunk = max(1, _CHUNK_BYTES // (itemsize * n))
    gram = torch.zeros((n, n), dtype=dtype, device=x.device)
    sq = torch.zeros((), dtype=dtype, device=x.device)
    for start in range(0, max(d, 1), chunk):
        block = x[:, start : start + chunk].to(dtype)
        sq = sq + (block * block).sum()
        block = block - block.mean(dim=0, keepdim=True)
        gram.addmm_(block, block.T)
    return gram, sq


def _median(values: torch.Tensor) -> torch.Tensor:
    """``numpy.median`` of a flat tensor (mean of the two middle values for an even count)."""
    m = values.numel()
    lo = torch.kthvalue(values, (m + 1) // 2).values
    hi = torch.kthvalue(values, m // 2 + 1).values
    return (lo + hi) / 2


def _center(k: torch.Tensor) -> torch.Tensor:
    """``H K H`` for a symmetric ``K``."""
    rows = k.mean(dim=1, keepdim=True)
    return k - rows - rows.T + rows.mean()


def centered_gram(
    x: torch.Tensor,
    kernel: Kernel = "linear",
    dtype: torch.dtype = torch.float64,
    sigma_frac: float = 0.8,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One layer's centred kernel matrix ``K̃ = H K H`` ``(n, n)`` and its degeneracy scale.

    Args:
        x: activations ``(n, ...)``; flattened to ``(n, d)``.
        kernel: ``"linear"`` (``K = f fᵀ``, paper §3.3.2) or ``"rbf"`` (see the module docstring).
        dtype: working dtype (float64 by default).
        sigma_frac: RBF bandwidth as a fraction of the median pairwise distance.

    Returns:
        ``(K̃, scale)``: the layer is degenerate (constant) when ``‖K̃‖_F ≤ tol · scale``.
    """
    _check_kernel(kernel)
    x = torch.as_tensor(x)
    flat = x.reshape(x.shape[0], -1)
    gram, sq = _centered_features_gram(flat, dtype)
    if kernel == "linear":
        return gram, sq
    if not sigma_frac > 0:
        raise ValueError(f"the RBF bandwidth fraction sigma_frac must be > 0, got {sigma_frac}")
    norms = gram.diagonal()
    d2 = (norms[:, None] + norms[None, :] - 2 * gram).clamp_min_(0)
    d2.fill_diagonal_(0)
    med = _median(d2.flatten())
    if med <= 0:
        positive = d2[d2 > 0]
        if positive.numel() == 0:  # constant layer: K = 1, K̃ = 0
            ones = torch.ones_like(d2)
            return _center(ones), torch.linalg.matrix_norm(ones)
        med = _median(positive)
    k = torch.exp(-d2 / (2 * sigma_frac**2 * med))
    return _center(k), torch.linalg.matrix_norm(k)


def _normalise(hsic: torch.Tensor, degenerate: torch.Tensor) -> torch.Tensor:
    """CKA from the ``(L, L)`` HSIC matrix with the degenerate-layer convention."""
    var = hsic.diagonal().clone()
    var = torch.where(degenerate, torch.ones_like(var), var)
    denom = torch.sqrt(var[:, None] * var[None, :])
    cka = (hsic / denom).clamp(0.0, 1.0)
    cka = (cka + cka.T) / 2
    both = degenerate[:, None] & degenerate[None, :]
    either = degenerate[:, None] | degenerate[None, :]
    cka = torch.where(either, both.to(cka.dtype), cka)
    cka.fill_diagonal_(1.0)
    return cka


def cka_matrix(
    acts: Activations,
    kernel: Kernel = "linear",
    dtype: torch.dtype = torch.float64,
    sigma_frac: float = 0.8,
    degenerate_tol: float = 1e-12,
) -> torch.Tensor:
    """CKA between every pair of layers, paper 004 §3.3.2: ``(L, L)`` in ``dtype``.

    Each layer's centred Gram ``K̃_l`` is built once; the HSIC of all pairs is the single
    product ``S Sᵀ`` of the stacked flattened Grams ``S (L, n²)``.

    Args:
        acts: per layer, activations ``(n, ...)`` over the same ``n`` samples (the original
            input and its interventions), as a sequence or a name → tensor mapping (order =
            layer order).
        kernel: ``"linear"`` (the paper's) or ``"rbf"``.
        dtype: working dtype of the Gram matrices (the ``n²·d`` part); float64 by default
            whatever the activations' dtype. The HSIC reduction is always float64.
        sigma_frac: RBF bandwidth as a fraction of the median pairwise distance (Kornblith
            et al. 2019); ignored for the linear kernel.
        degenerate_tol: relative size of ``K̃`` below which a layer counts as constant
            (module docstring: CKA 1 between two such layers, 0 with any other).

    Returns:
        Symmetric float64 ``(L, L)`` tensor in [0, 1] with a unit diagonal, on the
        activations' device.
    """
    _check_kernel(kernel)
    _, tensors = _layers(acts)
    n = tensors[0].shape[0]
    device = tensors[0].device
    n_layers = len(tensors)
    stack = torch.empty((n_layers, n * n), dtype=dtype, device=device)
    scales = torch.empty(n_layers, dtype=torch.float64, device=device)
    for layer, t in enumerate(tensors):
        k, scale = centered_gram(t.to(device), kernel, dtype, sigma_frac)
        stack[layer] = k.flatten()
        scales[layer] = scale.to(torch.float64)
    # HSIC of all pairs: one product S Sᵀ, accumulated in float64 over column chunks (a float32
    # reduction over n² terms alone costs ~1e-5 in CKA; chunks avoid a float64 copy of S)
    hsic = torch.zeros((n_layers, n_layers), dtype=torch.float64, device=device)
    chunk = max(1, _CHUNK_BYTES // (8 * n_layers))
    for start in range(0, n * n, chunk):
        block = stack[:, start : start + chunk].to(torch.float64)
        hsic.addmm_(block, block.T)
    degenerate = hsic.diagonal().sqrt() <= degenerate_tol * scales
    return _normalise(hsic, degenerate)


def linear_cka(x: torch.Tensor, y: torch.Tensor, degenerate_tol: float = 1e-12) -> float:
    """Linear CKA of two activation matrices ``(n, d1)`` and ``(n, d2)``, in float64.

    Same value and degenerate-layer convention as :func:`cka_matrix`. When the features are
    fewer than the samples it uses the feature-space identity of Kornblith et al. (2019),
    ``Tr(K̃_x K̃_y) = ‖f̃_yᵀ f̃_x‖_F²`` and ``‖K̃_x‖_F = ‖f̃_xᵀ f̃_x‖_F``, which avoids the
    ``n × n`` Grams.
    """
    _, (x, y) = _layers([x, y])
    fx = x.reshape(x.shape[0], -1).to(torch.float64)
    fy = y.reshape(y.shape[0], -1).to(torch.float64)
    n, d1, d2 = fx.shape[0], fx.shape[1], fy.shape[1]
    if d1 * d2 + d1 * d1 + d2 * d2 >= n * (d1 + d2 + n):
        return float(cka_matrix([fx, fy], degenerate_tol=degenerate_tol)[0, 1])
    cx = fx - fx.mean(dim=0, keepdim=True)
    cy = fy - fy.mean(dim=0, keepdim=True)
    xx = torch.linalg.matrix_norm(cx.T @ cx)
    yy = torch.linalg.matrix_norm(cy.T @ cy)
    xy = torch.linalg.matrix_norm(cy.T @ cx) ** 2
    hsic = torch.stack([torch.stack([xx**2, xy]), torch.stack([xy, yy**2])])
    degenerate = torch.stack([xx <= degenerate_tol * (fx * fx).sum(), yy <= degenerate_tol * (fy * fy).sum()])
    return float(_normalise(hsic, degenerate)[0, 1])


def cka_dataset(
    acts: Activations,
    kernel: Kernel = "linear",
    dtype: torch.dtype = torch.float64,
    sigma_frac: float = 0.8,
    degenerate_tol: float = 1e-12,
) -> xr.DataArray:
    """:func:`cka_matrix` as an :class:`xarray.DataArray` ``cka (layer_i, layer_j)``.

    Both dims carry the layer names as coordinates; attrs record the kernel, the bandwidth
    fraction (RBF), the number of samples and the degeneracy tolerance.
    """
    names, tensors = _layers(acts)
    values = cka_matrix(tensors, kernel, dtype, sigma_frac, degenerate_tol)
    attrs: dict[str, object] = {
        "kernel": kernel,
        "n_samples": int(tensors[0].shape[0]),
        "degenerate_tol": degenerate_tol,
        "description": "linear or RBF CKA between layer activations over interventions (paper 004 §3.3.2)",
    }
    if kernel == "rbf":
        attrs["sigma_frac"] = sigma_frac
    return xr.DataArray(
        np.asarray(values.detach().cpu().numpy(), dtype=np.float64),
        dims=("layer_i", "layer_j"),
        coords={"layer_i": names, "layer_j": names},
        name="cka",
        attrs=attrs,
    )
