"""Reliability of explanation masks (paper 004 §4.1, Fig. 3) and the Captum baselines."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import xarray as xr
from torch import nn

from causalxai.tracer.model import alexnet28
from causalxai.tracer.reliability import (
    BASELINE_METHODS,
    METHODS,
    PROTOCOLS,
    BaselineSettings,
    ReliabilitySettings,
    baseline_attributions,
    bootstrap_interval,
    bootstrap_scores,
    equal_size_mask,
    grad_cam_layer,
    per_sample_mask,
    percentile_interval,
    perturbation_matrix,
    random_foreground_mask,
    reliability_changes,
    reliability_dataset,
    reliability_score,
    reliability_table,
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
    x_raw[:, :, :2] = 0.0  # two background rows (raw value = the baseline 0)
    tracer = torch.randn(4, 8, 8, generator=torch.Generator().manual_seed(10))
    tracer[2] = 0.0  # an all-zero TRACER map: empty under both protocols, for every method in equal_size
    ds = reliability_dataset(net, x_raw, None, tracer,
                             ReliabilitySettings(from_raw=lambda t: (t - 0.5) / 0.5, methods=list(reversed(METHODS)),
                                                 p=0.5, trials=3, threshold=0.1, seed=0, baselines=FAST,
                                                 bootstrap=200))
    assert list(ds["method"].values) == list(METHODS) and list(ds["protocol"].values) == list(PROTOCOLS)
    assert ds["score"].shape == (10, 2, 3)
    np.testing.assert_allclose(ds["mean"].values, ds["score"].values.mean(-1))
    np.testing.assert_allclose(ds["std"].values, ds["score"].values.std(-1, ddof=0))
    assert ((ds["score"] >= 0) & (ds["score"] <= 1)).all()
    assert ((ds["ci_low"] <= ds["mean"] + 1e-12) & (ds["mean"] <= ds["ci_high"] + 1e-12)).all()
    # TRACER's sizes: its threshold masks; TRACER's own equal-size mask is its threshold mask
    sizes = per_sample_mask(tracer, 0.1).flatten(1).sum(1).numpy()
    np.testing.assert_array_equal(ds["tracer_mask_size"].values, sizes)
    tr = ds.sel({"method": "tracer"})
    np.testing.assert_array_equal(tr["score"].sel(protocol="paper"), tr["score"].sel(protocol="equal_size"))
    # equal size: every method's mask holds TRACER's count; sample 2 is empty for all of them
    np.testing.assert_allclose(ds["mask_fraction"].sel(protocol="equal_size").values, sizes.mean() / 64)
    assert (ds["n_empty"].sel(protocol="equal_size") == 1).all() and ds.attrs["n_tracer_empty"] == 1
    # the random-foreground control has TRACER's size under both protocols
    np.testing.assert_allclose(ds["mask_fraction"].sel({"method": "random_foreground"}).values, sizes.mean() / 64)
    assert int(ds["n_empty"].sel({"method": "tracer", "protocol": "paper"})) == 1
    assert ds.attrs["grad_cam_layer"] == "3" and ds.attrs["bootstrap"] == 200 and ds.attrs["ci"] == 0.95
    assert ds.attrs["p"] == 0.5 and ds.attrs["trials"] == 3 and ds.attrs["n_samples"] == 4
    assert ds.attrs["threshold"] == 0.1 and ds.attrs["std_ddof"] == 0
    ds.to_netcdf(tmp_path / "r.nc")
    assert xr.load_dataset(tmp_path / "r.nc")["mean"].shape == (10, 2)
    table = reliability_table(ds)
    assert len(table) == 20 and table.columns.tolist() == ["method", "protocol", "score", "std", "ci_low", "ci_high",
                                                           "diff_ci_low", "diff_ci_high", "n_empty", "mask_share"]
    assert (ds["diff_ci_low"].sel({"method": "tracer"}) == 0).all()  # TRACER minus itself
    row = table[(table["method"] == "lime") & (table["protocol"] == "equal_size")].iloc[0]
    assert row["score"] == float(ds["mean"].sel({"method": "lime", "protocol": "equal_size"}))
    with pytest.raises(ValueError, match="unknown"):
        reliability_dataset(net, x_raw, None, tracer, ReliabilitySettings(methods=["tracer", "anchors"]))
    with pytest.raises(ValueError, match="tracer_attribution"):
        reliability_dataset(net, x_raw, None, None, ReliabilitySettings(methods=["tracer"]))
    with pytest.raises(ValueError, match="'tracer' must be"):
        reliability_dataset(net, x_raw, None, tracer, ReliabilitySettings(methods=["gradient"]))


def test_reliability_dataset_hand_case():
    """MinModel flips when any pixel falls to 0. Sample 0: TRACER marks 2 pixels, p = 0.5 perturbs
    1 of them: a flip in every trial. The gradient of MinModel is one-hot at the argmin (its
    threshold mask: 1 pixel, k = floor(0.5) = 0, never flips); grown to TRACER's 2 pixels, 1 is
    perturbed: it flips. Sample 1: TRACER's map is all zero: its mask is empty, and under the
    equal-size protocol every method's; never flips."""
    x = torch.full((2, 1, 3, 3), 0.8)
    x[:, 0, 1, 1] = 0.6  # the argmin
    tracer = torch.zeros(2, 3, 3)
    tracer[0, 0, 0], tracer[0, 2, 2] = 1.0, -1.0
    ds = reliability_dataset(MinModel(), x, torch.tensor([1, 1]), tracer,
                             ReliabilitySettings(methods=["tracer", "gradient", "random_foreground"], p=0.5, trials=4,
                                                 seed=0, bootstrap=50))
    np.testing.assert_array_equal(ds["mean"].sel(protocol="paper").values, [0.5, 0.0, 0.5])
    np.testing.assert_array_equal(ds["mean"].sel(protocol="equal_size").values, [0.5, 0.5, 0.5])
    np.testing.assert_array_equal(ds["n_empty"].sel(protocol="paper").values, [1, 0, 1])
    np.testing.assert_array_equal(ds["n_empty"].sel(protocol="equal_size").values, [1, 1, 1])
    np.testing.assert_allclose(ds["mask_fraction"].sel(protocol="paper").values, [1 / 9, 1 / 9, 1 / 9])
    np.testing.assert_array_equal(ds["std"].values, 0.0)
    # two samples with changes 1 and 0: resampled means 0, 0.5, 1 -> the 95 % interval is [0, 1]
    assert float(ds["ci_low"].sel({"method": "tracer", "protocol": "paper"})) == 0.0
    assert float(ds["ci_high"].sel({"method": "tracer", "protocol": "paper"})) == 1.0
    np.testing.assert_array_equal(ds["ci_low"].sel({"method": "gradient", "protocol": "paper"}), 0.0)
    np.testing.assert_array_equal(ds["ci_high"].sel({"method": "gradient", "protocol": "paper"}), 0.0)
    # paired: Gradient − TRACER is −(TRACER's resampled score), in [−1, 0]; random foreground = TRACER here
    assert float(ds["diff_ci_low"].sel({"method": "gradient", "protocol": "paper"})) == -1.0
    assert float(ds["diff_ci_high"].sel({"method": "gradient", "protocol": "paper"})) == 0.0
    assert (ds["diff_ci_low"].sel({"method": "random_foreground"}) == 0).all()


