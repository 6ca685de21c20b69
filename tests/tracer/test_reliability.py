"""Reliability of explanation masks (paper 004 §4.1, Fig. 3) and the Captum baselines."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import xarray as xr
from torch import nn

from causalxai.tracer.reliability import (
    BASELINE_METHODS,
    METHODS,
    BaselineSettings,
    ReliabilitySettings,
    baseline_attributions,
    per_sample_mask,
    perturbation_matrix,
    reliability_dataset,
    reliability_score,
    superpixel_mask,
)

FAST = BaselineSettings(smoothgrad_samples=4, ig_steps=4, n_samples=12, perturbations_per_eval=12, superpixel=4)


# ---------------------------------------------------------------------------------------
# per_sample_mask


def test_per_sample_mask_rule():
    a = torch.tensor(
        [
            [[1.0, -0.5], [0.09, -0.1]],  # max 1: |a| >= 0.1
            [[0.0, 0.0], [0.0, 0.0]],  # all zero: empty
            [[-4.0, 0.4], [0.39, 2.0]],  # max 4: |a| >= 0.4 (inclusive)
        ]
    )
    m = per_sample_mask(a, 0.1)
    assert m.dtype == torch.bool
    assert m.tolist() == [
        [[True, True], [False, True]],
        [[False, False], [False, False]],
        [[True, True], [False, True]],
    ]
    assert per_sample_mask(a, 0.0)[0].all() and not per_sample_mask(a, 0.0)[1].any()
    assert per_sample_mask(a, 1.0)[2].tolist() == [[True, False], [False, False]]
    with pytest.raises(ValueError, match="threshold"):
        per_sample_mask(a, 1.5)
    with pytest.raises(ValueError, match="NaN"):
        per_sample_mask(torch.full((1, 2, 2), float("nan")), 0.1)


# ---------------------------------------------------------------------------------------
# perturbation_matrix


def test_perturbation_matrix_exact_k_inside_mask_only():
    gen = torch.Generator().manual_seed(0)
    mask = torch.rand(200, 50, generator=gen) < torch.linspace(0, 1, 200)[:, None]  # |M| from 0 to 50
    for p in (0.0, 0.3, 0.5, 0.29, 1.0):
        keep = perturbation_matrix(mask, p, torch.Generator().manual_seed(1))
        perturbed = ~keep
        assert keep.dtype == torch.bool and keep.shape == mask.shape
        assert not (perturbed & ~mask).any()  # never outside the mask
        k_expected = torch.tensor([math.floor(round(p * int(c), 9)) for c in mask.sum(1)])
        assert torch.equal(perturbed.sum(1), k_expected)
    # float rounding: 0.29 * 100 = 28.999... still gives 29
    assert (~perturbation_matrix(torch.ones(1, 100, dtype=torch.bool), 0.29)).sum() == 29
    # any (N, ...) shape comes back in that shape
    assert perturbation_matrix(torch.ones(2, 3, 4, dtype=torch.bool), 0.5).shape == (2, 3, 4)


def test_perturbation_matrix_uniform_and_seeded():
    mask = torch.zeros(20000, 10, dtype=torch.bool)
    mask[:, [1, 3, 4, 7, 9]] = True  # |M| = 5, p = 0.4 -> k = 2: each chosen w.p. 2/5
    keep = perturbation_matrix(mask, 0.4, torch.Generator().manual_seed(3))
    freq = (~keep).double().mean(0)
    np.testing.assert_allclose(freq[[1, 3, 4, 7, 9]].numpy(), 0.4, atol=0.02)
    assert freq[[0, 2, 5, 6, 8]].sum() == 0
    # all 10 pairs appear (uniform over subsets, not a fixed pattern)
    pairs = {tuple(np.flatnonzero(r)) for r in (~keep[:500]).numpy()}
    assert len(pairs) == 10
    again = perturbation_matrix(mask, 0.4, torch.Generator().manual_seed(3))
    assert torch.equal(keep, again)
    other = perturbation_matrix(mask, 0.4, torch.Generator().manual_seed(4))
    assert not torch.equal(keep, other)


# ---------------------------------------------------------------------------------------
# reliability_score


class MinModel(nn.Module):
    """Class 1 while every pixel exceeds 0.25 (in the space it sees), else class 0."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = x.flatten(1).amin(1)
        return torch.stack([torch.full_like(m, 0.25), m], dim=1)


