"""Bandwidth rules: the fixed 1/d and the median heuristic against NumPy."""

import numpy as np
import pytest
import torch

from causalxai.study.estimators.bandwidth import fixed_gamma, median_gamma


def test_fixed_gamma():
    assert fixed_gamma(10) == 0.1 and fixed_gamma(784) == 1 / 784
    with pytest.raises(ValueError):
        fixed_gamma(0)


def test_median_gamma_ignores_nan_and_falls_back():
    d = np.array([[1.0, 2.0, 4.0, np.nan], [0.0, 0.0, 0.0, 0.0], [np.nan] * 4, [3.0, 5.0, 1.0, 2.0]])
    got = median_gamma(torch.tensor(d)).numpy()
    np.testing.assert_allclose(got, [1 / (2 * 2.0), 0.5, 0.5, 1 / (2 * np.median([3, 5, 1, 2]))])
    # rounding-level medians of identical outputs count as 0
    tiny = median_gamma(torch.tensor([[1e-20, 1e-20]]), scale=torch.tensor([1.0])).numpy()
    np.testing.assert_allclose(tiny, [0.5])


@pytest.mark.parametrize("n_pairs", [1, 2, 7, 8])
def test_median_gamma_of_finite_pairs_is_numpys_median_exactly(n_pairs):
    """Rows without NaN take the partition path: the same numbers as NumPy's median, bit for bit."""
    d = np.random.default_rng(n_pairs).exponential(size=(5, n_pairs))
    got = median_gamma(torch.tensor(d)).numpy()
    assert np.array_equal(got, 1.0 / (2.0 * np.median(d, axis=-1)))
