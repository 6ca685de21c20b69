"""Bootstrap counts, permutation indicators, percentile intervals and permutation p-values."""

import numpy as np
import pytest

from causalxai.study.estimators.resample import bootstrap_counts, p_values, percentile_interval, permutation_indicators


def test_bootstrap_counts_are_seeded_resamples():
    w = bootstrap_counts(7, 50, seed=[1, 2])
    assert w.shape == (51, 7) and (w[0] == 1).all() and (w.sum(1) == 7).all()
    np.testing.assert_array_equal(w, bootstrap_counts(7, 50, seed=[1, 2]))
    assert not np.array_equal(w, bootstrap_counts(7, 50, seed=[1, 3]))
    # each model is drawn with probability 1/n per draw: mean count 1
    assert abs(bootstrap_counts(7, 4000, seed=0)[1:].mean() - 1) < 1e-12
    assert bootstrap_counts(3, 0, seed=0).shape == (1, 3)


def test_permutation_indicators():
    z = permutation_indicators(3, 8, 500, seed=0)
    assert z.shape == (500, 8) and (z.sum(1) == 3).all()
    np.testing.assert_allclose(z.mean(0), 3 / 8, atol=0.07)  # every model equally likely treated
    with pytest.raises(ValueError):
        permutation_indicators(0, 5, 10, seed=0)


def test_percentile_interval_is_numpys():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(200, 3))
    a[5, 1] = np.nan
    got = percentile_interval(a, 0.9)
    ref = np.stack([np.nanpercentile(a, 5, axis=0), np.nanpercentile(a, 95, axis=0)], -1)
    np.testing.assert_allclose(got, ref)
    assert np.isnan(percentile_interval(np.full((4, 2), np.nan))).all()


def test_p_values_by_hand():
    obs = np.array([1.0, 0.0, np.nan])
    perm = np.array([[0.5, 0.1, 1.0], [1.0, -0.1, 2.0], [2.0, np.nan, 0.0], [0.2, 0.3, 0.0]])
    # image 0: perms >= 1: 1.0, 2.0 -> (1+2)/(1+4); image 1: finite 0.1, -0.1, 0.3, >= 0: two -> 3/4
    np.testing.assert_allclose(p_values(obs, perm), [3 / 5, 3 / 4, np.nan])
