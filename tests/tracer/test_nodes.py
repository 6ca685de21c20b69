"""Layer groups and causal links (paper 004 Def. 3-4, App. G) on hand-computed cases.

(Named ``test_layer_groups.py``: ``tests/effects/test_groups.py`` exists and test folders
have no ``__init__.py``, so a second ``test_groups.py`` would fail collection.)
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from causalxai.tracer.cka import cka_dataset, cka_matrix
from causalxai.tracer.nodes import (
    binary_matrix,
    causal_links,
    eps_sweep,
    group_members,
    layer_groups,
)

# A CKA matrix written out by hand. Consecutive pairs: (0,1)=.97 (1,2)=.90 (2,3)=.85 (3,4)=.65;
# a long-range pair (1,4)=.96 (a residual-like skip); (0,3)=.60 shows groups are chains.
HAND = np.array(
    [
        [1.00, 0.97, 0.80, 0.60, 0.50],
        [0.97, 1.00, 0.90, 0.70, 0.96],
        [0.80, 0.90, 1.00, 0.85, 0.55],
        [0.60, 0.70, 0.85, 1.00, 0.65],
        [0.50, 0.96, 0.55, 0.65, 1.00],
    ]
)

# eps -> (group id per layer, directed links (a, b))
HAND_EXPECTED = {
    # threshold 1: nothing merges, no off-diagonal CKA is 1: a plain chain of 5 nodes
    0.0: ([0, 1, 2, 3, 4], {(0, 1), (1, 2), (2, 3), (3, 4)}),
    # threshold .95: 0-1 merge; (1,4)=.96 links group {0,1} to group {4}: a skip link 0 -> 3
    0.05: ([0, 0, 1, 2, 3], {(0, 1), (1, 2), (2, 3), (0, 3)}),
    # threshold .90 (inclusive: (1,2)=.90 merges); (1,4) still links {0,1,2} to {4}: 0 -> 2
    0.1: ([0, 0, 0, 1, 2], {(0, 1), (1, 2), (0, 2)}),
    # threshold .80: (2,3)=.85 merges although CKA(0,3)=.60 < .80 (chain, Theorem 2)
    0.2: ([0, 0, 0, 0, 1], {(0, 1)}),
    # threshold .65: (3,4)=.65 on the boundary merges: one node
    0.35: ([0, 0, 0, 0, 0], set()),
    1.0: ([0, 0, 0, 0, 0], set()),
}


def links_of(matrix: np.ndarray) -> set[tuple[int, int]]:
    return {(int(a), int(b)) for a, b in zip(*np.nonzero(matrix))}


@pytest.mark.parametrize("eps", sorted(HAND_EXPECTED))
def test_hand_computed_groups_and_links(eps: float) -> None:
    groups, links = HAND_EXPECTED[eps]
    b = binary_matrix(HAND, eps)
    g = layer_groups(b)
    assert g.tolist() == groups
    link = causal_links(b, g)
    assert link.shape == (max(groups) + 1,) * 2 and link.dtype == bool
    assert links_of(link) == links


def test_binary_matrix_inclusive_with_rounding_tolerance() -> None:
    c = np.array([[1.0, 1 - 1e-13, 0.9], [1 - 1e-13, 1.0, np.nan], [0.9, np.nan, 1.0]])
    b0 = binary_matrix(c, 0.0)
    assert b0[0, 1] and b0[1, 0]  # identical layers whose CKA rounds below 1 still count at ε = 0
    assert not b0[0, 2]
    assert binary_matrix(c, 0.1)[0, 2]  # 0.9 ≥ 1 − 0.1
    assert not binary_matrix(c, 0.1 - 1e-9)[0, 2]
    assert not binary_matrix(c, 1.0)[1, 2]  # NaN: not similar
    assert binary_matrix(np.full((3, 3), np.nan), 0.5).diagonal().all()  # a layer is itself
    with pytest.raises(ValueError, match="ε"):
        binary_matrix(c, -0.1)
    with pytest.raises(ValueError, match="square"):
        binary_matrix(np.ones((2, 3)), 0.1)


def test_group_members() -> None:
    assert group_members([0, 0, 1, 2, 2, 2]) == [[0, 1], [2], [3, 4, 5]]
    with pytest.raises(ValueError, match="consecutive"):
        group_members([0, 2, 2])
    with pytest.raises(ValueError, match="consecutive"):
        causal_links(np.ones((3, 3), bool), [0, 1, 0])


def random_network_cka(rng: np.random.Generator, n_layers: int = 9, n: int = 60) -> np.ndarray:
    """A valid CKA matrix from random activations of a random chain of layers."""
    x = rng.normal(size=(n, 12))
    acts = [x]
    for _ in range(n_layers - 1):
        noise = rng.uniform(0.0, 1.5)
        w = rng.normal(size=(x.shape[1], 12))
        x = np.tanh(x @ w / np.sqrt(x.shape[1])) + noise * rng.normal(size=(n, 12))
        acts.append(x)
    return cka_matrix([torch.from_numpy(a) for a in acts]).numpy()


def test_monotone_in_eps_on_random_cka_matrices() -> None:
    """Groups only merge as ε grows (count never rises; each coarse group is a union of fine
    ones); ε = 1 gives one node."""
    rng = np.random.default_rng(0)
    grid = np.linspace(0.0, 1.0, 201)
    for _ in range(12):
        c = random_network_cka(rng)
        ds = eps_sweep(c, grid)
        n_groups = ds["n_groups"].values
        assert np.all(np.diff(n_groups) <= 0)
        assert n_groups[-1] == 1 and not ds["link"].values[-1].any()
        group = ds["group"].values
        for fine, coarse in zip(group[:-1], group[1:]):
            # same fine group => same coarse group
            assert np.all(coarse[1:][fine[1:] == fine[:-1]] == coarse[:-1][fine[1:] == fine[:-1]])
        assert 1 < n_groups[0]  # non-vacuous: random layers are not all identical


def test_eps_zero_groups_identical_layers_of_a_torch_network() -> None:
    """ε = 0: eval-mode Dropout, Flatten of the previous layer and Identity join that layer."""
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3),  # 0
        nn.ReLU(),  # 1
        nn.Dropout(0.5),  # 2: identity in eval mode
        nn.Flatten(),  # 3: same representation, flattened
        nn.Identity(),  # 4
        nn.Linear(4 * 6 * 6, 16),  # 5
        nn.Tanh(),  # 6
        nn.Linear(16, 10),  # 7
    ).eval()
    x = torch.randn(50, 1, 8, 8)
    acts = {}
    with torch.no_grad():
        out = x
        for i, layer in enumerate(net):
            out = layer(out)
            acts[f"{i}:{type(layer).__name__}"] = out
    da = cka_dataset(acts)
    ds = eps_sweep(da)
    assert list(ds["layer"].values) == list(acts)
    g0 = ds["group"].sel(eps=0.0).values.tolist()
    assert g0 == [0, 1, 1, 1, 1, 2, 3, 4]
    assert int(ds["n_groups"].sel(eps=0.0)) == 5
    assert int(ds["n_groups"].sel(eps=1.0)) == 1


def test_residual_like_skip_link() -> None:
    """Layer 4 = layer 1 + a small residual branch; layers 2, 3 unrelated: a skip link 1 -> 4."""
    rng = np.random.default_rng(1)
    n = 200
    l0, l1, l2, l3 = (rng.normal(size=(n, 8)) for _ in range(4))
    l4 = l1 + 0.05 * l3
    c = cka_matrix([torch.from_numpy(a) for a in (l0, l1, l2, l3, l4)]).numpy()
    assert c[1, 4] >= 0.95 and max(c[0, 1], c[1, 2], c[2, 3], c[3, 4]) < 0.95
    ds = eps_sweep(c, [0.05])
    assert ds["group"].values[0].tolist() == [0, 1, 2, 3, 4]
    link = ds["link"].values[0]
    assert links_of(link) == {(0, 1), (1, 2), (2, 3), (3, 4), (1, 4)}


def test_eps_sweep_dataset_layout() -> None:
    ds = eps_sweep(HAND, layer_names=["a", "b", "c", "d", "e"])
    assert ds["eps"].values.tolist() == [0.0, 0.05, 0.1, 0.2, 1.0]  # App. G's grid by default
    assert ds["group"].dims == ("eps", "layer")
    assert ds["link"].dims == ("eps", "group_a", "group_b")
    assert ds["similar"].dims == ("eps", "layer_i", "layer_j")
    assert ds["n_groups"].values.tolist() == [5, 4, 3, 2, 1]
    for k, eps in enumerate(ds["eps"].values):
        groups, links = HAND_EXPECTED[float(eps)]
        assert ds["group"].values[k].tolist() == groups
        assert links_of(ds["link"].values[k]) == links  # padding beyond n_groups is False
    np.testing.assert_array_equal(ds["cka"].values, HAND)
    with pytest.raises(ValueError, match="layer names"):
        eps_sweep(HAND, layer_names=["a"])


def test_causal_nodes_dataset_per_sample():
    import xarray as xr

    from causalxai.tracer.nodes import causal_nodes_dataset
    from causalxai.tracer.settings import TracerSettings

    names = ["a", "b", "c", "d"]
    # sample 0: a~b, c~d (two nodes, no skip); sample 1: all distinct but a~d (skip link a -> d)
    c0 = np.array([[1, .99, .2, .1], [.99, 1, .3, .2], [.2, .3, 1, .97], [.1, .2, .97, 1]])
    c1 = np.array([[1, .5, .4, .98], [.5, 1, .3, .2], [.4, .3, 1, .6], [.98, .2, .6, 1]])
    cka = xr.DataArray(np.stack([c0, c1]), dims=("sample", "layer_i", "layer_j"),
                       coords={"sample": [7, 9], "layer_i": names, "layer_j": names})
    ds = causal_nodes_dataset(cka, TracerSettings(eps=0.05, eps_sweep=[0, 0.05, 1]))
    assert ds["group"].sel(sample=7).values.tolist() == [0, 0, 1, 1]
    assert ds["group"].sel(sample=9).values.tolist() == [0, 1, 2, 3]
    assert ds["n_groups"].values.tolist() == [2, 4]
    link9 = ds["link"].sel(sample=9).values
    assert link9[0, 1] and link9[1, 2] and link9[2, 3] and link9[0, 3] and not link9[0, 2]
    assert ds["link"].sel(sample=7).values.sum() == 1
    assert ds["n_groups_sweep"].sel(sample=7).values.tolist() == [4, 2, 1]
    assert ds.attrs["eps"] == 0.05
