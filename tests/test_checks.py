"""causalxai.checks: what counts as degenerate (all NaN; constant where variation is expected), the
message, and what does not count (some NaN, tiny but real variation)."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
import xarray as xr

from causalxai.checks import RTOL, DegenerateResultError, degeneracy, flag_degenerate, refuse, require_informative


@pytest.mark.parametrize("values", [
    np.full((3, 4), np.nan),
    np.array([np.nan, np.inf, -np.inf]),  # not finite counts as missing
    np.array([]),
    xr.DataArray(np.full(5, np.nan), dims="x"),
    torch.full((2, 2), float("nan")),
])
def test_all_nan(values):
    assert degeneracy(values).startswith("all NaN (none of its")
    assert degeneracy(values, constant=False).startswith("all NaN")


@pytest.mark.parametrize("values, value", [
    (np.zeros(6), "0"),
    (np.array([np.nan, 2 - 2 * np.exp(-0.5), np.nan, 2 - 2 * np.exp(-0.5) * (1 + 1e-15)]), "0.7869386806"),
    (np.array([[0.25, 0.25], [0.25, np.nan]]), "0.25"),
])
def test_constant(values, value):
    finding = degeneracy(values)
    assert finding.startswith(f"constant: all {np.isfinite(values).sum()} finite values equal {value}")
    assert degeneracy(values, constant=False) is None  # only where variation is expected


@pytest.mark.parametrize("values", [
    np.array([0.1, 0.2]),
    np.array([np.nan] * 99 + [0.3]),  # one finite value: nothing to compare, not constant
    np.array([1.0, 1.0 + 1e-6]),  # tiny but real variation
    np.array([0.0, 1e-300]),
    np.array([np.nan, 0.1, np.nan, 0.5]),  # some NaN: normal
])
def test_informative(values):
    assert degeneracy(values) is None
    require_informative(values, "v", "step", causes="c", fix="f")


def test_tolerance_is_relative():
    assert degeneracy(np.array([1.0, 1.0 + RTOL / 2])) is not None
    assert degeneracy(np.array([1e-12, 1e-12 * (1 + 1e-6)])) is None  # small values vary relatively
    assert degeneracy(np.array([1.0, 1.01]), rtol=0.1) is not None


def test_message_names_step_variable_finding_causes_and_fix():
    with pytest.raises(DegenerateResultError) as err:
        require_informative(np.full(4, 2.0), "ite_y (effects.nc)", "effects", causes="one model a side",
                            fix="raise effects.max_models_per_group")
    e = err.value
    assert isinstance(e, ValueError) and (e.step, e.variable, e.finding) == ("effects", "ite_y (effects.nc)",
                                                                              "constant")
    assert str(e).startswith("effects: ite_y (effects.nc) is constant: all 4 finite values equal 2, so the result "
                             "carries no information. Likely causes: one model a side. To fix: raise "
                             "effects.max_models_per_group.")
    with pytest.raises(DegenerateResultError) as err:
        require_informative([np.nan], "x", "s", causes="c", fix="f")
    assert err.value.finding == "all NaN"
    with pytest.raises(DegenerateResultError, match="^s: x is the same everywhere, so") as err:
        refuse("s", "x", "the same everywhere", causes="c", fix="f")
    assert err.value.finding == "the same everywhere"


def test_flag_logs_and_returns_the_text(caplog):
    log = logging.getLogger("test_checks")
    with caplog.at_level(logging.WARNING):
        text = flag_degenerate(np.zeros(3), "score", "reliability", causes="c", fix="f", logger=log)
    assert text == "reliability: score is constant: all 3 finite values equal 0. Likely causes: c. To fix: f."
    assert text in caplog.text
    assert flag_degenerate(np.arange(3.0), "score", "reliability", causes="c", fix="f", logger=log) is None
