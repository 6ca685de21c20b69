"""Weight initialisers of the Small CNN Zoo (Keras semantics), many models at once.

Keras' ``RandomNormal`` and ``TruncatedNormal`` take the zoo's ``init_std`` as their
standard deviation (truncation at two standard deviations); ``he_normal`` and
``glorot_normal`` are variance-scaling truncated normals (std ``sqrt(2/fan_in)`` and
``sqrt(2/(fan_in+fan_out))``, divided by 0.8796 to undo the truncation, as Keras does);
``orthogonal`` flattens a kernel to ``(kh*kw*in, out)`` and takes the orthogonal factor
of a Gaussian matrix (gain 1). The zoo's ``init_std`` has no effect on the last three,
as in Keras where those initialisers take no standard deviation. Biases: ``zeros``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["init_kernels", "W_INITS"]

W_INITS = ("he_normal", "orthogonal", "glorot_normal", "RandomNormal", "TruncatedNormal")
_TRUNC_STD = 0.87962566103423978  # std of a unit normal truncated to [-2, 2]


def _truncated_normal(shape: tuple[int, ...], std: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Normal(0, std) truncated to +-2 std by resampling; ``std`` broadcast from (M,)."""
    z = torch.randn(shape, generator=g)
    bad = z.abs() > 2
    while bool(bad.any()):
        z = torch.where(bad, torch.randn(shape, generator=g), z)
        bad = z.abs() > 2
    return z * std.view(-1, *([1] * (len(shape) - 1)))


def _orthogonal(shape: tuple[int, ...], g: torch.Generator) -> torch.Tensor:
    """Per-model orthogonal kernels; ``shape`` is (M, *keras_kernel_shape)."""
    m, rows, cols = shape[0], int(np.prod(shape[1:-1])), shape[-1]
    big, small = max(rows, cols), min(rows, cols)
    a = torch.randn((m, big, small), generator=g, dtype=torch.float64)
    q, r = torch.linalg.qr(a)
    q = q * torch.sign(torch.diagonal(r, dim1=1, dim2=2))[:, None, :]
    if rows < cols:
        q = q.transpose(1, 2)
    return q.reshape(shape).to(torch.float32)


def init_kernels(
    keras_shape: tuple[int, ...], w_init: np.ndarray, init_std: np.ndarray, g: torch.Generator
) -> torch.Tensor:
    """Initial kernels for ``M`` models in Keras order ``(M, *keras_shape)``.

    Args:
        keras_shape: one model's kernel shape, HWIO for conv or ``(in, out)`` for dense.
        w_init: ``(M,)`` initialiser names (:data:`W_INITS`).
        init_std: ``(M,)`` standard deviations for ``RandomNormal``/``TruncatedNormal``.
        g: random source (a CPU generator; the result lies on the CPU).
    """
    m = len(w_init)
    shape = (m, *keras_shape)
    if len(keras_shape) == 4:
        fan_in = keras_shape[0] * keras_shape[1] * keras_shape[2]
        fan_out = keras_shape[0] * keras_shape[1] * keras_shape[3]
    else:
        fan_in, fan_out = keras_shape
    out = torch.zeros(shape)
    std = torch.tensor(np.asarray(init_std, dtype=np.float64), dtype=torch.float32)
    for name in W_INITS:
        sel = np.flatnonzero(np.asarray(w_init) == name)
        if sel.size == 0:
            continue
        sub = (sel.size, *keras_shape)
        s = std[sel]
        if name == "RandomNormal":
            block = torch.randn(sub, generator=g) * s.view(-1, *([1] * len(keras_shape)))
        elif name == "TruncatedNormal":
            block = _truncated_normal(sub, s, g)
        elif name == "he_normal":
            block = _truncated_normal(sub, torch.full((sel.size,), math.sqrt(2.0 / fan_in) / _TRUNC_STD), g)
        elif name == "glorot_normal":
            block = _truncated_normal(sub, torch.full((sel.size,), math.sqrt(2.0 / (fan_in + fan_out)) / _TRUNC_STD), g)
        else:
            block = _orthogonal(sub, g)
        out[torch.as_tensor(sel)] = block
    unknown = set(np.asarray(w_init).tolist()) - set(W_INITS)
    if unknown:
        raise ValueError(f"unknown w_init {sorted(unknown)}: choose from {list(W_INITS)}")
    return out
