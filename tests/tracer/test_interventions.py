"""TRACER interventions (paper 004 §3.3.1): masks, intervened inputs, recorded activations; the
per-sample analysis (§3.3-3.4) against per-intervention loops and NumPy."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch import nn

from causalxai.tracer.interventions import (
    analyse_one,
    intervene,
    interventions_dataset,
    layer_kl_sign,
    n_windows,
    patch_masks,
    record_activations,
    window_masks,
)
from causalxai.tracer.model import alexnet28, observed_layers
from causalxai.tracer.settings import TracerSettings


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
    # 13 full windows (0 … 180, covering rows 0-209) and a 14th at 195 truncated to rows 195-223
    assert len(m) == n_windows(224, 30, 15) ** 2 == 14**2
    sizes = m.sum((1, 2)).reshape(14, 14)
    assert (sizes[:13, :13] == 900).all() and (sizes[13, :13] == 29 * 30).all() and sizes[13, 13] == 29 * 29
    assert m[-1, 195:, 195:].all() and not m[-1, :195].any()
    assert m.any(0).all()  # rows/columns 210-223 are occluded too
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
    w = window_masks(10, 3, 2)  # starts 0, 2, 4, 6 and a last one at 8 truncated to features 8-9
    assert len(w) == 5 and w[4].tolist() == [False] * 8 + [True, True]


def _numpy_windows(length: int, k: int, s: int) -> np.ndarray:
    """Independent reference: Captum's Occlusion shift count ceil((L − k)/s) + 1, windows cut at the edge,
    without the empty windows Captum keeps past the border when s > k."""
    count = int(np.ceil((length - k) / s)) + 1
    out = np.zeros((count, length), bool)
    for j in range(count):
        out[j, j * s : min(j * s + k, length)] = True
    return out[out.any(1)]


@pytest.mark.parametrize("length", [1, 5, 7, 10, 28, 29, 31, 224])
def test_windows_cover_every_position_as_captum(length):
    for k in range(1, min(length, 31) + 1):
        for s in (1, 2, 3, 4, 7, 15, 16):
            m = window_masks(length, k, s).numpy()
            assert np.array_equal(m, _numpy_windows(length, k, s)), (length, k, s)
            if s <= k:  # windows no farther apart than their size: every position occluded
                assert m.any(0).all(), (length, k, s)
            assert len(m) == n_windows(length, k, s) and m.any(1).all()  # no empty window
            if (length - k) % s == 0:  # exact tiling: the paper's count, no truncated window
                assert len(m) == (length - k) // s + 1 and (m.sum(1) == k).all()


def test_patch_masks_cover_every_pixel():
    for (h, w), k, s in [((28, 28), 3, 1), ((28, 28), 5, 4), ((224, 224), 30, 15), ((13, 17), (4, 3), (3, 2))]:
        m = patch_masks(h, w, k, s).numpy()
        assert m.any(0).all()
        kh, kw = (k, k) if isinstance(k, int) else k
        sh, sw = (s, s) if isinstance(s, int) else s
        ref = _numpy_windows(h, kh, sh)[:, None, :, None] & _numpy_windows(w, kw, sw)[None, :, None, :]
        assert np.array_equal(m, ref.reshape(-1, h, w))


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


# ---------------------------------------------------------------------------------------
# the per-sample analysis (was tests/tracer/test_analysis.py)

LAYERS = ["conv", "relu", "ident", "flat", "fc"]


def tiny_model(seed: int = 0, side: int = 6) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(
        OrderedDict(
            conv=nn.Conv2d(1, 2, 3, padding=1),
            relu=nn.ReLU(),
            ident=nn.Identity(),
            flat=nn.Flatten(),
            fc=nn.Linear(2 * side * side, 3),
        )
    ).eval()


def tiny_input(seed: int = 1, side: int = 6) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand((1, side, side), generator=g) * 2 - 1  # normalised: raw = (x + 1)/2


def np_interventions(
    x: np.ndarray, k: int, stride: int, value: float
) -> tuple[list[np.ndarray], list[tuple[int, int]]]:
    """Each k×k patch (row-major by top-left corner) set to ``value``, one copy at a time."""
    _, h, w = x.shape
    out, corners = [], []
    for i in range(0, h - k + 1, stride):
        for j in range(0, w - k + 1, stride):
            xp = x.copy()
            xp[:, i : i + k, j : j + k] = value
            out.append(xp)
            corners.append((i, j))
    return out, corners


def np_layer_outputs(model: nn.Module, x: np.ndarray) -> dict[str, np.ndarray]:
    """One forward of a single input, every layer's output kept (the naive way)."""
    outs: dict[str, np.ndarray] = {}
    hooks = [
        model.get_submodule(n).register_forward_hook(
            lambda m, a, o, _n=n: outs.__setitem__(_n, o.detach().numpy().copy())
        )
        for n in LAYERS
    ]
    try:
        with torch.no_grad():
            model(torch.from_numpy(x)[None])
    finally:
        for h in hooks:
            h.remove()
    return {n: outs[n].reshape(-1).astype(np.float64) for n in LAYERS}


