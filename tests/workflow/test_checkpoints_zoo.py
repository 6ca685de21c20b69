"""A zoo of any architecture (issue 18 item 5): zoo.source checkpoints runs the zoo study
(zoo -> buckets -> predictions -> explain (gradient) -> effects) on a folder of state dicts of a
two-convolution CNN and a CSV of hyperparameters, built here: 12 models trained one epoch on the digits."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
import yaml
from sklearn.datasets import load_digits

from causalxai import io

from .conftest import TINY_CONFIG

pytestmark = pytest.mark.workflow

ARCH = '''
from torch import nn


def two_conv(width=4):
    return nn.Sequential(nn.Conv2d(1, width, 3, stride=2), nn.ReLU(), nn.Conv2d(width, width, 3, stride=2),
                         nn.ReLU(), nn.Flatten(), nn.Linear(36 * width, 10))
'''


def _train_zoo(folder):
    """12 models: learning rate x optimizer x 3 seeds, one epoch on the digits (28 x 28, in [-1, 1])."""
    namespace: dict = {}
    exec(ARCH, namespace)  # the architecture the workflow imports from the working directory
    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32)[:, None] * (255 / 16)
    x = F.interpolate(x, size=28, mode="bilinear", align_corners=False) / 255 * 2 - 1
    y = torch.tensor(d.target)
    rows = []
    for i, (lr, opt, seed) in enumerate((lr, opt, seed) for lr in (0.01, 0.1) for opt in ("sgd", "adam")
                                        for seed in range(3)):
        torch.manual_seed(seed)
        model = namespace["two_conv"]()
        optim = (torch.optim.SGD if opt == "sgd" else torch.optim.Adam)(model.parameters(), lr=lr)
        for b in torch.randperm(len(y)).split(32):
            optim.zero_grad()
            F.cross_entropy(model(x[b]), y[b]).backward()
            optim.step()
        torch.save(model.state_dict(), folder / f"model_{i:02d}.pt")
        rows.append({"checkpoint": f"model_{i:02d}.pt", "learning_rate": lr, "optimizer": opt})
    pd.DataFrame(rows).to_csv(folder / "sweep.csv", index=False)


def test_the_zoo_study_runs_on_a_checkpoints_zoo(snakemake_runner, tmp_path):
    (tmp_path / "my_arch.py").write_text(ARCH)
    (tmp_path / "ckpt").mkdir()
    _train_zoo(tmp_path / "ckpt")
    extra = tmp_path / "zoo.yaml"
    extra.write_text(yaml.safe_dump({
        "zoo": {"source": "checkpoints", "checkpoints": {
            "dir": "ckpt", "table": "ckpt/sweep.csv", "file_column": "checkpoint", "architecture": "my_arch:two_conv",
            "hparams": {"learning_rate": {"type": "numerical", "markers": [0.01, 0.1], "log": True},
                        "optimizer": {"type": "categorical"}}}},
        "buckets": {"edges": [0, 50, 100]},
        "explain": {"methods": ["gradient"], "shards": 1},
        "effects": {"figures": {"hparam": "optimizer", "kernel_comparison": "optimizer",
                                "kernel_example": {"hparam": "learning_rate", "value": "0.1"}}},
    }))
    res = snakemake_runner.run(tmp_path, targets=["results/digits/effects.nc"], cores=2,
                               configfiles=[TINY_CONFIG, extra])
    assert res.returncode == 0, res.stderr[-3000:]
    zoo = io.open(tmp_path / "results" / "digits" / "zoo.nc")
    assert zoo.attrs["weights_layout"] == "state_dict" and zoo.attrs["architecture"] == "my_arch:two_conv"
    assert zoo.sizes["model"] == 12 and (zoo["test_accuracy"].values > 0.15).sum() >= 6  # trained, computed here
    effects = io.open(tmp_path / "results" / "digits" / "effects.nc")
    real = [str(h) for h, k in zip(effects["hparam"].values, effects["hparam_kind"].values) if str(k) == "real"]
    assert sorted(real) == ["learning_rate", "optimizer"]
    assert list(effects["method"].values) == ["identity", "gradient"]
    ite = effects["ite_e"].sel({"effect": "total", "method": "gradient", "hparam": "optimizer"}).values
    assert np.isfinite(ite).any()
