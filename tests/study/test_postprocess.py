"""App. A.3 post-processing: hand-computed maps for both rules, both tails, zero maps; NumPy's percentile."""

import numpy as np
import pytest
import torch

from causalxai.study.postprocess import normalize_maps, percentile


def test_percentile_matches_numpy():
    x = np.random.default_rng(0).normal(size=(3, 4, 101))
    for q in (0, 37.5, 99, 100):
        np.testing.assert_allclose(percentile(torch.tensor(x), q).numpy(), np.percentile(x, q, axis=-1, keepdims=True))


def test_paper_rule_clips_both_tails():
    # |x| of [-10, 1, 2, 4] sorted [1, 2, 4, 10]: p99 = 4 + 0.97 * 6 = 9.82; -10 is clipped to -9.82
    m = torch.tensor([[-10.0, 1.0], [2.0, 4.0]], dtype=torch.float64)
    out, deg = normalize_maps(m, signed=True)
    np.testing.assert_allclose(out.numpy(), [[0, 1 / 9.82], [2 / 9.82, 4 / 9.82]])
    assert not bool(deg)
    # the upper tail reaches 1: [-4, 1, 2, 10]: |x| sorted [1, 2, 4, 10], p99 9.82, 10 -> 1
    out, _ = normalize_maps(torch.tensor([[-4.0, 1.0], [2.0, 10.0]], dtype=torch.float64), signed=True)
    np.testing.assert_allclose(out.numpy(), [[0, 1 / 9.82], [2 / 9.82, 1.0]])


def test_grad_cam_and_zero_maps():
    m = torch.tensor([[[0.0, 1.0], [3.0, 2.0]], [[0.0, 0.0], [0.0, 0.0]]], dtype=torch.float64)
    out, deg = normalize_maps(m, signed=False)
    p = 2 + 0.97 * 1  # p99 of [0, 1, 2, 3]
    np.testing.assert_allclose(out[0].numpy(), [[0, 1 / p], [1.0, 2 / p]])
    assert deg.tolist() == [False, True] and torch.isnan(out[1]).all()  # dropped by default
    kept, _ = normalize_maps(m, signed=False, zero_maps="keep")
    assert float(kept[1].abs().max()) == 0
    # fewer than 1 % non-zero pixels: p99 of |x| is 0, the clipped map is all zero: degenerate
    sparse = torch.zeros(1, 20, 20, dtype=torch.float64)
    sparse[0, 3, 4] = 5.0
    assert bool(normalize_maps(sparse, signed=True)[1][0])
    with pytest.raises(ValueError, match="signed=True"):
        normalize_maps(-m, signed=False)
    with pytest.raises(ValueError, match="explain.normalisation"):
        normalize_maps(m, signed=False, rule="minmax")


def test_public_code_rule_is_pairs_visualisation():
    """PAIR's VisualizeImageDiverging then a clip to [0, 1] (signed), VisualizeImageGrayscale
    (Grad-CAM), written out here in NumPy as in the saliency package."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3, 6, 6))
    out, _ = normalize_maps(torch.tensor(x), signed=True, rule="public_code")
    for k in range(3):
        span = abs(np.percentile(x[k], 99))
        ref = np.clip(np.clip((x[k] + span) / (2 * span), -1, 1), 0, 1)
        np.testing.assert_allclose(out[k].numpy(), ref, rtol=1e-12)
    assert float(out.min()) >= 0 and float(out.max()) <= 1
    cam = np.abs(x)
    out, _ = normalize_maps(torch.tensor(cam), signed=False, rule="public_code")
    for k in range(3):
        lo, hi = cam[k].min(), np.percentile(cam[k], 99)
        np.testing.assert_allclose(out[k].numpy(), np.clip((cam[k] - lo) / (hi - lo), 0, 1), rtol=1e-12)
    # an all-zero attribution: dropped, or kept as what the rule gives 0 (0.5 for diverging maps)
    zero = torch.zeros(1, 4, 4, dtype=torch.float64)
    assert torch.isnan(normalize_maps(zero, signed=True, rule="public_code")[0]).all()
    np.testing.assert_allclose(normalize_maps(zero, signed=True, rule="public_code", zero_maps="keep")[0].numpy(), 0.5)


@pytest.mark.parametrize("q", [90, 99, 99.9, 100])
def test_high_percentiles_by_topk_equal_the_sorted_order_statistics(q):
    """High percentiles take the largest values only (torch.topk): bit for bit the sorted formula,
    ties and negatives included; a row with NaN takes the sort path (NaN sorts last)."""
    rng = np.random.default_rng(int(q * 10))
    x = torch.tensor(np.round(rng.normal(size=(6, 784)), 1), dtype=torch.float32)  # many ties
    s, _ = torch.sort(x, dim=-1)
    pos = q / 100 * 783
    lo = int(pos // 1)
    hi = min(lo + 1, 783)
    want = s[..., lo : lo + 1] + (pos - lo) * (s[..., hi : hi + 1] - s[..., lo : lo + 1])
    assert torch.equal(percentile(x, q), want)
    x[2, 5] = float("nan")
    s, _ = torch.sort(x, dim=-1)
    want = s[..., lo : lo + 1] + (pos - lo) * (s[..., hi : hi + 1] - s[..., lo : lo + 1])
    torch.testing.assert_close(percentile(x, q), want, rtol=0, atol=0, equal_nan=True)
