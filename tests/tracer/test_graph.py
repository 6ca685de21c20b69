"""Any module graph (issue 18 item 2): resnet_small, tracer.layers auto, modules run twice, skip links on a
residual network against a float64 NumPy reference, and stochastic (exogenous) nodes (paper 004 App. H.2)."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch import nn

from causalxai.compress.build import compress_skip_reason
from causalxai.tracer.interventions import analyse_one, interventions_dataset, record_activations
from causalxai.tracer.model import (
    ALEXNET28_LAYERS,
    ResidualBlock,
    alexnet28,
    check_layers,
    default_layers,
    layer_table,
    observed_layers,
    resnet_small,
    stochastic_modules,
)
from causalxai.tracer.nodes import causal_nodes_dataset
from causalxai.tracer.settings import TracerSettings

AUTO = ["stem", "block1.conv2", "block1", "block2.conv2", "block2", "block3.conv2", "block3", "relu", "fc"]


def _conv(c_in: int, c_out: int, k: int) -> int:
    return c_in * c_out * k * k


@pytest.mark.parametrize("side, last", [(28, 7), (32, 8)])
def test_resnet_small_shapes_and_parameters_by_hand(side, last):
    torch.manual_seed(0)
    model = resnet_small()
    table = layer_table(model, (1, side, side), layers="auto").set_index("name")
    assert list(table.index) == AUTO
    half = (side + 1) // 2
    assert table.loc["stem", "output_shape"] == (16, side, side) == table.loc["block1", "output_shape"]
    assert table.loc["block2", "output_shape"] == (32, half, half)
    assert table.loc["block3", "output_shape"] == (64, last, last) == table.loc["block3.conv2", "output_shape"]
    assert table.loc["fc", "output_shape"] == (10,)
    bn = 2  # weight and bias per channel
    block1 = bn * 16 + _conv(16, 16, 3) + bn * 16 + _conv(16, 16, 3)
    block2 = bn * 16 + _conv(16, 32, 3) + bn * 32 + _conv(32, 32, 3) + _conv(16, 32, 1)
    block3 = bn * 32 + _conv(32, 64, 3) + bn * 64 + _conv(64, 64, 3) + _conv(32, 64, 1)
    total = _conv(1, 16, 3) + block1 + block2 + block3 + bn * 64 + 64 * 10 + 10
    assert (table.loc["block1", "params"], table.loc["block2", "params"], table.loc["block3", "params"]) == (
        block1, block2, block3)
    assert table.attrs["total_params"] == total == 77_562


def test_a_residual_block_is_x_plus_f_of_x():
    torch.manual_seed(1)
    for block in (ResidualBlock(4, 4, 1), ResidualBlock(4, 8, 2)):
        block.eval()
        x = torch.randn(3, 4, 6, 6)
        f = block.conv2(torch.relu(block.bn2(block.conv1(torch.relu(block.bn1(x))))))
        skip = x if isinstance(block.shortcut, nn.Identity) else block.shortcut(x)
        assert torch.equal(block(x), skip + f)


def test_auto_layers_are_each_architectures_own_in_forward_order():
    x = torch.zeros(2, 1, 28, 28)
    assert observed_layers(resnet_small(), "auto") == AUTO == check_layers(resnet_small(), "auto", x)
    assert observed_layers(alexnet28(), "auto") == list(ALEXNET28_LAYERS)
    plain = nn.Sequential(OrderedDict(conv=nn.Conv2d(1, 2, 3), act=nn.ReLU(), flat=nn.Flatten(),
                                      fc=nn.Linear(2 * 26 * 26, 10)))
    assert default_layers(plain) == ["conv", "act", "flat", "fc"]  # no tracer_layers: the top-level children
    plain.tracer_layers = ["conv", "nope"]
    with pytest.raises(ValueError, match=r"tracer_layers names \['nope'\]"):
        default_layers(plain)
    # a container is listed after its children (its forward finishes last), without an example input too
    assert observed_layers(resnet_small(), ["block1", "block1.conv1"]) == ["block1.conv1", "block1"]


class _Shared(nn.Module):
    """One ReLU module used twice in forward."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)
        self.relu = nn.ReLU()
        self.fc = nn.Linear(2 * 8 * 8, 10)

    def forward(self, x):
        return self.fc(self.relu(self.relu(self.conv(x)) - 0.5).flatten(1))


