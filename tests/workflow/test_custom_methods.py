"""Bring your own explanation method (issue 18 item 4): the example function and a Captum class run
through the zoo study (explain -> effects -> figures) and TRACER's reliability, next to gradient."""

from __future__ import annotations

import os
import subprocess

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from causalxai import io
from causalxai.tracer.target_model import build_classifier

from .conftest import REPO, TINY_CONFIG

pytestmark = pytest.mark.workflow

METHODS = [
    "gradient",
    {"name": "methods:gradient_times_input", "label": "gxi", "batched": False},  # model by model
    "captum.attr.InputXGradient",  # batched (auto: checked on every chunk)
]


def test_custom_methods_run_through_explain_effects_and_reliability(snakemake_runner, tmp_path):
    torch.manual_seed(0)  # TRACER's target: given weights (untrained), not trained here (~50 s saved)
    net = build_classifier("alexnet28", in_channels=1, n_classes=10, dropout=0.5, image_size=28)
    torch.save(net.state_dict(), tmp_path / "target.pt")
    extra = tmp_path / "methods.yaml"
    extra.write_text(yaml.safe_dump({
        "zoo": {"n_models": 16},
        "explain": {"methods": METHODS, "shards": 1},
        "effects": {"bootstrap": 0, "permutations": 0},
        "tracer": {"model": {"weights": "target.pt"},
                   "reliability": {"methods": ["gradient", "methods:gradient_times_input"], "trials": 1,
                                   "bootstrap": 10}},
    }))
    d = "results/digits"
    targets = [f"{d}/effects.nc", f"{d}/figures/effect_correlations.png", f"{d}/tracer/reliability.nc"]
    cmd = snakemake_runner.command(tmp_path, targets=targets, cores=2, configfiles=[TINY_CONFIG, extra])
    env = {**snakemake_runner.env(), "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO / "examples")])}
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    assert res.returncode == 0, res.stderr[-4000:]
    assert "gxi (methods:gradient_times_input) runs model by model" in (tmp_path / "logs" / "digits" / "explain"
                                                                       / "gxi.1-of-1.log").read_text()

    effects = io.open(tmp_path / d / "effects.nc")
    assert effects["method"].values.tolist() == ["identity", "gradient", "gxi", "input_x_gradient"]
    corr = effects["corr"].sel({"effect": "total"}).to_dataframe().reset_index()
    table = corr.pivot_table(index=["method", "bucket"], columns="stat", values="corr", dropna=False)
    mean = effects["corr_mean"].sel({"effect": "total"}).to_dataframe().reset_index()
    print(table.to_string(), mean.pivot_table(index=["method", "bucket"], columns="stat", values="corr_mean",
                                              dropna=False).to_string(), sep="\n")  # the report's numbers (-s)
    assert np.isfinite(table.loc["gxi"].values).any() and np.isfinite(table.loc["gradient"].values).any()
    # x * grad by the example function model by model and by Captum batched: the same maps (float32
    # rounding, packed to 16 bits), so the same correlations
    np.testing.assert_allclose(table.loc["gxi"].values, table.loc["input_x_gradient"].values, atol=2e-3)
    assert not np.allclose(table.loc["gxi"].values, table.loc["gradient"].values, equal_nan=True)
    cate = pd.read_csv(tmp_path / d / "tables" / "effects_cate.csv")
    assert {"gradient", "gxi", "input_x_gradient"} <= set(cate["output"])

    # a custom method's entry is its maps' params: changing it plans that method's maps again, not the others'
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump({"explain": {"methods": [METHODS[0], {**METHODS[1], "batched": True},
                                                               METHODS[2]]}}))
    cmd = snakemake_runner.command(tmp_path, "-n", targets=targets, configfiles=[TINY_CONFIG, extra, changed])
    dry = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert snakemake_runner.planned_outputs(dry.stdout, "explain_shard") == [f"{d}/explanations/shards/gxi.1-of-1.nc"]
    jobs = snakemake_runner.planned_jobs(dry.stdout)
    assert jobs.get("explain_gather") == 1 and jobs.get("effects") == 1, jobs
    assert "predictions" not in jobs and "reliability" not in jobs, jobs  # upstream and TRACER's untouched

    rel = io.open(tmp_path / d / "tracer" / "reliability.nc")
    assert rel["method"].values.tolist() == ["tracer", "gradient", "gradient_times_input"]
    table = pd.read_csv(tmp_path / d / "tables" / "reliability.csv")
    assert (table["method"] == "gradient_times_input").sum() == 2  # both protocols
    print(table.to_string(index=False))