def np_kl(zp: np.ndarray, z: np.ndarray) -> float:
    """KL(softmax(z') ‖ softmax(z)) straight from the definition."""
    p = np.exp(zp - zp.max())
    p /= p.sum()
    q = np.exp(z - z.max())
    q /= q.sum()
    return float(np.sum(p * np.log(p / q)))


def np_linear_cka(a: np.ndarray, b: np.ndarray) -> float:
    """The paper's formula: Tr(H K H L) / sqrt(Tr(H K H K) Tr(H L H L)), float64."""
    n = a.shape[0]
    h = np.eye(n) - np.ones((n, n)) / n
    k, l_gram = a @ a.T, b @ b.T
    hkh, hlh = h @ k @ h, h @ l_gram @ h
    return float(np.trace(hkh @ l_gram) / np.sqrt(np.trace(hkh @ k) * np.trace(hlh @ l_gram)))


def test_kl_sign_and_predictions_match_a_per_intervention_loop():
    model, x = tiny_model(), tiny_input()
    r = analyse_one(model, x, TracerSettings(layers=LAYERS, patch=2, stride=2, baseline=0.0))
    assert r["layers"] == LAYERS and r["kl"].shape == (9, 5) and r["sign"].shape == (9, 5)
    xs, corners = np_interventions(x.numpy(), 2, 2, value=-1.0)  # raw 0 → normalised −1
    assert corners[1] == (0, 2) and corners[3] == (2, 0)
    orig = np_layer_outputs(model, x.numpy())
    for i, xp in enumerate(xs):
        out = np_layer_outputs(model, xp)
        for li, name in enumerate(LAYERS):
            ref = np_kl(out[name], orig[name])
            assert r["kl"][i, li].item() == pytest.approx(ref, rel=1e-4, abs=1e-9), (i, name)
            p0 = np.exp(orig[name] - orig[name].max())
            p0 /= p0.sum()
            p1 = np.exp(out[name] - out[name].max())
            p1 /= p1.sum()
            j = int(np.argmax(orig[name]))
            if abs(p0[j] - p1[j]) > 1e-6 * p0[j]:
                assert r["sign"][i, li].item() == np.sign(p0[j] - p1[j]), (i, name)
        assert r["pred_intervened"][i].item() == int(np.argmax(out["fc"]))
    assert r["pred"] == int(np.argmax(orig["fc"]))
    assert np.allclose(r["prob"].numpy(), np.exp(orig["fc"]) / np.exp(orig["fc"]).sum(), rtol=1e-6)
    assert (r["kl"] > 0).any()


