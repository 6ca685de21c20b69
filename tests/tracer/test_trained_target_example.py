"""examples/trained_target.py: its three configs pass the config check and load the same trained model."""

from __future__ import annotations

import copy
import importlib
from pathlib import Path

import pytest
import torch
import yaml
from snakemake.utils import validate

from causalxai.config import check_config
from causalxai.data.dataset import load_digits
from causalxai.tracer.settings import ClassifierSettings
from causalxai.tracer.target_model import (
    dataset_tensors,
    load_pretrained_target,
    load_torchscript_target,
    load_trained_target,
)

REPO = Path(__file__).resolve().parents[2]
SCHEMA = REPO / "config" / "schema.yaml"

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.*` is deprecated:DeprecationWarning")


def test_the_example_gives_one_model_three_ways(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "examples"))
    example = importlib.import_module("trained_target")
    configs = example.main(tmp_path, epochs=1)
    monkeypatch.setenv("TRAINED_TARGET_WEIGHTS", str(tmp_path / "small_cnn_digits.pt"))
    base = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    for name, extra in configs.items():
        cfg = copy.deepcopy(base)
        cfg["tracer"]["model"].update(extra["tracer"].pop("model"))
        cfg["tracer"].update(extra["tracer"])
        validate(cfg, str(SCHEMA), set_default=True)
        check_config(cfg, schema=yaml.safe_load(SCHEMA.read_text()))  # raises on a config the workflow refuses
    data = load_digits(image_size=28, test_fraction=0.2, seed=0)
    x = dataset_tensors(data, "test")[0]
    state, _, ds_state = load_trained_target(
        data, ClassifierSettings.from_params({"architecture": "trained_target:small_cnn"}),
        tmp_path / "small_cnn_digits.pt")
    script, _, _ = load_torchscript_target(data, tmp_path / "small_cnn_digits.ts.pt")
    factory, _, _ = load_pretrained_target(
        data, ClassifierSettings.from_params({"architecture": "trained_target:pretrained"}))
    with torch.no_grad():
        want = state(x)
        assert torch.allclose(script(x), want, atol=1e-6) and torch.equal(factory(x), want)
    assert float(ds_state["test_accuracy"]) > 0.3  # trained (0.50 after the one epoch): 10 classes, chance 0.1