def test_reliability_score_flips_and_empty():
    x = 0.5 + 0.5 * torch.rand(6, 1, 4, 4, generator=torch.Generator().manual_seed(0))  # all in [0.5, 1]
    full = torch.zeros(6, 4, 4, dtype=torch.bool)
    full[:, 1:3, :] = True  # 8 pixels: k = 4 perturbed to 0 -> min 0 -> class 0
    s = reliability_score(MinModel(), x, full, ReliabilitySettings(p=0.5, trials=3, seed=0))
    assert s.dtype == torch.float64 and s.shape == (3,)
    assert torch.equal(s, torch.ones(3, dtype=torch.float64))
    empty = torch.zeros_like(full)
    assert torch.equal(reliability_score(MinModel(), x, empty, ReliabilitySettings(p=0.5, trials=2, seed=0)),
                       torch.zeros(2, dtype=torch.float64))
    # half the samples with a mask: score 1/2; baseline 0.9 keeps every pixel above 0.25: score 0
    half = full.clone()
    half[3:] = False
    assert torch.allclose(reliability_score(MinModel(), x, half, ReliabilitySettings(p=0.5, trials=2, seed=0)),
                          torch.full((2,), 0.5, dtype=torch.float64))
    assert reliability_score(MinModel(), x, full, ReliabilitySettings(p=0.5, trials=2, seed=0, baseline=0.9)).sum() == 0


def test_reliability_score_baseline_in_raw_space():
    x = 0.6 + 0.4 * torch.rand(4, 1, 3, 3, generator=torch.Generator().manual_seed(1))

    def from_raw(t):  # raw [0, 1] -> [-1, 1]; raw 0 becomes -1
        return (t - 0.5) / 0.5

    mask = torch.ones(4, 3, 3, dtype=torch.bool)
    # the model sees normalised inputs, clean min >= 0.3 > 0.25; a raw 0 becomes -0.9 and flips
    s = reliability_score(MinModel(), x, mask,
                          ReliabilitySettings(p=0.5, trials=2, seed=0, from_raw=lambda t: from_raw(t) + 0.1))
    assert torch.equal(s, torch.ones(2, dtype=torch.float64))


def test_reliability_score_deterministic_and_restores_mode():
    torch.manual_seed(0)
    net = _tiny_net()
    net.train()
    x = torch.rand(8, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    mask = torch.rand(8, 8, 8, generator=torch.Generator().manual_seed(3)) < 0.5
    a = reliability_score(net, x, mask, ReliabilitySettings(p=0.5, trials=4, seed=7))
    b = reliability_score(net, x, mask, ReliabilitySettings(p=0.5, trials=4, seed=7))
    assert torch.equal(a, b) and net.training


# ---------------------------------------------------------------------------------------
# baselines


def _tiny_net() -> nn.Sequential:
    gen_state = torch.random.get_rng_state()
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(4, 4, 3, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * 8 * 8, 3),
    )
    torch.random.set_rng_state(gen_state)
    return net.eval()


@pytest.fixture(scope="module")
def tiny():
    net = _tiny_net()
    x = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(5))
    target = torch.tensor([0, 2])
    return net, x, target


@pytest.mark.parametrize("method", BASELINE_METHODS)
def test_baselines_finite_shape(tiny, method):
    net, x, target = tiny
    a = baseline_attributions(net, x, target, method, settings=FAST, reference=-1.0, seed=0)
    assert a.shape == (2, 8, 8) and a.dtype == torch.float32
    assert torch.isfinite(a).all()
    assert a.abs().sum() > 0
    b = baseline_attributions(net, x, target, method, settings=FAST, reference=-1.0, seed=0)
    assert torch.equal(a, b)  # seeded, deterministic
    assert not any(hasattr(m, "rule") for m in net.modules())  # LRP rules were removed
    if method == "grad_cam":
        assert (a >= 0).all()
    if method in ("lime", "kernel_shap"):  # constant over each 4x4 superpixel
        blocks = a.view(2, 2, 4, 2, 4)
        assert torch.allclose(blocks, blocks[:, :, :1, :, :1].expand_as(blocks))


def test_gradient_equals_autograd(tiny):
    net, x, target = tiny
    a = baseline_attributions(net, x, target, "gradient")
    xg = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(net(xg).gather(1, target[:, None]).sum(), xg)
    torch.testing.assert_close(a, g.sum(1))


