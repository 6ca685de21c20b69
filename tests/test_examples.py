"""The scripts under ``examples/`` run as the README says, and give sound results."""

from __future__ import annotations

import runpy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _load(name: str) -> dict:
    return runpy.run_path(str(EXAMPLES / name), run_name="example")


def test_tracer_example_runs_as_a_script():
    """``python examples/tracer_on_your_model.py`` from the repository root, as its docstring says."""
    res = subprocess.run([sys.executable, str(EXAMPLES / "tracer_on_your_model.py")], capture_output=True,
                         text=True, cwd=EXAMPLES.parent, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "causal nodes per sample" in res.stdout and "random_foreground" in res.stdout


def test_tracer_example_results():
    out = _load("tracer_on_your_model.py")["main"](n_samples=6)
    assert out["accuracy"] > 0.5  # a trained model, not chance (0.1)
    nodes, mech, rel = out["nodes"], out["mechanisms"], out["reliability"]
    groups = nodes["group"].values
    assert groups.shape == (6, 4)
    # a causal node is a run of consecutive layers (Def. 3): ids start at 0 and step by 0 or 1
    assert (groups[:, 0] == 0).all() and np.isin(np.diff(groups, axis=1), [0, 1]).all()
    assert nodes["n_groups"].values.tolist() == (groups.max(axis=1) + 1).tolist()
    assert mech["n_samples"].sum() == 6
    assert mech["share"].sum() == pytest.approx(1.0)
    score = rel["mean"].sel(protocol="paper")
    assert set(score["method"].values) == {"tracer", "gradient", "occlusion", "random_foreground"}
    assert ((score >= 0) & (score <= 1)).all()
