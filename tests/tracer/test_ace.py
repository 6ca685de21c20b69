"""ACE, feature attributions and explanation masks (paper 004 Def. 5, App. B), hand-computed."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
import torch
import xarray as xr
from torch import nn

from causalxai.tracer.ace import ace_dataset, output_layers, threshold_mask
from causalxai.tracer.interventions import interventions_dataset
from causalxai.tracer.nodes import binary_matrix, layer_groups
from causalxai.tracer.settings import TracerSettings

LAYERS = ["a", "b", "c"]


def fake_interventions(kl: np.ndarray, sign: np.ndarray, k: int, stride: int, side: int = 4) -> xr.Dataset:
    """interventions.nc with given ``kl``/``sign`` ``(sample, intervention, layer)``."""
    s, n, n_layers = kl.shape
    return xr.Dataset(
        {
            "kl": (("sample", "intervention", "layer"), kl.astype(np.float64)),
            "sign": (("sample", "intervention", "layer"), sign.astype(np.int8)),
        },
        coords={"sample": np.arange(s) + 100, "intervention": np.arange(n), "layer": LAYERS[:n_layers]},
        attrs={"patch_size": k, "stride": stride, "height": side, "width": side, "n_interventions": n},
    )


def groups_da(g: list[list[int]], samples=None) -> xr.DataArray:
    g = np.asarray(g)
    return xr.DataArray(
        g, dims=("sample", "layer"),
        coords={"sample": samples if samples is not None else np.arange(len(g)) + 100, "layer": LAYERS[: g.shape[1]]},
    )


def test_non_overlapping_patches_attribution_is_the_patch_effect():
    # 4×4 image, 2×2 patches, stride 2: 4 patches (TL, TR, BL, BR); layers a, b | c → 2 groups
    kl = np.zeros((1, 4, 3))
    kl[0, :, 1] = [0.4, 0.8, 1.2, 2.0]  # layer b: output of group 0
    kl[0, :, 2] = [4.0, 0.0, 8.0, 0.4]  # layer c: output of group 1
    sign = np.ones((1, 4, 3))
    sign[0, :, 1] = [1, -1, 1, -1]
    sign[0, 1, 2] = 0
    ds = ace_dataset(fake_interventions(kl, sign, 2, 2), groups_da([[0, 0, 1]]), TracerSettings())
    assert ds["n_groups"].values.tolist() == [2]
    assert ds["output_layer"].values.tolist() == [["b", "c", ""]]
    eff0 = np.array([0.4, -0.8, 1.2, -2.0])
    eff1 = np.array([4.0, 0.0, 8.0, 0.4])
    assert np.allclose(ds["effect"].values[0, :, 0], eff0) and np.allclose(ds["effect"].values[0, :, 1], eff1)
    assert ds["ace"].values[0, 0] == pytest.approx(eff0.mean()) and ds["ace"].values[0, 1] == pytest.approx(3.1)
    expect1 = np.array([[4.0, 4.0, 0.0, 0.0], [4.0, 4.0, 0.0, 0.0], [8.0, 8.0, 0.4, 0.4], [8.0, 8.0, 0.4, 0.4]])
    assert np.allclose(ds["attribution"].values[0, 1], expect1)
    expect0 = np.kron(eff0.reshape(2, 2), np.ones((2, 2)))  # each pixel covered once: its patch's effect
    assert np.allclose(ds["attribution"].values[0, 0], expect0)
    # padding group 2
    assert np.isnan(ds["ace"].values[0, 2]) and np.isnan(ds["attribution"].values[0, 2]).all()
    assert np.isnan(ds["effect"].values[0, :, 2]).all() and (ds["top_feature"].values[0, 2] == -1).all()
    assert np.isnan(ds["positive_share"].values[0, 2])
    # mask of the output group (1): |a| ≥ 0.1 · 8.0 → the TL and BL blocks, not the 0.4 block
    assert np.array_equal(ds["mask"].values[0], expect1 >= 0.8)
    # top features by |attribution|: BL block (2.0) first, lower flat index first on ties
    assert ds["top_feature"].values[0, 1, :4].tolist() == [8, 9, 12, 13]
    assert ds["top_feature"].values[0, 1, 4:8].tolist() == [0, 1, 4, 5]
    assert np.allclose(ds["top_value"].values[0, 0, :4], -2.0)  # signed: BR block of group 0
    assert ds["positive_share"].values[0, 1] == pytest.approx(1.0)
    assert ds["positive_share"].values[0, 0] == pytest.approx((0.4 + 1.2) / (0.4 + 0.8 + 1.2 + 2.0))


def test_overlapping_patches_stride_one_coverage():
    # 4×4, 2×2 patches, stride 1: 9 patches; every effect 1 → every pixel's mean effect is 1
    # (corners covered by 1 patch, edges by 2, the inner 2×2 by 4: no border under-weighting)
    kl = np.ones((1, 9, 1))
    sign = np.ones((1, 9, 1))
    ds = ace_dataset(fake_interventions(kl, sign, 2, 1), groups_da([[0]]), TracerSettings())
    assert np.allclose(ds["attribution"].values[0, 0], 1.0)
    # one patch only (top-left corner 1, 1 = intervention 4) with effect −2: the inner 2×2 is covered
    # by 4 patches, so its mean effect is −2/4
    kl2 = np.zeros((1, 9, 1))
    kl2[0, 4, 0] = 2.0
    ds2 = ace_dataset(fake_interventions(kl2, -sign, 2, 1), groups_da([[0]]), TracerSettings())
    expect = np.zeros((4, 4))
    expect[1:3, 1:3] = -0.5
    assert np.allclose(ds2["attribution"].values[0, 0], expect)
    assert ds2["ace"].values[0, 0] == pytest.approx(-2.0 / 9)
    assert ds2["mask"].values[0].sum() == 4 and ds2["positive_share"].values[0, 0] == 0.0


def test_attribution_is_the_mean_over_covering_patches_numpy_loop():
    # 7×6 image, 3×2 patches, stride 2×1: rows 0,2,4 (the last cut to rows 4-6), 5 columns
    rng = np.random.default_rng(3)
    h, w, (kh, kw), (sh, sw) = 7, 6, (3, 2), (2, 1)
    starts_y, starts_x = [0, 2, 4], [0, 1, 2, 3, 4]
    n = len(starts_y) * len(starts_x)
    kl = rng.uniform(0, 2, (2, n, 2))
    sign = rng.choice([-1, 1], (2, n, 2))
    inter = fake_interventions(kl, sign, [kh, kw], [sh, sw], side=h).assign_attrs(width=w)
    ds = ace_dataset(inter, groups_da([[0, 1], [0, 0]]), TracerSettings(top_k=3))
    for s, g in [(0, 1), (1, 0)]:  # the group whose output layer is "b" (index 1) in each sample
        total, count = np.zeros((h, w)), np.zeros((h, w))
        for i, (py, px) in enumerate([(y, x) for y in starts_y for x in starts_x]):
            total[py : min(py + kh, h), px : min(px + kw, w)] += sign[s, i, 1] * kl[s, i, 1]
            count[py : min(py + kh, h), px : min(px + kw, w)] += 1
        assert (count > 0).all()
        np.testing.assert_allclose(ds["attribution"].values[s, g], total / count, rtol=1e-12)


def test_groups_aligned_by_coordinates_and_padding_per_sample():
    kl = np.arange(2 * 4 * 3, dtype=float).reshape(2, 4, 3)
    sign = np.ones_like(kl)
    ds_in = fake_interventions(kl, sign, 2, 2)
    # given in the other sample order: sample 101 has 3 groups, 100 one group
    g = groups_da([[0, 1, 2], [0, 0, 0]], samples=[101, 100])
    ds = ace_dataset(ds_in, g, TracerSettings())
    assert ds["n_groups"].values.tolist() == [1, 3]
    assert ds["output_layer"].values.tolist() == [["c", "", ""], ["a", "b", "c"]]
    assert np.allclose(ds["ace"].values[0, 0], kl[0, :, 2].mean())
    assert np.allclose(ds["ace"].values[1], kl[1].mean(0))
    assert np.isnan(ds["ace"].values[0, 1:]).all()
    with pytest.raises(ValueError, match="ids 0"):
        ace_dataset(ds_in, groups_da([[0, 2, 2], [0, 0, 0]]), TracerSettings())


def test_threshold_mask_rule():
    a = np.array([[0.0, -1.0], [0.05, 0.5]])
    assert threshold_mask(a, 0.1).tolist() == [[False, True], [False, True]]
    assert threshold_mask(a, 0.05).tolist() == [[False, True], [True, True]]  # inclusive
    assert not threshold_mask(np.zeros((3, 3)), 0.1).any()
    assert threshold_mask(np.array([[np.nan, 2.0], [1.0, 0.1]]), 0.5).tolist() == [[False, True], [True, False]]
    stack = np.stack([a, 10 * np.eye(2)])  # the maximum is per leading index
    assert threshold_mask(stack, 0.2).tolist() == [[[False, True], [False, True]], [[True, False], [False, True]]]
    da = xr.DataArray(a, dims=("y", "x"), coords={"y": [5, 6]})
    m = threshold_mask(da)
    assert isinstance(m, xr.DataArray) and m.dims == ("y", "x") and m["y"].values.tolist() == [5, 6]
    assert threshold_mask(torch.tensor(a), 0.1).tolist() == [[False, True], [False, True]]
    with pytest.raises(ValueError, match="threshold"):
        threshold_mask(a, 1.5)


def test_output_layers():
    assert output_layers([0, 0, 1, 2, 2, 2]).tolist() == [1, 2, 5]
    assert output_layers([0]).tolist() == [0]
    with pytest.raises(ValueError):
        output_layers([1, 1])


def test_end_to_end_with_analysis_and_groups():
    torch.manual_seed(0)
    model = nn.Sequential(
        OrderedDict(conv=nn.Conv2d(1, 3, 3, padding=1), relu=nn.ReLU(), flat=nn.Flatten(), fc=nn.Linear(3 * 36, 4))
    ).eval()
    imgs = torch.rand((2, 1, 6, 6)) * 2 - 1
    inter = interventions_dataset(model, imgs, TracerSettings(layers="all", patch=2, stride=1))
    grp = np.stack([layer_groups(binary_matrix(c, 0.05)) for c in inter["cka"].values])
    groups = xr.DataArray(grp, dims=("sample", "layer"), coords={"sample": inter["sample"], "layer": inter["layer"]})
    ds = ace_dataset(inter, groups, TracerSettings(top_k=5))
    assert ds["attribution"].dims == ("sample", "group", "y", "x") and ds["top_feature"].shape == (2, 4, 5)
    for s in range(2):
        last = output_layers(grp[s])
        for gi, li in enumerate(last):
            eff = inter["sign"].values[s, :, li] * inter["kl"].values[s, :, li]
            assert ds["ace"].values[s, gi] == pytest.approx(eff.mean(), rel=1e-12, abs=1e-300)
        assert ds["output_layer"].values[s, len(last) - 1] == "fc"
    assert ds["mask"].values.any()


def test_netcdf_round_trip_of_both_files(tmp_path):
    from causalxai import io

    torch.manual_seed(0)
    model = nn.Sequential(OrderedDict(flat=nn.Flatten(), fc=nn.Linear(16, 3))).eval()
    inter = interventions_dataset(model, torch.rand((2, 1, 4, 4)) * 2 - 1,
                                  TracerSettings(layers="all", patch=2, stride=(1, 2)), sample_ids=["a", "b"])
    assert inter.attrs["patch_size"] == 2 and list(inter.attrs["stride"]) == [1, 2]
    io.write_dataset(inter, tmp_path / "interventions.nc", step="interventions")
    back = io.open(tmp_path / "interventions.nc")
    groups = xr.DataArray([[0, 1], [0, 0]], dims=("sample", "layer"),
                          coords={"sample": ["a", "b"], "layer": ["flat", "fc"]})
    ds = ace_dataset(back, groups, TracerSettings())
    assert ds.sizes["intervention"] == 3 * 2
    io.write_dataset(ds, tmp_path / "ace.nc", step="ace")
    again = io.open(tmp_path / "ace.nc")
    assert again["output_layer"].values.tolist() == [["flat", "fc"], ["fc", ""]]
    assert again["mask"].dtype == bool and again["top_feature"].dtype == np.int64
    np.testing.assert_array_equal(again["attribution"].values, ds["attribution"].values)
    assert back["sign"].dtype == np.int8 and back["kl"].dtype == np.float64


def test_uncovered_pixels_get_zero_when_the_stride_exceeds_the_patch():
    # 4×4, 1×1 patches, stride 2: starts 0, 2 per axis → 4 patches; odd rows/columns are never occluded
    kl = np.array([[[1.0], [2.0], [3.0], [4.0]]])
    ds = ace_dataset(fake_interventions(kl, np.ones_like(kl), 1, 2), groups_da([[0]]), TracerSettings())
    expect = np.zeros((4, 4))
    expect[0, 0], expect[0, 2], expect[2, 0], expect[2, 2] = 1.0, 2.0, 3.0, 4.0
    np.testing.assert_array_equal(ds["attribution"].values[0, 0], expect)


def test_degenerate_ace_and_masks_are_refused():
    """ACE 0 for every node of every sample, or no mask at all: refused (issue 17); one sample whose
    every effect is 0 beside an informative one is normal."""
    from causalxai.checks import DegenerateResultError

    sign = np.ones((2, 4, 3))
    with pytest.raises(DegenerateResultError, match=r"ace: ace \(every sample and causal node\) is constant: all 4 "
                                                    r"finite values equal 0 \(the other 2 NaN\).*layers a, b, c"
                                                    r".*tracer.model.epochs"):
        ace_dataset(fake_interventions(np.zeros((2, 4, 3)), sign, 2, 2), groups_da([[0, 0, 1], [0, 1, 1]]),
                    TracerSettings())
    with pytest.raises(DegenerateResultError, match=r"ace: ace .* is all NaN"):
        ace_dataset(fake_interventions(np.full((2, 4, 3), np.nan), sign, 2, 2), groups_da([[0, 0, 1], [0, 1, 1]]),
                    TracerSettings())
    inner_only = np.zeros((2, 4, 3))
    inner_only[:, :, 0] = [[0.1, 0.2, 0.3, 0.4], [0.5, 0.1, 0.0, 0.2]]  # the first node changes, the output never
    with pytest.raises(DegenerateResultError, match=r"ace: mask .* is empty for all 2 samples"):
        ace_dataset(fake_interventions(inner_only, sign, 2, 2), groups_da([[0, 1, 1], [0, 1, 1]]), TracerSettings())
    one_blank = inner_only.copy()
    one_blank[1, :, 2] = [0.3, 0.0, 0.1, 0.2]
    ds = ace_dataset(fake_interventions(one_blank, sign, 2, 2), groups_da([[0, 1, 1], [0, 1, 1]]), TracerSettings())
    assert not ds["mask"].values[0].any() and ds["mask"].values[1].any()