def test_identical_layers_have_cka_one_and_shared_kl():
    r = analyse_one(tiny_model(), tiny_input(), TracerSettings(layers=LAYERS, patch=2, stride=2))
    cka = r["cka"].numpy()
    names = r["layers"]
    i_relu, i_ident, i_flat = names.index("relu"), names.index("ident"), names.index("flat")
    assert cka[i_relu, i_ident] == 1.0 and cka[i_ident, i_flat] == 1.0 and cka[i_relu, i_flat] == 1.0
    assert cka[names.index("conv"), i_relu] < 1.0
    assert torch.equal(r["kl"][:, i_relu], r["kl"][:, i_ident]) and torch.equal(r["kl"][:, i_ident], r["kl"][:, i_flat])
    assert np.allclose(cka, cka.T) and np.all(np.diag(cka) == 1.0)


def test_cka_float32_production_path_within_1e5_of_float64_reference():
    side = 12
    model, x = tiny_model(3, side), tiny_input(4, side)
    r = analyse_one(model, x, TracerSettings(layers=LAYERS, patch=3, stride=1))  # 100 interventions, float32 Grams
    assert r["kl"].shape == (100, 5)
    xs, _ = np_interventions(x.numpy(), 3, 1, value=-1.0)
    rows = [np_layer_outputs(model, xp) for xp in [x.numpy()] + xs]
    acts = {n: np.stack([row[n] for row in rows]) for n in LAYERS}
    ref = np.array([[np_linear_cka(acts[a], acts[b]) for b in LAYERS] for a in LAYERS])
    assert np.abs(r["cka"].numpy() - ref).max() < 1e-5
    r64 = analyse_one(model, x, TracerSettings(layers=LAYERS, patch=3, stride=1, cka_dtype=torch.float64))
    assert np.abs(r64["cka"].numpy() - ref).max() < 1e-6  # per-sample vs batched forwards: float32 inputs


def test_sign_on_a_crafted_linear_model():
    # two classes: class 0 sums the top row, class 1 the bottom row of a 2×2 image
    model = nn.Sequential(OrderedDict(flat=nn.Flatten(), fc=nn.Linear(4, 2, bias=False))).eval()
    with torch.no_grad():
        model.fc.weight.copy_(torch.tensor([[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0]]))
    x = torch.tensor([[[1.0, 1.0], [-1.0, 0.5]]])  # pred 0; pixel (1, 0) already at the baseline −1
    r = analyse_one(model, x, TracerSettings(layers=["flat", "fc"], patch=1, stride=1, baseline=0.0))
    assert r["pred"] == 0
    fc = r["layers"].index("fc")
    # occluding a top pixel lowers class 0 (+1: supported the decision), the bottom-right raises it (−1)
    assert r["sign"][:, fc].tolist() == [1, 1, 0, -1]
    assert r["kl"][2].tolist() == [0.0, 0.0]  # no change at all: exactly 0
    # flatten layer: its peak unit is pixel (0, 0) (first of the tied maxima)
    assert r["sign"][:, 0].tolist() == [1, -1, 0, -1]
    assert r["pred_intervened"].tolist() == [0, 0, 0, 0]


def test_layer_kl_sign_matches_float64_log_softmax():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(50, 300)).astype(np.float32) * 5
    a[1:] += (rng.uniform(size=(49, 300)) < 0.2) * rng.normal(size=(49, 300)).astype(np.float32)
    a[7] = a[0]
    kl, sign = layer_kl_sign(torch.from_numpy(a))
    f = a.astype(np.float64)
    lp = f - f.max(1, keepdims=True)
    lp -= np.log(np.exp(lp).sum(1, keepdims=True))
    ref = (np.exp(lp) * (lp - lp[0])).sum(1)
    j = int(np.argmax(f[0]))
    assert np.allclose(kl.numpy(), ref, rtol=1e-10, atol=1e-14)
    assert kl[0] == 0 and kl[7] == 0 and sign[0] == 0 and sign[7] == 0
    assert np.array_equal(sign.numpy()[1:], np.sign(lp[0, j] - lp[1:, j]).astype(np.int8)[:])
    # huge activations: the fall-back (own log-sum-exp) path
    big = torch.from_numpy(a) * 400
    big[1:, :5] += 2000
    kl2, _ = layer_kl_sign(big)
    f2 = big.numpy().astype(np.float64)
    lp2 = f2 - f2.max(1, keepdims=True)
    lp2 -= np.log(np.exp(lp2).sum(1, keepdims=True))
    ref2 = (np.exp(lp2) * (lp2 - lp2[0])).sum(1)
    assert np.allclose(kl2.numpy(), ref2, rtol=1e-9, atol=1e-9 * ref2.max())