# ---------------------------------------------------------------------------------------
# the controls and intervals


def test_equal_size_mask_top_abs_ties_to_lower_index():
    a = torch.tensor([
        [[0.5, -3.0], [1.0, 0.0]],  # |a| order: 3.0 (1), 1.0 (2), 0.5 (0), 0 (3)
        [[2.0, 2.0], [-2.0, 2.0]],  # all tied: lowest indices first
        [[1.0, 0.0], [0.0, 0.0]],  # grown past the nonzero: zeros by index
    ])
    assert equal_size_mask(a, [2, 3, 3]).flatten(1).tolist() == [
        [False, True, True, False],
        [True, True, True, False],
        [True, True, True, False],
    ]
    assert not equal_size_mask(a, [0, 0, 0]).any() and equal_size_mask(a, [4, 4, 4]).all()
    # the top-|M| pixels of a threshold mask are that mask (ties at the threshold included)
    t = torch.randn(20, 6, 6, generator=torch.Generator().manual_seed(0))
    t[:, 0, 0] = t[:, 0, 1]  # a tie
    m = per_sample_mask(t, 0.3)
    assert torch.equal(equal_size_mask(t, m.flatten(1).sum(1)), m)
    with pytest.raises(ValueError, match="sizes"):
        equal_size_mask(a, [5, 0, 0])
    with pytest.raises(ValueError, match="3 samples"):
        equal_size_mask(a, [1, 1])


