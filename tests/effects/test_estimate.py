"""Cell effects and their correlations: NumPy references and the Identity check."""

import numpy as np
from scipy import stats

from causalxai.effects.estimate import bucket_correlations, cell_effects
from causalxai.effects.groups import treatment_groups
from test_ite import _numpy_ite


def test_cell_effects_match_numpy_and_identity_correlates_perfectly():
    rng = np.random.default_rng(0)
    m, i = 16, 5
    y = rng.dirichlet(np.ones(10), size=(m, i))
    e = rng.uniform(size=(m, i, 4, 4))
    levels = rng.integers(0, 3, m)
    buckets = np.repeat([0, 1], 8)
    groups = treatment_groups(levels, 3, buckets, 2, cap=100, seed=0)
    ite_y = cell_effects(y, groups, "rbf")
    ite_e = cell_effects(e, groups, "linear")
    g = groups[1]
    np.testing.assert_allclose(ite_y[1], [_numpy_ite(y[g.treated, k], y[g.control, k], "rbf") for k in range(i)], rtol=1e-12)
    flat = e.reshape(m, i, -1)
    np.testing.assert_allclose(ite_e[1], [_numpy_ite(flat[g.treated, k], flat[g.control, k], "linear") for k in range(i)], rtol=1e-12)
    cb = np.array([g.bucket for g in groups])
    ident = bucket_correlations(ite_y, ite_y, cb, 2)
    np.testing.assert_allclose(ident, 1.0)
    corr = bucket_correlations(ite_y, ite_e, cb, 2)
    sel = cb == 0
    assert corr[0, 0] == stats.pearsonr(ite_y[sel].ravel(), ite_e[sel].ravel()).statistic
    assert corr[0, 1] == stats.spearmanr(ite_y[sel].ravel(), ite_e[sel].ravel()).statistic


def test_undefined_correlations_are_nan():
    out = bucket_correlations(np.ones((2, 3)), np.arange(6.0).reshape(2, 3), np.array([0, 0]), 2)
    assert np.isnan(out).all()


def test_bucket_gram_path_equals_the_direct_path():
    import pytest

    from causalxai.effects.estimate import bucket_cell_effects

    rng = np.random.default_rng(1)
    m, i = 30, 4
    y = rng.dirichlet(np.ones(10), size=(m, i))
    y[3, 1] = 0  # a zero vector for cosine
    levels = rng.integers(0, 3, m)
    buckets = rng.integers(0, 3, m)
    groups = treatment_groups(levels, 3, buckets, 3, cap=6, seed=2)
    for kernel in ("rbf", "linear", "poly", "cosine"):
        np.testing.assert_allclose(
            bucket_cell_effects(y, groups, buckets, kernel), cell_effects(y, groups, kernel), rtol=1e-10, atol=1e-12
        )
    with pytest.raises(ValueError, match="effects.kernel"):
        bucket_cell_effects(y, groups, buckets, "laplace")
