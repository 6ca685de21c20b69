"""Bring your own data (issue 18 item 3): the tabular breast_cancer through TRACER (mlp target, 1 x k
windows) to its mechanisms, reliability and sample figure, and a user .npz image set through the
dataset rule, in one small run; the netCDF outputs read back."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from causalxai import io
from causalxai.data.dataset import to_raw

from .conftest import TINY_CONFIG

pytestmark = pytest.mark.workflow


def test_breast_cancer_runs_through_tracer_and_a_user_npz_becomes_a_dataset(snakemake_runner, tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(20, 3, 6, 9), dtype=np.uint8)  # 3 channels, non-square
    np.savez(tmp_path / "mine.npz", x_train=x[:14], y_train=np.arange(14) % 4, x_test=x[14:], y_test=np.arange(6) % 4)
    extra = tmp_path / "custom.yaml"
    extra.write_text(yaml.safe_dump({
        "data": {"custom": {"mine": {"path": "mine.npz"}}},
        "tracer": {"datasets": ["breast_cancer"], "n_samples": 4, "model": {"epochs": 2},
                   "interventions": {"patch": 3, "stride": 1},
                   "reliability": {"n_samples": 4, "trials": 2, "lime_samples": 10, "superpixel": 5, "bootstrap": 10},
                   "mechanisms": {"bootstrap": 5}, "figures": {"samples": 1}},
    }))
    targets = ["results/breast_cancer/tracer/mechanisms.nc", "results/breast_cancer/tracer/reliability.nc",
               "results/breast_cancer/figures/tracer/contributions_0.png", "results/mine/dataset.nc"]
    res = snakemake_runner.run(tmp_path, targets=targets, cores=2, configfiles=[TINY_CONFIG, extra])
    assert res.returncode == 0, res.stderr[-3000:]
    results = tmp_path / "results"

    ds = io.open(results / "mine" / "dataset.nc")  # the npz, scaled from [0, 255], channels kept
    assert ds["image"].dims == ("sample", "channel", "y", "x") and ds.attrs["n_classes"] == 4
    np.testing.assert_allclose(to_raw(ds["image"].values[:14]), x[:14] / 255.0, atol=1e-6)
    assert "mine.npz" in ds.attrs["inputs"]  # the file is the step's input: a new one re-runs it

    target = io.open(results / "breast_cancer" / "tracer" / "target_model.nc")
    assert target.attrs["architecture"] == "mlp" and target.attrs["n_test"] == 114
    inter = io.open(results / "breast_cancer" / "tracer" / "interventions.nc")
    # 1 x 3 windows, stride 1, over the 30 features (paper 004 App. D): 28 interventions
    assert inter.sizes["intervention"] == 28 and json.loads(inter.attrs["patch_size"]) == [1, 3]
    assert list(inter["layer"].values) == ["fc1", "relu1", "fc2", "relu2", "fc3", "relu3", "fc4"]
    mech = io.open(results / "breast_cancer" / "tracer" / "mechanisms.nc")
    table = (results / "breast_cancer" / "tables" / "mechanisms.csv").read_text().splitlines()
    assert table[0].startswith("mechanism,n_nodes") and table[-1].endswith(",1.0")  # coverage reaches 1
    assert mech.sizes  # read back
    rel = io.open(results / "breast_cancer" / "tracer" / "reliability.nc")
    methods = list(rel["method"].values)
    assert "grad_cam" not in methods and {"tracer", "gradient", "lime", "kernel_shap", "occlusion"} <= set(methods)
    assert json.loads(rel.attrs["config"])["methods"] == [m for m in methods if m != "tracer"]
    assert (results / "breast_cancer" / "figures" / "tracer" / "contributions_0.png").stat().st_size > 0