def test_a_module_called_twice_is_refused_by_name():
    model, x = _Shared(), torch.randn(2, 1, 8, 8)
    with pytest.raises(ValueError, match=r"'relu' runs 2 times per forward pass: a module used more than once"):
        check_layers(model, ["conv", "relu", "fc"], x)
    with pytest.raises(RuntimeError, match=r"module 'relu' \(ReLU\) runs 2 times.*give each use a module of its own"):
        record_activations(model, x, ["conv", "relu", "fc"])
    assert set(record_activations(model, x, ["conv", "fc"])) == {"conv", "fc"}  # the others can be observed


class _Residual(nn.Module):
    """x -> stem -> stem + branch(stem) -> fc, with a weak branch: block's output stays close to its input."""

    def __init__(self, scale: float, gain: float):
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 3, padding=1)
        self.block = nn.Module()
        self.branch = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.Tanh(), nn.Conv2d(4, 4, 3, padding=1))
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(4 * 12 * 12, 10))
        with torch.no_grad():  # a strongly non-linear branch (tanh saturates), small at the output
            self.branch[0].weight.mul_(gain)
            self.branch[2].weight.mul_(scale)
            self.branch[2].bias.zero_()

    def forward(self, x):
        s = self.stem(x)
        return self.fc(s + self.branch(s))


def _linear_cka_numpy(acts: list[np.ndarray]) -> np.ndarray:
    """Paper 004 §3.3.2 in float64 NumPy: HSIC of centred linear Grams, normalised."""
    grams = []
    for a in acts:
        f = a.reshape(len(a), -1).astype(np.float64)
        n = len(f)
        h = np.eye(n) - np.ones((n, n)) / n
        grams.append(h @ (f @ f.T) @ h)
    hsic = np.array([[np.sum(a * b) for b in grams] for a in grams])
    return hsic / np.sqrt(np.outer(np.diag(hsic), np.diag(hsic)))


def test_a_skip_link_of_a_residual_net_matches_a_numpy_reference():
    torch.manual_seed(0)
    model = _Residual(scale=0.3, gain=20.0).eval()

    class Tapped(nn.Module):  # the same network with its sum a module, so it can be observed
        def __init__(self, net):
            super().__init__()
            self.net, self.add = net, _Add()

        def forward(self, x):
            s = self.net.stem(x)
            return self.net.fc(self.add(s, self.net.branch(s)))

    tapped = Tapped(model).eval()
    x = torch.rand(1, 12, 12) * 2 - 1
    settings = TracerSettings.from_params({"layers": ["net.stem", "net.branch", "add", "net.fc"], "patch": 3,
                                           "stride": 3, "eps": 0.04})
    got = analyse_one(tapped, x, settings)
    # the reference: interventions built here (raw baseline 0 is -1 normalised), forward by hand, float64 CKA
    stack = [x.numpy()]
    for r in range(0, 12, 3):
        for c in range(0, 12, 3):
            xi = x.numpy().copy()
            xi[:, r:r + 3, c:c + 3] = -1.0
            stack.append(xi)
    with torch.no_grad():
        inp = torch.tensor(np.stack(stack))
        s = model.stem(inp)
        b = model.branch(s)
        out = s + b
        logits = model.fc(out)
    ref = _linear_cka_numpy([s.numpy(), b.numpy(), out.numpy(), logits.numpy()])
    np.testing.assert_allclose(got["cka"].numpy(), ref, rtol=0, atol=1e-6)
    eps = 0.04
    # the residual pattern: input and output similar, the branch unlike both
    assert ref[0, 2] >= 1 - eps > max(ref[0, 1], ref[1, 2])
    nodes = causal_nodes_dataset(_as_cka(got["cka"], ["stem", "branch", "add", "fc"]), settings)
    groups = nodes["group"].values[0].tolist()
    # by hand from the reference: a new group wherever consecutive layers differ, a skip link where any layer
    # pair of two non-adjacent groups is similar
    want_groups = [0]
    for i in range(1, 4):
        want_groups.append(want_groups[-1] + int(ref[i - 1, i] < 1 - eps))
    assert groups == want_groups and groups[:3] == [0, 1, 2]
    n = int(nodes["n_groups"].values[0])
    links = {tuple(map(int, e)) for e in np.argwhere(nodes["link"].values[0][:n, :n])}
    want = {(a, a + 1) for a in range(n - 1)} | {
        (want_groups[i], want_groups[j]) for i in range(4) for j in range(4)
        if want_groups[j] > want_groups[i] + 1 and ref[i, j] >= 1 - eps}
    assert links == want and (0, 2) in links  # stem -> block output past the branch


