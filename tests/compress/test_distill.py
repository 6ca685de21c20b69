"""Theorem 1 without retraining: a node's replacement fitted by distillation, swapped into the original."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch import nn

from causalxai.compress.build import plan_nodes
from causalxai.compress.distill import distill_nodes, swapped_model
from tests.compress.test_compress import SHAPE, data, tiny


def linear_net() -> nn.Sequential:
    torch.manual_seed(3)
    return nn.Sequential(OrderedDict([
        ("flat", nn.Flatten()), ("fc1", nn.Linear(64, 8)), ("fc2", nn.Linear(8, 6)), ("r", nn.ReLU()),
        ("out", nn.Linear(6, 3)),
    ])).eval()


def test_swapped_model_without_replacement_is_the_original():
    model = tiny().eval()
    plans = plan_nodes(model, "r1+r2|r3|out", SHAPE, reinit=False)
    x, _ = data(10)
    with torch.no_grad():
        torch.testing.assert_close(swapped_model(model, {}, plans)(x), model(x))


def test_distilling_a_linear_node_recovers_it():
    # fc1+fc2 is one linear map 64 -> 6: a single Linear can reproduce it exactly
    model = linear_net()
    x, y = data(400)
    with torch.no_grad():
        y = model(x).argmax(1)  # labels the original gets right: its accuracy is 1
    out = distill_nodes(model, "fc1+fc2|r|out", x[:300], x[300:], y[300:], epochs=200, batch_size=100, lr=2e-2, seed=0)
    assert out["node"] == [1]
    assert out["original_accuracy"] == 1.0
    rep = out["replacements"][1]
    # the reported MSE and R^2 against a float64 NumPy recomputation on the test images
    with torch.no_grad():
        target = model.fc2(model.fc1(x[300:].flatten(1))).double().numpy()
        pred = rep(x[300:]).double().numpy()
    mse = np.mean((pred - target) ** 2)
    assert out["mse"][0] == pytest.approx(mse, rel=1e-6)
    assert out["r2"][0] == pytest.approx(1 - mse / target.var(), rel=1e-6)
    assert out["r2"][0] > 0.999
    # swapped in: the original's accuracy, computed by hand
    with torch.no_grad():
        logits = model.out(model.r(rep(x[300:])))
    assert out["accuracy"][0] == pytest.approx(float((logits.argmax(1) == y[300:]).float().mean()))
    assert out["accuracy_all"] == out["accuracy"][0] >= 0.95
    # seeded
    again = distill_nodes(model, "fc1+fc2|r|out", x[:300], x[300:], y[300:], epochs=2, batch_size=16, lr=1e-2, seed=0)
    twice = distill_nodes(model, "fc1+fc2|r|out", x[:300], x[300:], y[300:], epochs=2, batch_size=16, lr=1e-2, seed=0)
    assert again["mse"][0] == twice["mse"][0]


def test_distill_without_multilayer_nodes_is_the_original():
    model = tiny().eval()
    x, y = data(24)
    out = distill_nodes(model, "r1|r2|r3|out", x[:12], x[12:], y[12:], epochs=1, batch_size=8, lr=1e-3, seed=0)
    assert out["node"] == [] and out["accuracy_all"] == out["original_accuracy"]
    # two nodes of several layers: one accuracy each, and all together
    out = distill_nodes(model, "r1+r2|r3+out", x[:12], x[12:], y[12:], epochs=1, batch_size=8, lr=1e-3, seed=0)
    assert out["node"] == [1, 2] and out["accuracy"].shape == (2,) and 0 <= out["accuracy_all"] <= 1
