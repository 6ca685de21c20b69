"""Keras initialisers, many models at once."""

import math

import numpy as np
import pytest
import torch

from causalxai.zoo.init import init_kernels


def test_random_and_truncated_normal_use_init_std():
    g = torch.Generator().manual_seed(0)
    std = np.array([1e-3, 0.5, 0.1, 0.1])
    k = init_kernels((3, 3, 16, 16), np.array(["RandomNormal", "RandomNormal", "TruncatedNormal", "TruncatedNormal"]),
                     std, g)
    assert k.shape == (4, 3, 3, 16, 16)
    np.testing.assert_allclose(k[:2].flatten(1).std(1).numpy(), std[:2], rtol=0.1)
    assert float(k[2:].abs().max()) <= 2 * 0.1 + 1e-7
    # a normal truncated at 2 std has std 0.88 of the untruncated one
    np.testing.assert_allclose(k[2:].flatten(1).std(1).numpy(), 0.1 * 0.8796, rtol=0.1)


def test_variance_scaling_and_orthogonal():
    g = torch.Generator().manual_seed(1)
    k = init_kernels((3, 3, 16, 16), np.array(["he_normal", "glorot_normal", "orthogonal"]), np.full(3, 0.3), g)
    fan_in = fan_out = 9 * 16
    np.testing.assert_allclose(float(k[0].std()), math.sqrt(2 / fan_in), rtol=0.1)
    np.testing.assert_allclose(float(k[1].std()), math.sqrt(2 / (fan_in + fan_out)), rtol=0.1)
    q = k[2].reshape(-1, 16).double()  # (kh*kw*in, out): orthonormal columns
    torch.testing.assert_close(q.T @ q, torch.eye(16, dtype=torch.float64), atol=1e-5, rtol=0)
    dense = init_kernels((16, 10), np.array(["orthogonal"]), np.ones(1), g)[0].double()
    torch.testing.assert_close(dense.T @ dense, torch.eye(10, dtype=torch.float64), atol=1e-5, rtol=0)


def test_unknown_initialiser_is_named():
    with pytest.raises(ValueError, match="lecun"):
        init_kernels((16, 10), np.array(["lecun"]), np.ones(1), torch.Generator())
