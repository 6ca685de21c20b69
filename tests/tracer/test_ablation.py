"""Causal validation of the causal nodes (node ablation, agreement with ACE) and their top units (App. B),
against per-row / per-intervention loops in float64 NumPy and scipy."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
import torch
import xarray as xr
from scipy.stats import spearmanr
from torch import nn

from causalxai.tracer.ablation import (
    ablate_nodes,
    ace_ablation_agreement,
    node_validation_dataset,
    spearman,
    unit_changes,
)
from causalxai.tracer.interventions import interventions_dataset
from causalxai.tracer.settings import TracerSettings

LAYERS = ["conv", "relu", "flat", "fc1", "relu2", "fc2"]
SIDE = 7


def model() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(OrderedDict(
        conv=nn.Conv2d(1, 3, 3, padding=1), relu=nn.ReLU(), flat=nn.Flatten(),
        fc1=nn.Linear(3 * SIDE * SIDE, 5), relu2=nn.ReLU(), fc2=nn.Linear(5, 4),
    )).eval()


def images(n: int = 2) -> torch.Tensor:
    g = torch.Generator().manual_seed(4)
    return torch.rand((n, 1, SIDE, SIDE), generator=g) * 2 - 1


def manual_forward(net: nn.Sequential, x: np.ndarray, replace: dict[str, np.ndarray] | None = None) -> dict:
    """Layer by layer in float64, one input, ``replace[name]`` substituted for that layer's output."""
    out, h = {}, torch.from_numpy(x[None].astype(np.float64))
    with torch.no_grad():
        for name, layer in net.named_children():
            h = layer.double()(h)
            if replace and name in replace:
                h = torch.from_numpy(replace[name][None].astype(np.float64))
            out[name] = h[0].numpy().copy()
    net.float()
    return out


def np_log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max()
    return z - np.log(np.exp(z).sum())


