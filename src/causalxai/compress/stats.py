"""Statistics of the compress step's controls (issue 16): an exact McNemar test of a model
against the original on the same test split, and a Welch comparison of accuracies over seeds.

* :func:`mcnemar_exact`: ``b`` = test samples the original classifies correctly and the
  model does not, ``c`` = the reverse; under the null (both models err equally often on the
  discordant samples) ``min(b, c) ~ Binomial(b + c, 1/2)``, and the exact two-sided p-value is
  ``min(1, 2·P[X ≤ min(b, c)])`` (McNemar 1947; the exact form: Edwards 1948), which equals
  ``scipy.stats.binomtest(min(b, c), b + c, 0.5).pvalue``. ``b + c = 0`` gives ``p = 1``.
* :func:`welch_comparison`: difference of mean accuracies of two sets of seeds, Welch's
  t statistic with the Welch-Satterthwaite degrees of freedom and its two-sided p-value.
  With 3 seeds per model the test has little power: a large p-value is no evidence of equality.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats as sps

__all__ = ["binom_two_sided_p", "mcnemar_exact", "welch_comparison"]


def binom_two_sided_p(k: Any, n: Any) -> np.ndarray:
    """``min(1, 2·P[X ≤ k])`` for ``X ~ Binomial(n, 1/2)``, element-wise, ``k ≤ n/2`` expected
    (``n = 0`` gives 1): ``scipy.stats.binom.cdf``, vectorised."""
    k = np.asarray(k, dtype=np.int64)
    n = np.asarray(n, dtype=np.int64)
    return np.minimum(1.0, 2.0 * sps.binom.cdf(np.minimum(k, n), n, 0.5))


def mcnemar_exact(original_correct: Any, model_correct: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact McNemar test of a model against the original on one test split (module docstring).

    Args:
        original_correct: booleans ``(..., n_test)``: the original classifies the sample correctly.
        model_correct: booleans of the same shape for the model (leading axes e.g. seeds).

    Returns:
        ``(b, c, p)`` over the leading axes: ``b`` original right and model wrong, ``c`` the
        reverse, ``p`` the exact two-sided p-value.
    """
    a = np.asarray(original_correct, dtype=bool)
    m = np.asarray(model_correct, dtype=bool)
    a, m = np.broadcast_arrays(a, m)
    b = np.sum(a & ~m, axis=-1).astype(np.int64)
    c = np.sum(~a & m, axis=-1).astype(np.int64)
    return b, c, binom_two_sided_p(np.minimum(b, c), b + c)


def welch_comparison(a: Any, b: Any) -> dict[str, float]:
    """Welch's two-sample t test of ``mean(a) − mean(b)`` (e.g. a TRACER model's accuracies
    over seeds against a control's).

    Returns:
        ``{"diff", "t", "df", "p"}``; ``t``, ``df``, ``p`` are NaN when a side has fewer than
        two values or both variances are zero.
    """
    a = np.asarray(a, dtype=float).ravel()
    b = np.asarray(b, dtype=float).ravel()
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    diff = float(a.mean() - b.mean()) if a.size and b.size else float("nan")
    nan = {"diff": diff, "t": float("nan"), "df": float("nan"), "p": float("nan")}
    if a.size < 2 or b.size < 2:
        return nan
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    se2 = va + vb
    if se2 <= 0:
        return nan
    t = diff / np.sqrt(se2)
    df = se2**2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))
    return {"diff": diff, "t": float(t), "df": float(df), "p": float(2.0 * sps.t.sf(abs(t), df))}
