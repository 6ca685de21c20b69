"""TRACER interventions (paper 004 §3.3.1): masks, intervened inputs, recorded activations."""

from collections import OrderedDict

import pytest
import torch
from torch import nn

from causalxai.tracer.interventions import (
    intervene,
    n_windows,
    patch_masks,
    record_activations,
    window_masks,
)
from causalxai.tracer.model import alexnet28, observed_layers


def test_patch_masks_mnist_count_size_and_coverage():
    m = patch_masks(28, 28, 3, 1)
    assert m.shape == (676, 28, 28) and m.dtype == torch.bool
    assert (m.sum((1, 2)) == 9).all()
    cover = m.sum(0)
    assert cover[0, 0] == 1 and cover[27, 27] == 1 and cover[0, 27] == 1
    assert cover[0, 1] == 2 and cover[1, 1] == 4
    assert cover[14, 14] == 9 and (cover[2:26, 2:26] == 9).all()
    # row-major by top-left corner
    assert m[0, :3, :3].all() and m[1, 0, 1:4].all() and m[26, 1:4, 0:3].all()
    assert m[675, 25:, 25:].all()


def test_patch_masks_stride_rectangles_and_errors():
    m = patch_masks(224, 224, 30, 15)  # ImageNet setting of App. F
    assert len(m) == n_windows(224, 30, 15) ** 2 == 13**2
    assert (m.sum((1, 2)) == 900).all()
    r = patch_masks(5, 7, (2, 3), (1, 2))
    assert r.shape == (4 * 3, 5, 7) and (r.sum((1, 2)) == 6).all()
    with pytest.raises(ValueError, match="larger than the input"):
        patch_masks(2, 28, 3, 1)
    with pytest.raises(ValueError, match=">= 1"):
        patch_masks(28, 28, 3, 0)


def test_window_masks_tabular():
    m = window_masks(10, 3, 1)
    assert m.shape == (8, 10) and (m.sum(1) == 3).all()
    assert m[0, :3].all() and m[7, 7:].all()
    assert len(window_masks(10, 3, 2)) == 4


def test_intervene_images():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 6, 6, generator=g) + 1.0  # never 0, so the baseline is visible
    masks = patch_masks(6, 6, 2, 2)
    out = intervene(x, masks, baseline=0.0)
    assert out.shape == (10, 2, 6, 6)
    assert torch.equal(out[0], x)
    mm = masks[:, None].expand(-1, 2, -1, -1)
    assert (out[1:][mm] == 0).all()
    assert torch.equal(out[1:][~mm], x.expand(9, -1, -1, -1)[~mm])
    # a per-channel tensor baseline, then normalisation after setting it
    base = torch.tensor([5.0, 7.0])[:, None, None]
    out = intervene(x, masks, base, normalize=lambda t: (t - 1.0) / 2.0)
    assert torch.allclose(out[0], (x - 1.0) / 2.0)
    assert out[1, 0, 0, 0] == 2.0 and out[1, 1, 0, 0] == 3.0


def test_intervene_tabular_and_shape_errors():
    x = torch.arange(1.0, 6.0)
    out = intervene(x, window_masks(5, 2, 1), baseline=-1.0)
    assert out.shape == (5, 5)
    assert out[1].tolist() == [-1, -1, 3, 4, 5] and out[4].tolist() == [1, 2, 3, -1, -1]
    assert intervene(torch.arange(5), window_masks(5, 2, 1)).dtype == torch.float32
    with pytest.raises(ValueError, match="does not end in"):
        intervene(torch.zeros(1, 28, 27), patch_masks(28, 28, 3, 1))


def _small_cnn():
    torch.manual_seed(0)
    return nn.Sequential(
        OrderedDict(
            conv1=nn.Conv2d(1, 4, 3),
            relu1=nn.ReLU(inplace=True),  # in place: the conv's recorded output must not change
            pool=nn.MaxPool2d(2),
            flatten=nn.Flatten(),
            drop=nn.Dropout(0.5),
            fc=nn.Linear(4 * 5 * 5, 3),
        )
    )


def _no_hooks(model):
    return all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def test_record_activations_equals_a_per_intervention_loop():
    model = _small_cnn()
    x = torch.rand(1, 12, 12, generator=torch.Generator().manual_seed(1))
    inputs = intervene(x, patch_masks(12, 12, 3, 1))[:25]
    model.train()
    acts = record_activations(model, inputs, "all", batch_size=8)
    names = observed_layers(model)
    assert list(acts) == names
    assert model.training and _no_hooks(model)
    model.eval()
    with torch.no_grad():
        for i, name in enumerate(names):
            prefix = model[: i + 1]
            expected = torch.cat([prefix(inputs[j : j + 1]).clone() for j in range(len(inputs))])
            got = acts[name]
            assert got.shape == expected.shape and got.dtype == torch.float32 and got.device.type == "cpu"
            assert torch.allclose(got, expected, atol=1e-6), name
    assert (acts["conv1"] < 0).any()  # recorded before the in-place ReLU
    assert torch.equal(acts["drop"], acts["flatten"])  # eval mode: dropout off


def test_record_activations_batch_size_invariance_and_dtype():
    model = _small_cnn()
    inputs = torch.rand(17, 1, 12, 12, generator=torch.Generator().manual_seed(2))
    a = record_activations(model, inputs, ["conv1", "fc"], batch_size=17)
    b = record_activations(model, inputs, ["conv1", "fc"], batch_size=4)
    c = record_activations(model, inputs, ["conv1", "fc"], batch_size=1)
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6) and torch.allclose(a[k], c[k], atol=1e-6)
    d = record_activations(model.double(), inputs.double(), ["fc"], batch_size=5, dtype=None)
    assert d["fc"].dtype == torch.float64
    assert _no_hooks(model)


def test_record_activations_alexnet_shapes():
    torch.manual_seed(0)
    model = alexnet28()
    inputs = intervene(torch.rand(1, 28, 28), patch_masks(28, 28, 3, 1))[:6]
    acts = record_activations(model, inputs, "parametric", batch_size=4)
    assert list(acts) == ["conv1", "conv2", "conv3", "conv4", "conv5", "fc1", "fc2", "fc3"]
    assert acts["conv1"].shape == (6, 32, 26, 26) and acts["fc3"].shape == (6, 10)
    assert _no_hooks(model)


class _Shared(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b, self.act = nn.Linear(3, 3), nn.Linear(3, 3), nn.ReLU()

    def forward(self, x):
        return self.act(self.b(self.act(self.a(x))))


def test_record_activations_refuses_modules_run_twice_and_removes_hooks_on_error():
    model = _Shared()
    with pytest.raises(RuntimeError, match="exactly once"):
        record_activations(model, torch.rand(4, 3), ["a", "act"], batch_size=2)
    assert _no_hooks(model) and model.training
    acts = record_activations(model, torch.rand(4, 3), ["a", "b"], batch_size=3)
    assert acts["b"].shape == (4, 3)
    with pytest.raises(ValueError, match="no inputs"):
        record_activations(model, torch.rand(0, 3), ["a"])
