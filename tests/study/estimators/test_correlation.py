"""Masked Pearson/Spearman against SciPy, row by row; the hyperparameter mean and its band."""

import numpy as np
from scipy import stats

from causalxai.study.estimators.correlation import correlations, hparam_mean


def test_rows_match_scipy_with_nans_and_ties():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 40))
    y = 0.5 * x + rng.normal(size=(6, 40))
    x[:, ::7] = np.round(x[:, ::7])  # ties
    y[1, :5] = np.nan
    x[2, 10:14] = np.nan
    got = correlations(x, y)
    for r in range(6):
        ok = np.isfinite(x[r]) & np.isfinite(y[r])
        np.testing.assert_allclose(got[r, 0], stats.pearsonr(x[r, ok], y[r, ok]).statistic, rtol=1e-12)
        np.testing.assert_allclose(got[r, 1], stats.spearmanr(x[r, ok], y[r, ok]).statistic, rtol=1e-12)


def test_undefined_correlations_are_nan_and_identity_is_one():
    x = np.arange(10.0)
    assert np.isnan(correlations(np.ones(10), x)).all()  # a constant side
    assert np.isnan(correlations(x[:2], x[:2])).all()  # fewer than 3 entries
    assert np.isnan(correlations(np.full(5, np.nan), np.arange(5.0))).all()
    np.testing.assert_allclose(correlations(x ** 2, x ** 2), 1.0)


def test_hparam_mean_and_band():
    c = np.array([[0.2, 0.4, np.nan], [np.nan, np.nan, np.nan], [0.5, np.nan, np.nan]])
    mean, band = hparam_mean(c, axis=1)
    np.testing.assert_allclose(mean, [0.3, np.nan, 0.5])
    np.testing.assert_allclose(band, [np.std([0.2, 0.4]) / np.sqrt(2), np.nan, np.nan])
