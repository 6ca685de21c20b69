"""Eq. (4) and the unbiased MMD² against direct float64 NumPy double loops over model pairs;
the fixed bandwidth against scikit-learn's rbf_kernel."""

import numpy as np
import pytest
import torch
from sklearn.metrics.pairwise import rbf_kernel

from causalxai.study.estimators.ite import ESTIMATORS, KERNELS, gram, ite


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_matches_numpy_double_loop(kernel, estimator, numpy_ite):
    rng = np.random.default_rng(0)
    t = rng.dirichlet(np.ones(10), size=(3, 5))  # 3 images, 5 treated models, softmax-like outputs
    c = rng.dirichlet(np.ones(10), size=(3, 7))
    c[1, 2] = 0  # a zero vector (cosine's special case)
    got = ite(torch.tensor(t), torch.tensor(c), kernel, estimator=estimator).numpy()
    ref = [numpy_ite(t[i], c[i], kernel, estimator=estimator) for i in range(3)]
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-14)


def test_median_cell_bandwidth_matches_numpy(numpy_ite):
    rng = np.random.default_rng(1)
    t, c = rng.uniform(size=(2, 4, 16)), rng.uniform(size=(2, 6, 16))
    got = ite(torch.tensor(t), torch.tensor(c), "rbf", gamma="median_cell").numpy()
    np.testing.assert_allclose(got, [numpy_ite(t[i], c[i], gamma="median_cell") for i in range(2)], rtol=1e-12)


def test_fixed_gamma_is_scikit_learns_rbf_kernel():
    rng = np.random.default_rng(2)
    a, b = rng.uniform(size=(5, 784)), rng.uniform(size=(7, 784))
    got = gram(torch.tensor(a[None]), torch.tensor(b[None]), "rbf")[0].numpy()
    np.testing.assert_allclose(got, rbf_kernel(a, b), rtol=1e-12)  # gamma=None: 1 / n_features


def test_identical_groups_have_no_effect_and_bad_input():
    x = torch.rand(2, 4, 6, dtype=torch.float64)
    same = x[:, :1].expand(2, 4, 6)
    assert torch.allclose(ite(same, same, "rbf"), torch.zeros(2, dtype=torch.float64))
    assert torch.allclose(ite(same, same, "linear"), torch.zeros(2, dtype=torch.float64), atol=1e-12)
    with pytest.raises(ValueError, match="effects.kernel"):
        ite(x, x, "laplace")
    with pytest.raises(ValueError, match="effects.estimator"):
        ite(x, x, "rbf", estimator="mmd")
    with pytest.raises(ValueError, match="at least 1"):
        ite(x[:, :0], x, "rbf")
    with pytest.raises(ValueError, match="at least 2"):
        ite(x[:, :1], x, "rbf", estimator="mmd_unbiased")


def test_no_effect_biases_eq4_but_not_the_unbiased_mmd():
    """Two groups drawn from one distribution: eq. (4) stays at the within-group spread, the
    unbiased MMD² averages to 0 (the reason the placebo and the null exist)."""
    rng = np.random.default_rng(3)
    x = torch.tensor(rng.normal(size=(400, 20, 5)))
    eq4 = ite(x[:, :10], x[:, 10:], "rbf", gamma=0.5)
    mmd = ite(x[:, :10], x[:, 10:], "rbf", gamma=0.5, estimator="mmd_unbiased")
    assert float(eq4.mean()) > 0.5
    assert abs(float(mmd.mean())) < 3 * float(mmd.std()) / np.sqrt(400)
