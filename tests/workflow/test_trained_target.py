"""Bring your own trained model (issue 18 item 1): tracer.model.weights is loaded, not trained."""

from __future__ import annotations

import pytest
import torch
import yaml

from causalxai import io
from causalxai.tracer.target_model import build_classifier

from .conftest import TINY_CONFIG

pytestmark = pytest.mark.workflow


def test_the_target_model_step_loads_the_users_weights(snakemake_runner, tmp_path):
    torch.manual_seed(3)
    mine = build_classifier("alexnet28", in_channels=1, n_classes=10, dropout=0.5, image_size=28)
    torch.save(mine.state_dict(), tmp_path / "mine_digits.pt")
    extra = tmp_path / "weights.yaml"
    extra.write_text(yaml.safe_dump({"tracer": {"model": {"weights": "mine_{dataset}.pt", "epochs": 99}}}))
    res = snakemake_runner.run(tmp_path, targets=["results/digits/tracer/target_model.nc"], cores=2,
                               configfiles=[TINY_CONFIG, extra])
    assert res.returncode == 0, res.stderr[-3000:]
    ds = io.open(tmp_path / "results" / "digits" / "tracer" / "target_model.nc")
    assert ds.attrs["weights"] == "mine_digits.pt" and ds.sizes["epoch"] == 0  # not trained: 99 epochs unused
    saved = torch.load(tmp_path / "results" / "digits" / "tracer" / "target_model.pt", weights_only=True)
    for name, value in mine.state_dict().items():
        assert torch.equal(saved["state_dict"][name], value), name
    assert "mine_digits.pt" in ds.attrs["inputs"]  # the file is the step's input: a new one re-runs TRACER
