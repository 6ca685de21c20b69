"""Eq. (4) against a direct float64 NumPy double loop over model pairs."""

import numpy as np
import pytest
import torch

from causalxai.effects.ite import KERNELS, ite


def _k(a, b, kernel, s2):
    if kernel == "rbf":
        return np.exp(-np.sum((a - b) ** 2) / (2 * s2))
    if kernel == "linear":
        return float(a @ b)
    if kernel == "poly":
        return (a @ b / a.size + 1) ** 3
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    return 0.0 if na == 0 or nb == 0 else float(a @ b / (na * nb))


def _numpy_ite(t, c, kernel):
    pooled = np.concatenate([t, c])
    d = [np.sum((pooled[i] - pooled[j]) ** 2) for i in range(len(pooled)) for j in range(i + 1, len(pooled))]
    s2 = float(np.median(d)) if d and np.median(d) > 0 else 1.0
    total = 0.0
    for a in t:
        for b in c:
            # ‖φ(a) − φ(b)‖² = k(a,a) + k(b,b) − 2k(a,b)
            total += _k(a, a, kernel, s2) + _k(b, b, kernel, s2) - 2 * _k(a, b, kernel, s2)
    return total / (len(t) * len(c))


@pytest.mark.parametrize("kernel", KERNELS)
def test_matches_numpy_double_loop(kernel):
    rng = np.random.default_rng(0)
    t = rng.dirichlet(np.ones(10), size=(3, 5))  # 3 images, 5 treated models, softmax-like outputs
    c = rng.dirichlet(np.ones(10), size=(3, 7))
    c[1, 2] = 0  # a zero vector (cosine's special case)
    got = ite(torch.tensor(t), torch.tensor(c), kernel).numpy()
    ref = [_numpy_ite(t[i], c[i], kernel) for i in range(3)]
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-14)


def test_identical_groups_have_no_effect_and_bad_input():
    x = torch.rand(2, 4, 6, dtype=torch.float64)
    same = x[:, :1].expand(2, 4, 6)
    assert torch.allclose(ite(same, same, "rbf"), torch.zeros(2, dtype=torch.float64))
    assert torch.allclose(ite(same, same, "linear"), torch.zeros(2, dtype=torch.float64), atol=1e-12)
    with pytest.raises(ValueError, match="effects.kernel"):
        ite(x, x, "laplace")
    with pytest.raises(ValueError, match="at least one"):
        ite(x[:, :0], x, "rbf")
