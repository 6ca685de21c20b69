"""The TRACER target from a TorchScript file or from a factory that returns a trained model (issue 18 item 1)."""

from __future__ import annotations

import dataclasses
import warnings
from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch import nn

from causalxai.compress.build import compress_skip_reason
from causalxai.data.dataset import load_digits
from causalxai.tracer.interventions import record_activations
from causalxai.tracer.model import check_layers
from causalxai.tracer.settings import ClassifierSettings
from causalxai.tracer.target_model import (
    ScriptedChain,
    dataset_tensors,
    is_torchscript,
    load_pretrained_target,
    load_target_model,
    load_torchscript_target,
    save_target_model,
    target_checkpoint,
)

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.*` is deprecated:DeprecationWarning")


@pytest.fixture(scope="module")
def digits():
    return load_digits(image_size=12, test_fraction=0.3, seed=0)


def _net(side: int, classes: int = 10) -> nn.Sequential:
    torch.manual_seed(2)
    features = nn.Sequential(OrderedDict(conv=nn.Conv2d(1, 3, 3, padding=1), relu=nn.ReLU()))
    return nn.Sequential(OrderedDict(features=features, flatten=nn.Flatten(),
                                     fc=nn.Linear(3 * side * side, classes))).eval()


def _script(net: nn.Module, path) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(net), str(path))
    return str(path)


def test_a_torchscript_sequential_is_observed_layer_by_layer(digits, tmp_path):
    net = _net(12)
    path = _script(net, tmp_path / "net.pt")
    torch.save(net.state_dict(), tmp_path / "state.pt")
    (tmp_path / "text.pt").write_text("not torch")
    assert is_torchscript(path) and not is_torchscript(tmp_path / "state.pt") and not is_torchscript(
        tmp_path / "text.pt")
    model, kwargs, ds = load_torchscript_target(digits, path)
    assert isinstance(model, ScriptedChain) and kwargs == {}
    assert ds.attrs["architecture"] == "torchscript" and ds.attrs["weights"] == path
    x, y = dataset_tensors(digits, "test")
    with torch.no_grad():
        want = net(x)
        features = net.features(x)
    assert torch.equal(model(x), want)
    expected_accuracy = float((want.argmax(1) == y).float().mean())
    assert float(ds["test_accuracy"]) == pytest.approx(expected_accuracy)
    assert int(ds["n_params"]) == sum(p.numel() for p in net.parameters())  # the scripted parameters count
    # forward hooks record the scripted layers, nested ones included, by their names
    assert check_layers(model, ["features.relu", "features", "fc"], x[:2]) == ["features.relu", "features", "fc"]
    acts = record_activations(model, x, ["features", "fc"])
    assert torch.equal(acts["features"], features) and torch.equal(acts["fc"], want)
    # the target_model step writes it back as TorchScript; the later steps load it
    save_target_model(model, "torchscript", kwargs, tmp_path / "target_model.pt")
    assert is_torchscript(tmp_path / "target_model.pt")
    assert target_checkpoint(tmp_path / "target_model.pt") == {"architecture": "torchscript", "kwargs": {}}
    again = load_target_model(tmp_path / "target_model.pt")
    assert torch.equal(again(x), want) and not again.training
    model.train()
    assert model.scripted.training and model[0].conv.scripted.training  # the mode reaches the scripted modules
    assert "TorchScript target" in compress_skip_reason(model.eval(), ["features", "fc"], (1, 12, 12))


class _NotSequential(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(144, 10)

    def forward(self, x):
        return self.fc(x.flatten(1))


@pytest.mark.parametrize(
    "net, needle",
    [
        (_net(8), r"bad\.pt cannot take inputs of shape 1x12x12 \(RuntimeError"),  # trained on 8x8 inputs
        (_NotSequential(), r"bad\.pt is a TorchScript _NotSequential, not a scripted nn\.Sequential; torch refuses "
                           r"forward hooks inside TorchScript"),
        (_net(12, classes=5), r"TorchScript model .*bad\.pt returns \(2, 5\) for 2 inputs 1x12x12, not logits "
                              r"\(2, 10\)"),
    ],
)
def test_a_torchscript_target_tracer_cannot_use_is_refused_naming_the_file(digits, tmp_path, net, needle):
    path = _script(net, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match=needle):
        load_torchscript_target(digits, path)


def test_a_pretrained_factory_is_used_with_its_own_weights(digits, tmp_path, monkeypatch):
    (tmp_path / "mynets.py").write_text(
        "import torch\n"
        "from torch import nn\n\n"
        "def trained(in_channels=1, n_classes=10):\n"
        "    torch.manual_seed(7)\n"
        "    net = nn.Sequential(nn.Flatten(), nn.Linear(in_channels * 144, 16), nn.ReLU(), nn.Linear(16, n_classes))\n"
        "    with torch.no_grad():\n"
        "        net[3].bias.fill_(0.25)  # 'trained': not what any initialisation gives\n"
        "    return net\n\n"
        "def not_a_model(in_channels=1, n_classes=10):\n"
        "    return 42\n\n"
        "def wrong_classes(in_channels=1, n_classes=10):\n"
        "    return nn.Sequential(nn.Flatten(), nn.Linear(in_channels * 144, 3))\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    settings = ClassifierSettings.from_params({"architecture": "mynets:trained", "epochs": 5}, section="tracer.model")
    model, kwargs, ds = load_pretrained_target(digits, settings)
    assert kwargs == {"in_channels": 1, "n_classes": 10}
    np.testing.assert_array_equal(model[3].bias.detach().numpy(), np.full(10, 0.25, np.float32))  # not trained here
    assert ds.sizes["epoch"] == 0 and ds.attrs["trained"].startswith("pretrained")
    save_target_model(model, "mynets:trained", kwargs, tmp_path / "target_model.pt")
    x = dataset_tensors(digits, "test")[0]
    assert torch.equal(load_target_model(tmp_path / "target_model.pt")(x), model(x))
    with pytest.raises(ValueError, match=r"'mynets:not_a_model' returned int, not a torch module"):
        load_pretrained_target(digits, dataclasses.replace(settings, architecture="mynets:not_a_model"))
    with pytest.raises(ValueError, match=r"'mynets:wrong_classes' \(pretrained\) returns \(2, 3\) .* not logits"):
        load_pretrained_target(digits, dataclasses.replace(settings, architecture="mynets:wrong_classes"))