def test_random_foreground_mask():
    x = torch.zeros(3, 2, 4, 4)
    x[0, 1, :2, :] = 0.7  # foreground: the top two rows (8 pixels), set in channel 1 only
    x[1, 0, 0, 0] = 0.3  # foreground: 1 pixel
    x[2] = 1.0  # all foreground
    sizes = torch.tensor([3, 4, 16])
    m = random_foreground_mask(x, sizes, 0.0, torch.Generator().manual_seed(0))
    assert m.shape == (3, 4, 4) and m.dtype == torch.bool
    assert m.flatten(1).sum(1).tolist() == [3, 4, 16]
    assert not m[0, 2:].any()  # only foreground when there is enough of it
    assert m[1, 0, 0]  # all the foreground, then background
    assert torch.equal(m, random_foreground_mask(x, sizes, 0.0, torch.Generator().manual_seed(0)))
    # uniform over the foreground: each of the 8 pixels chosen w.p. 3/8
    many = x[:1].expand(20000, -1, -1, -1)
    freq = random_foreground_mask(many, torch.full((20000,), 3), 0.0, torch.Generator().manual_seed(1)).double().mean(0)
    np.testing.assert_allclose(freq[:2].numpy(), 3 / 8, atol=0.02)
    assert freq[2:].sum() == 0
    # the foreground is relative to the baseline
    m1 = random_foreground_mask(x[1:2, :1], [15], 0.3, torch.Generator().manual_seed(0))[0]
    assert m1.sum() == 15 and not m1[0, 0]  # baseline 0.3: every pixel but (0, 0) is foreground


def test_bootstrap_interval_against_scipy():
    from scipy import stats

    rng = np.random.default_rng(0)
    changes = rng.random((2, 3, 5, 200)) < np.array([0.2, 0.6])[:, None, None, None]  # (method, protocol, trial, N)
    low, high = bootstrap_interval(changes, 4000, 0.9, seed=1)
    assert low.shape == (2, 3) and (low < changes.mean((-1, -2))).all() and (high > changes.mean((-1, -2))).all()
    for i in range(2):
        ref = stats.bootstrap((changes[i, 0].mean(0),), np.mean, n_resamples=4000, confidence_level=0.9,
                              method="percentile", random_state=np.random.default_rng(2)).confidence_interval
        assert abs(low[i, 0] - ref.low) < 0.012 and abs(high[i, 0] - ref.high) < 0.012
    # the same resamples for every row: identical rows give identical intervals; seeded
    same = np.stack([changes[0, 0]] * 2)
    lo2, hi2 = bootstrap_interval(same, 300, 0.95, seed=3)
    assert lo2[0] == lo2[1] and hi2[0] == hi2[1]
    assert np.array_equal(bootstrap_interval(changes, 300, 0.95, 3)[0], bootstrap_interval(changes, 300, 0.95, 3)[0])
    # a score that never varies across samples has a zero-width interval
    lo3, hi3 = bootstrap_interval(np.ones((4, 7), dtype=bool), 100, 0.95, seed=0)
    assert lo3 == 1.0 and hi3 == 1.0
    with pytest.raises(ValueError, match="level"):
        bootstrap_interval(changes, 10, 1.0, 0)
    # the resamples by hand: the same index draws, a float64 loop over resamples
    boot = bootstrap_scores(changes[:, :1], 50, seed=5)
    idx = np.random.default_rng(5).integers(0, 200, size=(50, 200))
    per_sample = changes[:, 0].mean(1)
    ref = np.array([[per_sample[m, idx[b]].mean() for b in range(50)] for m in range(2)])
    np.testing.assert_allclose(boot[:, 0], ref, rtol=1e-12)
    lo4, hi4 = percentile_interval(boot, 0.8)
    np.testing.assert_allclose(lo4, np.percentile(ref, 10, axis=1)[:, None], rtol=1e-12)
    np.testing.assert_allclose(hi4, np.percentile(ref, 90, axis=1)[:, None], rtol=1e-12)


