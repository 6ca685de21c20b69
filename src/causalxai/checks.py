"""Degenerate results refused: a step whose headline result carries no information fails.

A step can run to the end and still produce nothing: every value NaN (no cell had the
models or samples the estimator needs), or one value everywhere (e.g. with one model on
each side of a cell, eq. (4) of paper 000 gives ``2 − 2·k(a, b)`` for every cell, and every
correlation of such ITEs is NaN). Written to disk, such a result would flow into empty
figures and NaN tables with exit status 0. The steps call :func:`require_informative` on
their headline variables just before they return, so the job fails instead, with a
message that names the step, the variable, what was found, the likely causes (the config
keys) and what to change.

The criterion is always about the **whole** variable (or a named slice of it): NaN in some
cells is normal (small or empty cells, dropped maps, padded groups) and never refused.

* **all NaN**: no finite value at all (``±inf`` counts as not finite);
* **constant**: at least two finite values and all of them equal, within a relative
  tolerance ``rtol`` of their magnitude (``max − min ≤ rtol · max(|min|, |max|)``; all
  exactly 0 is constant). Only checked where variation is expected (``constant=True``).

:func:`degeneracy` returns the finding without raising, for results that are only flagged
(a warning in the log and an attribute in the file) rather than refused.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

__all__ = ["RTOL", "DegenerateResultError", "degeneracy", "flag_degenerate", "refuse", "require_informative"]

#: relative spread below which finite values count as one constant (float64 round-off of
#: one value computed in different cells is ~1e-16; real variation is far above 1e-9)
RTOL = 1e-9


class DegenerateResultError(ValueError):
    """A step's headline result carries no information: all NaN, or constant where it must vary.

    Attributes:
        step: the step (rule) whose result it is.
        variable: the variable (and slice) that is degenerate.
        finding: what was found, in short: ``"all NaN"``, ``"constant"``, or a step's own
            finding (:func:`refuse`).
    """

    def __init__(self, message: str, *, step: str, variable: str, finding: str):
        super().__init__(message)
        self.step, self.variable, self.finding = step, variable, finding


def _values(values: Any) -> np.ndarray:
    """The values as a flat float64 array (DataArray, tensor, list or scalar)."""
    if hasattr(values, "detach"):  # a torch tensor
        values = values.detach().cpu().numpy()
    elif hasattr(values, "values") and not isinstance(values, np.ndarray):  # an xarray DataArray
        values = values.values
    return np.asarray(values, dtype=np.float64).reshape(-1)


def degeneracy(values: Any, *, constant: bool = True, rtol: float = RTOL) -> str | None:
    """What is degenerate about ``values``, or None.

    Args:
        values: an array, DataArray or tensor (any shape; NaN are missing cells).
        constant: also report a constant variable (at least two finite values, all equal).
        rtol: the relative tolerance of "equal" (module docstring).

    Returns:
        ``"all NaN (none of its N values is finite)"``, ``"constant: all K finite values
        equal V"``, or None when the variable is informative.
    """
    v = _values(values)
    finite = v[np.isfinite(v)]
    if finite.size == 0:
        return f"all NaN (none of its {v.size} values is finite)"
    if constant and finite.size >= 2:
        lo, hi = float(finite.min()), float(finite.max())
        if hi - lo <= rtol * max(abs(lo), abs(hi)):
            nan = f" (the other {v.size - finite.size} NaN)" if finite.size < v.size else ""
            return f"constant: all {finite.size} finite values equal {lo:.10g}{nan}"
    return None


def refuse(step: str, name: str, finding: str, *, causes: str, fix: str) -> None:
    """Raise the :class:`DegenerateResultError` of a finding a step made itself (e.g. "the
    same for every model"), in the message format of :func:`require_informative`."""
    raise DegenerateResultError(
        f"{step}: {name} is {finding}, so the result carries no information. Likely causes: {causes}. "
        f"To fix: {fix}. (A degenerate result is refused rather than written; README: 'Degenerate results'.)",
        step=step, variable=name, finding=finding.split(" (")[0].split(":")[0],
    )


def require_informative(
    values: Any,
    name: str,
    step: str,
    *,
    causes: str,
    fix: str,
    constant: bool = True,
    rtol: float = RTOL,
) -> None:
    """Raise :class:`DegenerateResultError` if ``values`` is all NaN (or, with ``constant``,
    one constant value): the step's result carries no information.

    Args:
        values: the headline variable (or a slice of it), any shape.
        name: how the message names it, e.g. ``"ite_y (effects.nc)"``.
        step: the step (rule) that made it.
        causes: the likely causes, naming the config keys and their values.
        fix: what to change.
        constant: also refuse a constant variable (where it must vary).
        rtol: relative tolerance of "constant" (:data:`RTOL`).
    """
    finding = degeneracy(values, constant=constant, rtol=rtol)
    if finding is not None:
        refuse(step, name, finding, causes=causes, fix=fix)


def flag_degenerate(
    values: Any,
    name: str,
    step: str,
    *,
    causes: str,
    fix: str,
    logger: logging.Logger,
    constant: bool = True,
    rtol: float = RTOL,
) -> str | None:
    """:func:`require_informative`'s check, for a result that is flagged, not refused: logs a
    warning and returns its text (for the output's attributes), or None when informative."""
    finding = degeneracy(values, constant=constant, rtol=rtol)
    if finding is None:
        return None
    text = f"{step}: {name} is {finding}. Likely causes: {causes}. To fix: {fix}."
    logger.warning("%s", text)
    return text
