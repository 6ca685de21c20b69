"""TRACER's layers in the order forward runs them, whatever order a model registers its modules in
(issue 17): analyse_one records them in forward order, and check_layers refuses what TRACER cannot
observe."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from causalxai.tracer.interventions import analyse_one, layer_kl_sign
from causalxai.tracer.model import check_layers, observed_layers, trace_forward
from causalxai.tracer.settings import TracerSettings


class FcFirst(nn.Module):
    """Registers its classifier before its features; forward runs conv, relu, flatten, fc."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2 * 6 * 6, 3)
        self.conv = nn.Conv2d(1, 2, 3, padding=1)
        self.relu = nn.ReLU()
        self.flatten = nn.Flatten()

    def forward(self, x):
        return self.fc(self.flatten(self.relu(self.conv(x))))


def _model() -> FcFirst:
    torch.manual_seed(0)
    return FcFirst().eval()


def test_analyse_one_records_the_layers_in_forward_order_not_registration_order():
    model, x = _model(), torch.randn(1, 6, 6)
    assert observed_layers(model, ["conv", "relu", "fc"]) == ["fc", "conv", "relu"]  # registration order
    r = analyse_one(model, x, TracerSettings(layers=["conv", "relu", "fc"], patch=2, stride=2))
    assert r["layers"] == ["conv", "relu", "fc"]
    # the last causal node is the output: its KL is the logits' (the prediction's change)
    kl, _ = layer_kl_sign(r["logits"])
    assert torch.allclose(r["kl"][:, -1], kl[1:])


def test_trace_forward_and_check_layers_follow_the_forward_pass():
    model, x = _model(), torch.zeros(2, 1, 6, 6)
    trace = trace_forward(model, x)
    assert trace.leaves == ["conv", "relu", "flatten", "fc"]
    assert trace.produces_output("fc") and not trace.produces_output("relu")
    assert check_layers(model, ["conv", "Flatten", "fc"], x) == ["conv", "flatten", "fc"]
    assert check_layers(model, "all", x) == ["conv", "relu", "flatten", "fc"]
    assert all(not m._forward_hooks for m in model.modules())  # hooks removed


@pytest.mark.parametrize(
    "select, needle",
    [
        (["conv", "conv", "fc"], r"\['conv'\] more than once"),
        (["conv", "fc9"], r"\['fc9'\] is not a module of FcFirst; its leaf modules in forward order are "
                          r"\['conv', 'relu', 'flatten', 'fc'\]"),
        (["fc", "conv"], r"lists \['fc', 'conv'\], but forward runs them as \['conv', 'fc'\]"),
        (["conv", "relu"], r"ends at 'relu', which is not the model's output.*end the list at 'fc'"),
        (["fc", "Linear"], r"selects 1 layer"),
    ],
)
def test_check_layers_refuses(select, needle):
    with pytest.raises(ValueError, match=needle):
        check_layers(_model(), select, torch.zeros(2, 1, 6, 6))


def test_check_layers_refuses_a_module_run_twice_and_one_that_never_runs():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin, self.act, self.unused, self.out = nn.Linear(3, 3), nn.ReLU(), nn.Linear(3, 3), nn.Linear(3, 2)

        def forward(self, x):
            return self.out(self.act(self.lin(self.act(x))))

    x = torch.zeros(2, 3)
    with pytest.raises(ValueError, match=r"'act' runs 2 times per forward pass"):
        check_layers(Twice(), ["act", "out"], x)
    with pytest.raises(ValueError, match=r"\['unused'\] never run in the forward pass"):
        check_layers(Twice(), ["unused", "out"], x)
    assert check_layers(Twice(), ["lin", "out"], x) == ["lin", "out"]