def test_spearman_matches_scipy_and_degenerate_cases():
    rng = np.random.default_rng(0)
    for _ in range(20):
        a, b = rng.normal(size=9), rng.normal(size=9)
        b[:3] = b[3]  # ties
        assert spearman(a, b) == pytest.approx(spearmanr(a, b).statistic, abs=1e-12)
    assert spearman([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0)
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert np.isnan(spearman([1, 2], [1, 2])) and np.isnan(spearman([1, 1, 1], [1, 2, 3]))
    assert spearman([1, 2, np.nan, 3], [1, 2, 5, 3]) == pytest.approx(1.0)  # NaN pairs dropped


def test_ablate_nodes_matches_a_manual_forward_per_row():
    net, x = model(), images(1)[0]
    rng = np.random.default_rng(1)
    reps = [("relu", torch.from_numpy(rng.normal(size=(3, SIDE, SIDE)).astype(np.float32))),
            ("fc1", torch.from_numpy(rng.normal(size=5).astype(np.float32))),
            ("relu", torch.zeros(3, SIDE, SIDE)),
            ("fc2", torch.tensor([0.0, 3.0, 0.0, 0.0]))]
    original, ablated = ablate_nodes(net, x, reps)
    np.testing.assert_allclose(original.numpy(), manual_forward(net, x.numpy())["fc2"], rtol=1e-5, atol=1e-6)
    for g, (name, value) in enumerate(reps):
        ref = manual_forward(net, x.numpy(), {name: value.numpy()})["fc2"]
        np.testing.assert_allclose(ablated[g].numpy(), ref, rtol=1e-5, atol=1e-6)
    assert ablated[3].tolist() == [0.0, 3.0, 0.0, 0.0]
    assert not any(m._forward_hooks for m in net.modules())  # hooks removed


def test_unit_changes_against_numpy():
    a = torch.from_numpy(np.random.default_rng(2).normal(size=(5, 3, 4, 2)).astype(np.float32))
    ref = np.abs(a.numpy()[1:].astype(np.float64) - a.numpy()[0]).mean(axis=(2, 3))
    np.testing.assert_allclose(unit_changes(a).numpy(), ref, rtol=1e-12)
    lin = a.reshape(5, -1)
    np.testing.assert_allclose(unit_changes(lin).numpy(), np.abs(lin.numpy()[1:] - lin.numpy()[0]), rtol=1e-6)


def test_node_validation_against_per_intervention_loops():
    net, imgs = model(), images(2)
    # 3×3 patches, stride 2 on 7 px: starts 0, 2, 4 (the last window covers rows 4-6): 9 interventions
    settings = TracerSettings(layers=LAYERS, patch=3, stride=2, top_units=2)
    inter = interventions_dataset(net, imgs, settings, sample_ids=[5, 9])
    assert inter.sizes["intervention"] == 9
    groups = xr.DataArray([[0, 0, 1, 2, 2, 3], [0, 1, 1, 1, 2, 2]], dims=("sample", "layer"),
                          coords={"sample": [5, 9], "layer": LAYERS})
    ds = node_validation_dataset(net, inter, groups, settings)
    assert ds["ablation"].values.tolist() == ["interventions", "samples"]
    x_all = inter["inputs"].values
    originals = [manual_forward(net, x) for x in x_all]
    population = {n: np.mean([o[n] for o in originals], axis=0) for n in LAYERS}
    starts = [0, 2, 4]
    for s, last in [(0, ["relu", "flat", "relu2", "fc2"]), (1, ["conv", "fc1", "fc2"])]:
        x = x_all[s]
        xs = []
        for py in starts:
            for px in starts:
                xp = x.copy()
                xp[:, py : py + 3, px : px + 3] = -1.0  # raw baseline 0 → normalised −1
                xs.append(xp)
        rows = [manual_forward(net, xp) for xp in xs]
        lp0 = np_log_softmax(originals[s]["fc2"])
        for g, name in enumerate(last):
            for a, value in enumerate([np.mean([r[name] for r in rows], axis=0), population[name]]):
                lpa = np_log_softmax(manual_forward(net, x, {name: value})["fc2"])
                kl = float((np.exp(lpa) * (lpa - lp0)).sum())
                assert ds["ablation_kl"].values[s, g, a] == pytest.approx(kl, rel=1e-4, abs=1e-9)
                y0 = int(np.argmax(lp0))
                assert ds["ablation_prob_drop"].values[s, g, a] == pytest.approx(
                    np.exp(lp0[y0]) - np.exp(lpa[y0]), abs=1e-6)
                assert ds["ablation_flip"].values[s, g, a] == (int(np.argmax(lpa)) != y0)
            # top units: mean |Δ| per unit (axis 0 of a single output) over interventions and positions
            d = np.stack([np.abs(r[name] - originals[s][name]).reshape(originals[s][name].shape[0], -1).mean(1)
                          for r in rows])  # (n, U)
            order = np.argsort(-d.mean(0), kind="stable")[:2]
            assert ds["top_unit"].values[s, g].tolist() == order.tolist()
            np.testing.assert_allclose(ds["top_unit_score"].values[s, g], d.mean(0)[order], rtol=1e-4, atol=1e-9)
            # contribution map: per pixel, mean over the covering patches of the unit's |Δ|
            for r_, u in enumerate(order):
                total, count = np.zeros((SIDE, SIDE)), np.zeros((SIDE, SIDE))
                for i, (py, px) in enumerate([(py, px) for py in starts for px in starts]):
                    total[py : py + 3, px : px + 3] += d[i, u]
                    count[py : py + 3, px : px + 3] += 1
                np.testing.assert_allclose(ds["unit_attribution"].values[s, g, r_], total / count, rtol=1e-4,
                                           atol=1e-9)
        pad = len(last)
        assert np.isnan(ds["ablation_kl"].values[s, pad:]).all() and (ds["top_unit"].values[s, pad:] == -1).all()
        assert np.isnan(ds["unit_attribution"].values[s, pad:]).all()
    again = node_validation_dataset(net, inter, groups, settings)
    xr.testing.assert_identical(ds, again)


def test_ace_ablation_agreement_hand_computed():
    ace = xr.DataArray([[0.1, -0.5, 0.3, np.nan], [0.2, 0.1, np.nan, np.nan]], dims=("sample", "group"),
                       coords={"sample": [1, 2]})
    abl = xr.DataArray([[[1.0, 3.0], [9.0, 2.0], [4.0, 1.0], [np.nan, np.nan]],
                        [[1.0, 1.0], [2.0, 2.0], [np.nan, np.nan], [np.nan, np.nan]]],
                       dims=("sample", "group", "ablation"), coords={"ablation": ["interventions", "samples"]})
    out = ace_ablation_agreement(ace, abl)
    # sample 1: |ACE| 0.1 < 0.3 < 0.5; interventions 1 < 4 < 9 → +1; samples 3 > 1 < 2 → ranks (3, 2, 1) vs (1, 3, 2)
    assert out["ace_ablation_spearman"].values[0, 0] == pytest.approx(1.0)
    assert out["ace_ablation_spearman"].values[0, 1] == pytest.approx(spearmanr([0.1, 0.5, 0.3], [3, 2, 1]).statistic)
    assert np.isnan(out["ace_ablation_spearman"].values[1]).all()  # two nodes only
    pooled = spearmanr([0.1, 0.5, 0.3, 0.2, 0.1], [1, 9, 4, 1, 2]).statistic
    assert out["ace_ablation_spearman_pooled"].values[0] == pytest.approx(pooled)