class _Add(nn.Module):
    def forward(self, a, b):
        return a + b


def _as_cka(cka: torch.Tensor, names: list[str]):
    import xarray as xr

    return xr.DataArray(cka.numpy()[None], dims=("sample", "layer_i", "layer_j"),
                        coords={"sample": [0], "layer_i": names, "layer_j": names})


class _Sample(nn.Module):
    """The reparameterisation trick: mu + exp(logvar / 2) * noise."""

    def forward(self, h):
        mu, logvar = h.chunk(2, dim=1)
        return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)


class TinyVAE(nn.Module):
    """Encoder, a stochastic sampling layer, decoder and a classifier on the latent code (paper 004 App. H.2)."""

    def __init__(self):
        super().__init__()
        self.flatten = nn.Flatten()
        self.encoder = nn.Linear(64, 8)
        self.sample = _Sample()
        self.decoder = nn.Sequential(nn.Linear(4, 16), nn.ReLU())
        self.classifier = nn.Linear(16, 10)

    def forward(self, x):
        return self.classifier(self.decoder(self.sample(self.encoder(self.flatten(x)))))


def test_the_vaes_sampling_layer_is_its_one_stochastic_node():
    torch.manual_seed(5)
    vae, x = TinyVAE(), torch.rand(3, 1, 8, 8)
    # only the sampling layer: the decoder's outputs vary too, but through their input
    assert stochastic_modules(vae, x) == ["sample"]
    assert stochastic_modules(resnet_small(), torch.rand(2, 1, 28, 28)) == []
    assert stochastic_modules(alexnet28(), torch.rand(2, 1, 28, 28)) == []  # dropout is off in eval mode
    # the training flag is restored; a dropout in train mode is no stochastic node of the eval-mode model
    vae.train()
    stochastic_modules(vae, x)
    assert vae.training


def test_interventions_record_the_stochastic_node_and_are_reproducible():
    torch.manual_seed(6)
    vae = TinyVAE()
    images = torch.rand(2, 1, 8, 8) * 2 - 1
    settings = TracerSettings.from_params({"layers": ["encoder", "sample", "decoder", "classifier"], "patch": 4,
                                           "stride": 4})
    a = interventions_dataset(vae, images, settings)
    b = interventions_dataset(vae, images, settings)
    assert a["stochastic"].values.tolist() == [False, True, False, False]
    assert a.attrs["stochastic_modules"] == "sample"
    np.testing.assert_array_equal(a["cka"].values, b["cka"].values)  # the noise is seeded per sample


def test_compress_skips_a_residual_network_with_the_reason():
    assert compress_skip_reason(alexnet28(), list(ALEXNET28_LAYERS), (1, 28, 28)) == ""
    reason = compress_skip_reason(resnet_small(), AUTO, (1, 28, 28))
    assert "ResNetSmall's forward is not its leaf modules run one after another" in reason