def test_reliability_changes_mean_is_the_score(tiny):
    net, _, _ = tiny
    x = torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    mask = torch.rand(6, 8, 8, generator=torch.Generator().manual_seed(3)) < 0.5
    r = ReliabilitySettings(p=0.5, trials=3, seed=4)
    ch = reliability_changes(net, x, mask, r)
    assert ch.shape == (3, 6) and ch.dtype == torch.bool
    torch.testing.assert_close(ch.double().mean(1), reliability_score(net, x, mask, r))


def test_grad_cam_layer_is_the_last_conv_activation(tiny):
    net, x, target = tiny
    assert grad_cam_layer(alexnet28(), torch.zeros(1, 1, 28, 28)) == "relu5"
    assert grad_cam_layer(net, x) == "3" and grad_cam_layer(net, x, "auto") == "3"
    assert grad_cam_layer(net, x, "2") == "2"
    functional = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(72, 3))
    assert grad_cam_layer(functional, x) == "0"  # no activation module: the conv itself
    with pytest.raises(AttributeError):
        grad_cam_layer(net, x, "conv9")
    # the grad_cam baseline is Captum's LayerGradCam on that activation, upsampled bilinearly
    from captum.attr import LayerAttribution, LayerGradCam

    ref = LayerGradCam(net, net[3]).attribute(x, target=target, relu_attributions=True)
    ref = LayerAttribution.interpolate(ref, (8, 8), interpolate_mode="bilinear").sum(1)
    torch.testing.assert_close(baseline_attributions(net, x, target, "grad_cam"), ref.detach())


def _captum_windows(length: int, k: int, stride: int) -> list[range]:
    """Captum's windows along one axis: ceil((L - k) / s) + 1 starts, the last one truncated."""
    return [range(i * stride, min(i * stride + k, length)) for i in range(math.ceil((length - k) / stride) + 1)]


def test_occlusion_is_the_mean_output_drop_of_tracer_patches(tiny):
    net, x, target = tiny
    for k, stride in ((3, 1), (3, 2)):  # 8 = 3 + 2 + 2 + 1: with stride 2 the last window is truncated
        s = BaselineSettings(occlusion_patch=(k, k), occlusion_stride=(stride, stride))
        got = baseline_attributions(net, x, target, "occlusion", settings=s, occlusion_reference=-1.0)
        # reference: float64, one forward per patch; per pixel the mean of f_c(x) - f_c(x with the patch at -1)
        wins = _captum_windows(8, k, stride)
        ref = np.zeros((2, 8, 8))
        with torch.no_grad():
            for i in range(2):
                clean = float(net(x[i : i + 1])[0, target[i]])
                total, cover = np.zeros((8, 8)), np.zeros((8, 8))
                for rows in wins:
                    for cols in wins:
                        xi = x[i : i + 1].clone()
                        xi[..., rows.start : rows.stop, cols.start : cols.stop] = -1.0
                        total[rows.start : rows.stop, cols.start : cols.stop] += clean - float(net(xi)[0, target[i]])
                        cover[rows.start : rows.stop, cols.start : cols.stop] += 1
                assert (cover > 0).all()
                ref[i] = total / cover
        np.testing.assert_allclose(got.numpy(), ref, rtol=1e-4, atol=1e-5)


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


def test_reliability_refuses_an_empty_tracer_and_flags_equal_scores(caplog):
    """TRACER's mask empty for every sample: refused (issue 17); every method scoring the same
    (here no prediction ever changes): flagged. MinModel of the hand case above."""
    from causalxai.checks import DegenerateResultError

    x = torch.full((2, 1, 3, 3), 0.8)
    x[:, 0, 1, 1] = 0.6
    s = ReliabilitySettings(methods=["tracer", "gradient"], p=0.5, trials=2, seed=0, bootstrap=10)
    with pytest.raises(DegenerateResultError, match=r"reliability: TRACER's mask .* is empty for all 2 samples"):
        reliability_dataset(MinModel(), x, torch.tensor([1, 1]), torch.zeros(2, 3, 3), s)
    one_pixel = torch.zeros(2, 3, 3)
    one_pixel[:, 0, 0] = 1.0  # one pixel: floor(0.5 · 1) = 0 perturbed, nothing ever changes
    ds = reliability_dataset(MinModel(), x, torch.tensor([1, 1]), one_pixel, s)
    assert (ds["mean"].values == 0).all()
    assert "constant: all 4 finite values equal 0" in ds.attrs["degenerate"] and "reliability: mean" in caplog.text
