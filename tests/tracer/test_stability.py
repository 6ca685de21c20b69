"""Mechanism stability (ε-neighbourhood, bootstrap, near-threshold pairs) against hand-computed cases and
per-sample loops over :mod:`causalxai.tracer.nodes` / NumPy."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from causalxai.tracer.mechanisms import mechanisms_dataset
from causalxai.tracer.nodes import binary_matrix, layer_groups
from causalxai.tracer.settings import MechanismSettings
from causalxai.tracer.stability import (
    bootstrap_counts,
    eps_grid,
    groups_over_eps,
    near_threshold_pairs,
    stability_dataset,
    stability_table,
)

LAYERS = ["l0", "l1", "l2", "l3"]


def chain_cka(superdiagonals: list[list[float]]) -> xr.DataArray:
    """CKA matrices (sample, L, L) with the given consecutive-pair values (others 0.5)."""
    sup = np.asarray(superdiagonals, dtype=np.float64)
    s, n = sup.shape[0], sup.shape[1] + 1
    m = np.full((s, n, n), 0.5)
    idx = np.arange(n - 1)
    m[:, idx, idx + 1] = sup
    m[:, idx + 1, idx] = sup
    m[:, np.arange(n), np.arange(n)] = 1.0
    return xr.DataArray(m, dims=("sample", "layer_i", "layer_j"),
                        coords={"sample": np.arange(s) + 10, "layer_i": LAYERS[:n], "layer_j": LAYERS[:n]})


def test_eps_grid():
    np.testing.assert_allclose(eps_grid(0.05, 0.01, 0.0025), [0.04, 0.0425, 0.045, 0.0475, 0.05, 0.0525, 0.055,
                                                             0.0575, 0.06])
    np.testing.assert_allclose(eps_grid(0.01, 0.02, 0.01), [0.0, 0.01, 0.02, 0.03])  # clipped at 0
    assert eps_grid(0.05, 0.0, 0.01).tolist() == [0.05]
    with pytest.raises(ValueError):
        eps_grid(0.05, 0.01, 0.0)


def test_groups_over_eps_match_nodes_per_sample():
    rng = np.random.default_rng(0)
    cka = rng.uniform(0.85, 1.0, (7, 6, 6))
    cka = (cka + cka.transpose(0, 2, 1)) / 2
    cka[:, 2, 3] = cka[:, 3, 2] = 0.95  # exactly on the threshold of ε = 0.05: similar (inclusive)
    cka[0, 0, 1] = cka[0, 1, 0] = np.nan  # NaN: not similar
    grid = [0.0, 0.03, 0.05, 0.07, 0.2]
    got = groups_over_eps(cka, grid)
    for e, eps in enumerate(grid):
        for s in range(7):
            assert got[e, s].tolist() == layer_groups(binary_matrix(cka[s], eps)).tolist()
    assert got[2, 1, 3] == got[2, 1, 2]


def test_near_threshold_pairs_hand_computed():
    cka = chain_cka([[0.945, 0.96, 0.5], [0.9611, 0.94, 0.951]]).values
    # |CKA − 0.95| ≤ 0.01: sample 0: 0.945, 0.96 → 2; sample 1: 0.94, 0.951 → 2 (0.9611 is 0.0111 away)
    assert near_threshold_pairs(cka, 0.05, 0.01).tolist() == [2, 2]
    assert near_threshold_pairs(cka, 0.05, 0.001).tolist() == [0, 1]


def test_bootstrap_counts_against_a_loop():
    rng = np.random.default_rng(1)
    codes = rng.integers(0, 4, 30)
    index = rng.integers(0, 30, (50, 30))
    n_mech, share = bootstrap_counts(codes, 4, index)
    for b in range(50):
        _, counts = np.unique(codes[index[b]], return_counts=True)
        assert n_mech[b] == counts.size and share[b] == pytest.approx(counts.max() / 30)


def test_stability_dataset_hand_computed():
    # 4 layers, 4 samples; consecutive CKA values decide the partitions:
    # ε = 0.04 (threshold 0.96): s0 l0+l1|l2|l3, s1 l0+l1|l2|l3, s2 l0|l1|l2|l3, s3 l0+l1+l2+l3
    # ε = 0.05 (0.95):           s0 l0+l1+l2|l3, s1 l0+l1+l2|l3, s2 l0|l1|l2|l3, s3 l0+l1+l2+l3
    # ε = 0.06 (0.94):           s0 l0+l1+l2|l3, s1 l0+l1+l2+l3, s2 l0|l1+l2|l3, s3 l0+l1+l2+l3
    cka = chain_cka([[0.99, 0.955, 0.5], [0.99, 0.95, 0.945], [0.5, 0.94, 0.5], [0.99, 0.99, 0.99]])
    settings = MechanismSettings(eps_radius=0.01, eps_step=0.01, bootstrap=40, top=2, margin=0.005, seed=3)
    ds = stability_dataset(cka, 0.05, settings)
    np.testing.assert_allclose(ds["eps_grid"].values, [0.04, 0.05, 0.06])
    assert ds["eps_n_mechanisms"].values.tolist() == [3, 3, 3]
    np.testing.assert_allclose(ds["eps_dominant_share"].values, [0.5, 0.5, 0.5])
    # Fig. 11 order: fewest nodes first, then share, then composition
    # ε 0.04: l0+l1+l2+l3 (1 node, 1/4), l0+l1|l2|l3 (3 nodes, 2/4), l0|l1|l2|l3 (4 nodes)
    np.testing.assert_allclose(ds["eps_coverage"].values[0], [0.25, 0.75])
    # ε 0.05: l0+l1+l2+l3 (1/4), l0+l1+l2|l3 (2/4): dominant with 1 intermediate node
    np.testing.assert_allclose(ds["eps_coverage"].values[1], [0.25, 0.75])
    assert ds["eps_dominant_composition"].values[1] == "l0+l1+l2|l3"
    assert ds["eps_dominant_intermediate"].values.tolist() == [2, 1, 0]
    # ε 0.06: l0+l1+l2+l3 has 2 samples (s1, s3): dominant, then l0+l1+l2|l3, l0|l1+l2|l3
    assert ds["eps_dominant_composition"].values[2] == "l0+l1+l2+l3"
    np.testing.assert_allclose(ds["eps_coverage"].values[2], [0.5, 0.75])
    np.testing.assert_allclose(ds["eps_mean_intermediate"].values, [(2 + 2 + 3 + 0) / 4, (1 + 1 + 3 + 0) / 4,
                                                                    (1 + 0 + 2 + 0) / 4])
    # near 0.95 within 0.005: s0 0.955; s1 0.95 and 0.945; s2 none; s3 none
    assert ds["near_pairs"].values.tolist() == [1, 2, 0, 0]
    # bootstrap: seeded, reproduced by hand with the same draw
    index = np.random.default_rng(3).integers(0, 4, (40, 4))
    codes = mechanisms_dataset(groups_over_eps(cka.values, [0.05])[0], layers=LAYERS)["sample_mechanism"].values
    for b in range(40):
        _, counts = np.unique(codes[index[b]], return_counts=True)
        assert ds["boot_n_mechanisms"].values[1, b] == counts.size
        assert ds["boot_dominant_share"].values[1, b] == pytest.approx(counts.max() / 4)
    again = stability_dataset(cka, 0.05, settings)
    xr.testing.assert_identical(ds, again)
    table = stability_table(ds)
    assert table["chosen"].tolist() == [False, True, False]
    assert table.columns.tolist()[:8] == ["eps", "chosen", "n_mechanisms", "dominant_share",
                                          "dominant_n_intermediate", "mean_n_intermediate", "coverage_top1",
                                          "coverage_top2"]
    assert table["boot_n_mechanisms_q50"].between(1, 4).all()


def test_stability_without_bootstrap_and_settings_errors():
    cka = chain_cka([[0.99, 0.9, 0.99]])
    ds = stability_dataset(cka, 0.05, MechanismSettings(bootstrap=0, eps_radius=0.0))
    assert ds.sizes["bootstrap"] == 0 and ds["eps_n_mechanisms"].values.tolist() == [1]
    assert "boot_n_mechanisms_q50" not in stability_table(ds)
    with pytest.raises(ValueError, match="tracer.mechanisms.bootstrap"):
        MechanismSettings.from_params({"bootstrap": -1})
    with pytest.raises(ValueError, match="tracer.mechanisms.eps_step"):
        MechanismSettings.from_params({"eps_radius": 0.5, "eps_step": 1e-5})