def test_smoothgrad_per_sample_sigma():
    # f = sum relu(x): SmoothGrad at a pixel of value v is P(v + σ ε > 0) = Φ(v / σ),
    # σ = 0.15 · (max − min) of that sample; v = 0.15 · range gives Φ(1) ≈ 0.841 in both.
    net = nn.Sequential(nn.ReLU(), nn.Flatten(), nn.Linear(64, 2, bias=False))
    with torch.no_grad():
        net[2].weight.zero_()
        net[2].weight[0] = 1.0
    x = torch.zeros(3, 1, 8, 8)
    for i, r in enumerate((1.0, 4.0)):
        x[i].fill_(0.15 * r)
        x[i, 0, 0, 0], x[i, 0, 0, 1] = 0.0, r
    x[2] = 0.0  # constant input: σ = 0, the plain gradient
    s = BaselineSettings(smoothgrad_samples=400)
    a = baseline_attributions(net, x, torch.zeros(3, dtype=torch.long), "smoothgrad", settings=s, seed=0)
    phi1 = 0.5 * (1 + math.erf(1 / math.sqrt(2)))
    for i in range(2):
        assert abs(float(a[i].flatten()[2:].mean()) - phi1) < 0.02
    assert torch.equal(a[2], torch.zeros(8, 8))
    zero_noise = BaselineSettings(smoothgrad_noise=0.0, smoothgrad_samples=2)
    torch.testing.assert_close(
        baseline_attributions(net, x, torch.zeros(3, dtype=torch.long), "smoothgrad", settings=zero_noise),
        baseline_attributions(net, x, torch.zeros(3, dtype=torch.long), "gradient"),
    )


def test_superpixel_mask():
    m = superpixel_mask(28, 28, 4)
    assert m.shape == (1, 1, 28, 28) and m.unique().numel() == 49
    assert superpixel_mask(10, 10, 4).unique().numel() == 9  # 3 x 3 blocks, edge blocks smaller


def test_lrp_unsupported_layer_raises(tiny):
    _, x, target = tiny
    net = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.GELU(), nn.Flatten(), nn.Linear(128, 3)).eval()
    with pytest.raises(TypeError, match="no rule"):
        baseline_attributions(net, x, target, "lrp")


# ---------------------------------------------------------------------------------------
# the dataset


def test_reliability_dataset_all_methods(tiny, tmp_path):
    net, _, _ = tiny
    x_raw = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(9))
    tracer = torch.randn(4, 8, 8, generator=torch.Generator().manual_seed(10))
    ds = reliability_dataset(net, x_raw, None, tracer,
                             ReliabilitySettings(from_raw=lambda t: (t - 0.5) / 0.5, methods=list(reversed(METHODS)),
                                                 p=0.5, trials=3, threshold=0.1, seed=0, baselines=FAST))
    assert list(ds["method"].values) == list(METHODS)
    assert ds["score"].shape == (8, 3)
    np.testing.assert_allclose(ds["mean"].values, ds["score"].values.mean(1))
    np.testing.assert_allclose(ds["std"].values, ds["score"].values.std(1, ddof=0))
    assert ((ds["score"] >= 0) & (ds["score"] <= 1)).all()
    assert ((ds["mask_fraction"] > 0) & (ds["mask_fraction"] <= 1)).all()
    assert ds.attrs["p"] == 0.5 and ds.attrs["trials"] == 3 and ds.attrs["n_samples"] == 4
    assert ds.attrs["threshold"] == 0.1 and ds.attrs["std_ddof"] == 0
    ds.to_netcdf(tmp_path / "r.nc")
    assert xr.load_dataset(tmp_path / "r.nc")["mean"].shape == (8,)
    with pytest.raises(ValueError, match="unknown"):
        reliability_dataset(net, x_raw, None, tracer, ReliabilitySettings(methods=["tracer", "occlusion"]))
    with pytest.raises(ValueError, match="tracer_attribution"):
        reliability_dataset(net, x_raw, None, None, ReliabilitySettings(methods=["tracer"]))


def test_lrp_conserves_relevance_through_flatten():
    # bias-free ReLU net: the z-rule (ε ≈ 0) conserves relevance, so the input relevances sum
    # to the target logit only if Flatten passes relevance through unchanged
    torch.manual_seed(1)
    net = nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1, bias=False), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Dropout(0.5),
        nn.Linear(3 * 4 * 4, 2, bias=False),
    ).eval()
    x = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    target = torch.tensor([0, 1, 0])
    a = baseline_attributions(net, x, target, "lrp")
    with torch.no_grad():
        logit = net(x).gather(1, target[:, None]).squeeze(1)
    torch.testing.assert_close(a.flatten(1).sum(1), logit, rtol=1e-4, atol=1e-5)
