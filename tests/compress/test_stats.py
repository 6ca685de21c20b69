"""McNemar's exact test and the Welch comparison of the compress step's controls."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from causalxai.compress.stats import binom_two_sided_p, mcnemar_exact, welch_comparison


def test_mcnemar_hand_case():
    # original right on samples 0-5, model right on 0-2 and 6: b = 3 (3, 4, 5), c = 1 (6)
    orig = np.array([1, 1, 1, 1, 1, 1, 0, 0], dtype=bool)
    model = np.array([1, 1, 1, 0, 0, 0, 1, 0], dtype=bool)
    b, c, p = mcnemar_exact(orig, model)
    assert (int(b), int(c)) == (3, 1)
    # P[X <= 1], X ~ Bin(4, 1/2) = (1 + 4) / 16; two-sided: 10/16
    assert float(p) == pytest.approx(10 / 16, rel=1e-12)
    # identical predictions: no discordant pair, p = 1
    assert mcnemar_exact(orig, orig)[2] == 1.0


@pytest.mark.parametrize("k,n", [(0, 1), (0, 5), (2, 10), (7, 15), (12, 60), (40, 200), (150, 300), (3, 3)])
def test_binom_p_matches_scipy_binomtest(k, n):
    k = min(k, n - k)
    assert float(binom_two_sided_p(k, n)) == pytest.approx(stats.binomtest(k, n, 0.5).pvalue, rel=1e-9, abs=1e-300)


def test_mcnemar_over_seeds_matches_scipy():
    rng = np.random.default_rng(0)
    orig = rng.random(300) < 0.95
    models = rng.random((3, 300)) < np.array([[0.9], [0.95], [0.97]])
    b, c, p = mcnemar_exact(orig, models)
    for s in range(3):
        bb = int(np.sum(orig & ~models[s]))
        cc = int(np.sum(~orig & models[s]))
        assert (b[s], c[s]) == (bb, cc)
        assert p[s] == pytest.approx(stats.binomtest(min(bb, cc), bb + cc, 0.5).pvalue, rel=1e-9)


def test_welch_matches_scipy():
    a, b = [0.97, 0.975, 0.968], [0.95, 0.962, 0.94]
    out = welch_comparison(a, b)
    ref = stats.ttest_ind(a, b, equal_var=False)
    assert out["diff"] == pytest.approx(np.mean(a) - np.mean(b))
    assert out["t"] == pytest.approx(ref.statistic, rel=1e-10)
    assert out["p"] == pytest.approx(ref.pvalue, rel=1e-10)
    # Welch-Satterthwaite by hand
    va, vb = np.var(a, ddof=1) / 3, np.var(b, ddof=1) / 3
    assert out["df"] == pytest.approx((va + vb) ** 2 / (va**2 / 2 + vb**2 / 2))
    single = welch_comparison([0.9], b)
    assert np.isnan(single["p"]) and single["diff"] == pytest.approx(0.9 - np.mean(b))
