"""Compressed models from causal mechanisms (paper 004 §4.3, Table 2): construction rules and shapes."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
from torch import nn

from causalxai.compress.build import (
    compress_model,
    compression_plan,
    conv_rule,
    load_compressed_models,
    save_compressed_models,
    singleton_composition,
)
from causalxai.tracer.model import alexnet28

LAYERS = ["relu1", "relu2", "relu3", "relu4", "relu5", "relu6", "relu7", "fc3"]
C3NODES = "relu1+relu2+relu3+relu4|relu5|relu6+relu7+fc3"
SHAPE = (1, 28, 28)


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


@pytest.fixture(scope="module")
def alexnet():
    torch.manual_seed(0)
    return alexnet28().eval()


def test_three_node_alexnet_by_hand(alexnet):
    m = compress_model(alexnet, C3NODES, SHAPE)
    assert m(torch.zeros(1, *SHAPE)).shape == (1, 10)
    # node 1: 1x28x28 -> 64x13x13: s = 28 // 13 = 2, k = 28 - 2*12 = 4 -> 64*1*4*4 + 64
    # node 2: conv5 kept: 32*64*9 + 32; node 3: 32*13*13 = 5408 -> 10 (pool2 belongs to node 3)
    expected = (64 * 16 + 64) + (32 * 64 * 9 + 32) + (5408 * 10 + 10)
    assert expected == 73_642
    assert n_params(m) == expected
    assert list(m._modules) == ["node1_conv", "node1_relu", "node2_conv5", "node2_relu5", "node3_flatten", "node3_drop",
                                "node3_linear"]
    conv = m.node1_conv
    assert ((conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding)
            == (1, 64, (4, 4), (2, 2), (0, 0)))
    # the single-layer node keeps conv5 unchanged (fresh weights)
    c5 = m.node2_conv5
    assert (c5.in_channels, c5.out_channels, c5.kernel_size, c5.padding) == (64, 32, (3, 3), (1, 1))
    assert not torch.equal(c5.weight, alexnet.conv5.weight)
    assert isinstance(m.node3_drop, nn.Dropout) and m.node3_drop.p == alexnet.drop1.p
    # the node ending at the logits has no ReLU after its Linear
    assert isinstance(list(m.children())[-1], nn.Linear)
    # the original model is untouched
    assert n_params(alexnet) == 11_696_202


def test_plan_table(alexnet):
    df = compression_plan(alexnet, C3NODES, SHAPE)
    assert df["node"].tolist() == [1, 2, 3]
    assert df["in_shape"].tolist() == ["1x28x28", "64x13x13", "32x13x13"]
    assert df["out_shape"].tolist() == ["64x13x13", "32x13x13", "10"]
    assert df["kept"].tolist() == [False, True, False]
    assert df.loc[2, "original_modules"].startswith("pool2, flatten, drop1, fc1")
    assert df["params_before"].sum() == 11_696_202
    assert df.attrs["params_after"] == 73_642
    assert df.attrs["compression"] == pytest.approx(1 - 73_642 / 11_696_202)
    assert df.loc[0, "replacement"] == "Conv2d(1→64, k=4×4, s=2×2, p=0×0) + ReLU"


def test_all_single_nodes_rebuild_the_original(alexnet):
    m = compress_model(alexnet, singleton_composition(LAYERS), SHAPE)
    assert n_params(m) == n_params(alexnet)
    orig = [(type(a), tuple(p.shape for p in a.parameters())) for a in alexnet.children()]
    new = [(type(a), tuple(p.shape for p in a.parameters())) for a in m.children()]
    assert new == orig
    # with the original weights the output is the same
    same = compress_model(alexnet, [[n] for n in LAYERS], SHAPE, reinit=False).eval()
    x = torch.randn(3, *SHAPE)
    torch.testing.assert_close(same(x), alexnet(x))


@pytest.mark.parametrize("n_in,n_out",
                         [(28, 28), (28, 26), (28, 13), (26, 13), (13, 12), (28, 10), (28, 1), (7, 3), (5, 9)])
def test_conv_rule_maps_sizes_exactly(n_in, n_out):
    k, s, p, up = conv_rule(n_in, n_out)
    assert s <= k
    conv = nn.Conv2d(2, 3, kernel_size=k, stride=s, padding=p)
    y = conv(torch.zeros(1, 2, n_in, n_in))
    if up:
        assert n_out > n_in
        y = nn.Upsample(size=(n_out, n_out))(y)
    assert y.shape[-1] == n_out
    if n_out == n_in:
        assert (k, s, p) == (3, 1, 1)


def test_conv_rule_per_axis_and_activation():
    model = nn.Sequential(OrderedDict([
        ("c1", nn.Conv2d(1, 4, 3)), ("a1", nn.Tanh()), ("c2", nn.Conv2d(4, 6, (3, 5))), ("a2", nn.Tanh()),
        ("flat", nn.Flatten()), ("fc", nn.Linear(6 * 6 * 2, 5)), ("fa", nn.ReLU()), ("out", nn.Linear(5, 3)),
    ]))
    m = compress_model(model, "a1+a2|fa|out", (1, 10, 8))
    assert isinstance(m.node1_tanh, nn.Tanh)
    # H 10 -> 6: s = 1, k = 10 - 5 = 5; W 8 -> 2: s = 4, k = 8 - 4 = 4
    assert m.node1_conv.kernel_size == (5, 4) and m.node1_conv.stride == (1, 4)
    assert m(torch.zeros(2, 1, 10, 8)).shape == (2, 3)
    # a node ending in a Linear whose next module is outside the observed layers: tail kept
    m2 = compress_model(model, "a1+a2|fa", (1, 10, 8))
    assert list(m2._modules)[-1] == "tail_out"
    assert isinstance(m2.node1_tanh, nn.Tanh) and isinstance(m2.node2_fa, nn.ReLU)


def test_bad_compositions_and_models(alexnet):
    with pytest.raises(ValueError, match="not leaf modules"):
        compress_model(alexnet, "relu1|nope", SHAPE)
    with pytest.raises(ValueError, match="forward order"):
        compress_model(alexnet, "relu2|relu1", SHAPE)

    class Residual(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(4, 4), nn.ReLU()

        def forward(self, x):
            return self.b(self.a(x)) + self.a(x)

    with pytest.raises(ValueError, match="one after another"):
        compress_model(Residual(), "a|b", (4,))


def test_save_and_load_round_trip(tmp_path, monkeypatch):
    import causalxai.tracer.target_model as target

    def tiny(in_channels=1, n_classes=3, image_size=8):
        return nn.Sequential(OrderedDict([
            ("c1", nn.Conv2d(in_channels, 2, 3, padding=1)), ("r1", nn.ReLU()),
            ("c2", nn.Conv2d(2, 2, 3)), ("r2", nn.ReLU()),
            ("flat", nn.Flatten()), ("fc", nn.Linear(2 * (image_size - 2) ** 2, n_classes)),
        ]))

    monkeypatch.setitem(target.BUILTIN, "tiny", tiny)
    base = tiny()
    comp = "r1+r2|fc"
    m = compress_model(base, comp, (1, 8, 8)).eval()
    path = tmp_path / "models.pt"
    save_compressed_models(path, {"C1": m}, {"C1": comp}, architecture="tiny", kwargs={"n_classes": 3},
                           input_shape=(1, 8, 8))
    back = load_compressed_models(path)["C1"]
    x = torch.randn(2, 1, 8, 8)
    torch.testing.assert_close(back(x), m(x))
    (tmp_path / "bad.pt").write_bytes(b"nope")
    with pytest.raises(ValueError, match="compressed-models"):
        load_compressed_models(tmp_path / "bad.pt")