def test_interventions_dataset_layout():
    model = tiny_model()
    imgs = torch.stack([tiny_input(1), tiny_input(2)])
    ds = interventions_dataset(model, imgs, TracerSettings(layers=LAYERS, patch=2, stride=2), sample_ids=[10, 20],
                               labels=[1, 2])
    assert ds["sample"].values.tolist() == [10, 20]
    assert ds["layer"].values.tolist() == LAYERS
    assert ds["kl"].dims == ("sample", "intervention", "layer") and ds["kl"].dtype == np.float64
    assert ds["sign"].dtype == np.int8 and set(np.unique(ds["sign"].values)) <= {-1, 0, 1}
    assert ds["cka"].dims == ("sample", "layer_i", "layer_j") and ds["cka"].dtype == np.float64
    assert ds["patch_y"].values.tolist() == [0, 0, 0, 2, 2, 2, 4, 4, 4]
    assert ds["patch_x"].values.tolist() == [0, 2, 4] * 3
    assert ds["image"].dims == ("sample", "y", "x") and ds["inputs"].dims == ("sample", "channel", "y", "x")
    assert np.array_equal(ds["image"].values, imgs[:, 0].numpy())
    assert ds["label"].values.tolist() == [1, 2]
    assert ds["prob"].shape == (2, 3) and np.allclose(ds["prob"].sum("class"), 1)
    assert ds["pred"].values.tolist() == ds["prob"].argmax("class").values.tolist()
    assert ds.attrs["patch_size"] == 2 and ds.attrs["stride"] == 2 and ds.attrs["n_interventions"] == 9
    assert ds.attrs["height"] == 6 and ds.attrs["width"] == 6 and ds.attrs["kernel"] == "linear"
    one = analyse_one(model, imgs[1], TracerSettings(layers=LAYERS, patch=2, stride=2))
    assert np.array_equal(ds["kl"].sel(sample=20).values, one["kl"].numpy())


def test_baseline_is_set_in_raw_space_and_mismatched_normalisation_fails():
    model = nn.Sequential(OrderedDict(flat=nn.Flatten(), fc=nn.Linear(4, 2))).eval()
    x = torch.tensor([[[0.2, 0.4], [0.6, 0.8]]])
    # raw = x (identity normalisation): baseline 0.2 leaves pixel (0, 0) unchanged
    r = analyse_one(model, x, TracerSettings(layers=["flat", "fc"], patch=1, stride=1, baseline=0.2,
                                             to_raw=lambda t: t, from_raw=lambda t: t))
    assert r["kl"][0].tolist() == [0.0, 0.0] and (r["kl"][1:] > 0).all()
    with pytest.raises(ValueError, match="undo each other"):
        analyse_one(model, x, TracerSettings(layers=["flat", "fc"], patch=1, stride=1, to_raw=lambda t: t,
                                             from_raw=lambda t: 2 * t))


@pytest.mark.parametrize("training", [False, True])
def test_model_mode_is_restored_and_dropout_is_off(training):
    torch.manual_seed(0)
    model = nn.Sequential(OrderedDict(flat=nn.Flatten(), drop=nn.Dropout(0.5), fc=nn.Linear(36, 3)))
    model.train(training)
    x = tiny_input()
    a = analyse_one(model, x, TracerSettings(layers=["flat", "drop", "fc"], patch=2, stride=2))
    b = analyse_one(model, x, TracerSettings(layers=["flat", "drop", "fc"], patch=2, stride=2))
    assert model.training is training and model.drop.training is training
    assert torch.equal(a["kl"], b["kl"])  # eval mode: dropout off, deterministic
    assert torch.equal(a["kl"][:, 0], a["kl"][:, 1]) and a["cka"][0, 1] == 1.0  # eval dropout = identity


def test_tabular_rows_use_one_by_k_windows():
    """A tabular row of d features is a 1 x d input; 1 x k windows with stride 1 give d - k + 1
    interventions (paper 004 §4.2: CIC-IDS 2017 with 1 x 3 windows)."""
    torch.manual_seed(0)
    d = 12
    mlp = nn.Sequential(OrderedDict(flatten=nn.Flatten(), fc1=nn.Linear(d, 8), relu1=nn.ReLU(),
                                    fc2=nn.Linear(8, 3))).eval()
    rows = torch.rand(2, 1, 1, d) * 2 - 1
    ds = interventions_dataset(mlp, rows, TracerSettings(layers=["relu1", "fc2"], patch=(1, 3), stride=1))
    assert ds.sizes["intervention"] == d - 3 + 1
    assert ds["patch_y"].values.tolist() == [0] * (d - 2)
    assert ds["patch_x"].values.tolist() == list(range(d - 2))
    # the KL of the output under window j equals a direct computation
    x = rows[0].clone()
    x[..., 4:7] = -1.0  # baseline 0 in raw space = -1 normalised
    with torch.no_grad():
        p0 = torch.log_softmax(mlp(rows[:1]).double(), -1)
        p1 = torch.log_softmax(mlp(x[None]).double(), -1)
    kl = float((p1.exp() * (p1 - p0)).sum())
    np.testing.assert_allclose(ds["kl"].sel(layer="fc2").values[0, 4], kl, rtol=1e-6, atol=1e-12)


def test_interventions_dataset_corners_with_a_truncated_last_window():
    # 7×7, 3×3 patches, stride 2: starts 0, 2, 4 per axis (the last window covers rows/columns 4-6)
    ds = interventions_dataset(tiny_model(side=7), tiny_input(side=7)[None], TracerSettings(layers=LAYERS, patch=3,
                                                                                             stride=2))
    assert ds.attrs["n_interventions"] == 9
    assert ds["patch_y"].values.tolist() == [0, 0, 0, 2, 2, 2, 4, 4, 4]
    assert ds["patch_x"].values.tolist() == [0, 2, 4] * 3
    # 8×8, 3×3 stride 2: starts 0, 2, 4 and a last one at 6 truncated to rows 6-7
    ds8 = interventions_dataset(tiny_model(side=8), tiny_input(side=8)[None], TracerSettings(layers=LAYERS, patch=3,
                                                                                              stride=2))
    assert ds8.attrs["n_interventions"] == 16 and ds8["patch_y"].values.max() == 6


def test_interventions_that_change_nothing_are_refused():
    """A model whose output ignores its input: every KL 0, so every ACE would be 0 and every mask
    empty (issue 17); refused naming the layers and the settings."""
    from causalxai.checks import DegenerateResultError

    model = tiny_model()
    with torch.no_grad():
        model.conv.weight.zero_()  # the conv's output is its bias whatever the input
    with pytest.raises(DegenerateResultError, match=r"interventions: kl .* is constant: all 90 finite values equal 0, "
                                                    r".*conv, relu, ident, flat, fc.*tracer.model.epochs"):
        interventions_dataset(model, torch.stack([tiny_input(1), tiny_input(2)]),
                              TracerSettings(layers=LAYERS, patch=2, stride=2))
    # one sample of constant pixels whose occlusions change nothing, beside a real one: informative
    flat = torch.full((1, 6, 6), -1.0)  # every pixel at the baseline already
    ds = interventions_dataset(tiny_model(), torch.stack([flat, tiny_input(2)]),
                               TracerSettings(layers=LAYERS, patch=2, stride=2))
    assert (ds["kl"].sel(sample=0).values == 0).all() and (ds["kl"].sel(sample=1).values > 0).any()
