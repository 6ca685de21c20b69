"""Layer groups (causal nodes) and causal links from a CKA matrix (paper 004 Def. 3-4, App. G).

Binary matrix (§3.3.2): ``B_ij = 1`` iff ``CKA_ij ≥ 1 − ε``.

Choices where the paper leaves room (each is tested):

* **Inclusive threshold with a rounding tolerance.** ``B_ij = CKA_ij ≥ 1 − ε − atol``
  (``atol = 1e-12``), so that at ε = 0 two identical representations whose CKA rounds to
  0.9999999999999 still count as similar, and ε = 0.1 keeps CKA = 0.9 exactly on the boundary.
  A NaN CKA (not produced by :mod:`causalxai.tracer.cka`, which defines degenerate layers)
  counts as not similar; the diagonal is always 1.
* **Groups are chains, not cliques (Definition 3, Theorems 1-2, App. G step 1).** Def. 3 puts
  two layers in one group iff they are consecutive (``|i − j| = 1``) and ``B_ij = 1``; Theorem 2
  states a run ``f_r … f_s`` is a causal node iff ``CKA(K_i, K_{i+1}) ≥ 1 − ε`` for every
  consecutive pair, and App. G's procedure "computes the CKA similarity between consecutive
  layers". So a group is a maximal run of layers linked by consecutive similar pairs; layers
  at the two ends of a run need not be similar to each other. A new group starts at layer
  ``i`` exactly when ``B_{i−1,i} = 0``. As ε grows the superdiagonal of ``B`` only gains
  ones, so groups only merge: the number of groups never rises with ε, and every group at a
  larger ε is a union of groups at a smaller one; ε = 1 gives one node (CKA ≥ 0);
  ε = 0 merges only layers with CKA = 1 (an eval-mode Dropout, Identity, Flatten of the
  previous layer).
* **Links are directed, from the earlier group to the later (Definition 4).** Groups ``a < b``
  are linked when adjacent (``b = a + 1``, always true for consecutive groups) or when some
  layer of ``a`` and some layer of ``b`` have ``B = 1`` (a skip link, e.g. a residual
  connection). Def. 4's third, "indirect" clause (through the single intermediate group
  ``g_{a+1} = g_c = g_{b−1}`` via a layer ``f_k ∈ g_c`` with ``B(K_i, K_k) = 1``) only
  relates ``g_a`` to ``g_c``, which are adjacent and hence linked already, and names no
  condition on ``g_b``; it adds no edge we can define faithfully and is not implemented. This
  matches Fig. 2's reading: "the lack of causal connections between non-adjacent layer groups
  indicat[es] a linear causal chain". ``B`` is symmetrised before use.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import xarray as xr

from causalxai.tracer.settings import EPS_SWEEP, TracerSettings

__all__ = [
    "binary_matrix",
    "check_groups",
    "layer_groups",
    "group_members",
    "causal_links",
    "eps_sweep",
    "causal_nodes_dataset",
]

ATOL = 1e-12


def _square(matrix: object, what: str) -> np.ndarray:
    if isinstance(matrix, torch.Tensor):
        matrix = matrix.detach().cpu().numpy()
    elif isinstance(matrix, xr.DataArray):
        matrix = matrix.values
    arr = np.asarray(matrix)
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1] or arr.shape[0] < 1:
        raise ValueError(f"{what} must be a square (L, L) matrix with L ≥ 1, got shape {arr.shape}")
    return arr


def _check_eps(eps: float) -> float:
    eps = float(eps)
    if not 0.0 <= eps <= 1.0:
        raise ValueError(f"the CKA threshold ε must lie in [0, 1] (B_ij = CKA_ij ≥ 1 − ε), got {eps}")
    return eps


def binary_matrix(cka: object, eps: float, atol: float = ATOL) -> np.ndarray:
    """The binary CKA matrix ``B`` (§3.3.2): ``B_ij = CKA_ij ≥ 1 − ε − atol``, ``(L, L)`` bool.

    Args:
        cka: ``(L, L)`` CKA matrix (tensor, array or DataArray).
        eps: the threshold ε ∈ [0, 1] (paper default 0.05).
        atol: rounding tolerance (module docstring).
    """
    c = _square(cka, "the CKA matrix").astype(np.float64)
    b = c >= 1.0 - _check_eps(eps) - atol  # NaN compares False: not similar
    np.fill_diagonal(b, True)
    return b


def layer_groups(b: object) -> np.ndarray:
    """Definition 3: group id ``(L,)`` of every layer, ``0 … G−1`` in layer order.

    A group is a maximal run of consecutive layers with ``B_{i,i+1} = 1`` for every
    consecutive pair in it (Theorem 2; a chain, not a clique: module docstring).
    """
    bb = _square(b, "the binary matrix").astype(bool)
    breaks = ~np.diagonal(bb, offset=1)
    return np.concatenate([[0], np.cumsum(breaks)]).astype(np.int64)


def group_members(groups: Sequence[int] | np.ndarray) -> list[list[int]]:
    """The layer indices of each group, from :func:`layer_groups`'s ids."""
    g = check_groups(groups)
    return [np.flatnonzero(g == k).tolist() for k in range(int(g[-1]) + 1)]


def check_groups(groups: Sequence[int] | np.ndarray) -> np.ndarray:
    """``groups`` as int64 ids ``0 … G−1`` over consecutive layers in order (Def. 3's partition), else
    :class:`ValueError`."""
    g = np.asarray(groups, dtype=np.int64)
    if g.ndim != 1 or g.size == 0 or g[0] != 0 or np.any(np.diff(g) < 0) or np.any(np.diff(g) > 1):
        raise ValueError(
            "layer groups must be ids 0 … G−1 over consecutive layers in order (as layer_groups "
            f"returns), got {g.tolist()}"
        )
    return g


def causal_links(b: object, groups: Sequence[int] | np.ndarray) -> np.ndarray:
    """Definition 4: directed links ``(G, G)`` bool, ``link[a, b]`` for groups ``a < b``.

    ``link[a, a+1]`` always (adjacent groups); for ``b > a + 1`` a skip link when some layer
    of ``a`` and some layer of ``b`` have ``B = 1``. Lower triangle and diagonal are False.
    """
    bb = _square(b, "the binary matrix").astype(bool)
    g = check_groups(groups)
    if g.size != bb.shape[0]:
        raise ValueError(f"{g.size} group ids for a binary matrix over {bb.shape[0]} layers")
    n_groups = int(g[-1]) + 1
    onehot = np.zeros((g.size, n_groups), dtype=np.int64)
    onehot[np.arange(g.size), g] = 1
    sym = (bb | bb.T).astype(np.int64)
    similar = (onehot.T @ sym @ onehot) > 0
    return np.triu(similar, k=2) | np.eye(n_groups, k=1, dtype=bool)


def eps_sweep(
    cka: object,
    eps_values: Sequence[float] = EPS_SWEEP,
    layer_names: Sequence[str] | None = None,
    atol: float = ATOL,
) -> xr.Dataset:
    """App. G: groups and links for each ε, as one :class:`xarray.Dataset`.

    Args:
        cka: ``(L, L)`` CKA matrix; a :func:`~causalxai.tracer.cka.cka_dataset` DataArray
            supplies the layer names.
        eps_values: the thresholds (App. G: 0, 0.05, 0.1, 0.2, 1).
        layer_names: names of the layers (default: the DataArray's, else ``"0"``, ``"1"``, …).
        atol: rounding tolerance of :func:`binary_matrix`.

    Returns:
        Dataset with ``cka (layer_i, layer_j)``, ``similar (eps, layer_i, layer_j)`` (``B``),
        ``group (eps, layer)`` (ids), ``n_groups (eps)`` and ``link (eps, group_a, group_b)``
        (:func:`causal_links`, padded with False beyond ``n_groups``; ``group_a``/``group_b``
        run over ``0 … L−1``).
    """
    c = _square(cka, "the CKA matrix").astype(np.float64)
    n_layers = c.shape[0]
    if layer_names is None:
        if isinstance(cka, xr.DataArray) and "layer_i" in cka.coords:
            layer_names = [str(v) for v in cka.coords["layer_i"].values]
        else:
            layer_names = [str(i) for i in range(n_layers)]
    layer_names = [str(v) for v in layer_names]
    if len(layer_names) != n_layers:
        raise ValueError(f"{len(layer_names)} layer names for a CKA matrix over {n_layers} layers")
    eps = np.asarray([_check_eps(e) for e in eps_values], dtype=np.float64)
    if eps.size == 0:
        raise ValueError("eps_sweep needs at least one ε")

    similar = np.stack([binary_matrix(c, e, atol) for e in eps])
    group = np.stack([layer_groups(s) for s in similar])
    n_groups = group[:, -1] + 1
    link = np.zeros((eps.size, n_layers, n_layers), dtype=bool)
    for k, (s, g) in enumerate(zip(similar, group)):
        link[k, : n_groups[k], : n_groups[k]] = causal_links(s, g)

    return xr.Dataset(
        {
            "cka": (("layer_i", "layer_j"), c),
            "similar": (("eps", "layer_i", "layer_j"), similar),
            "group": (("eps", "layer"), group),
            "n_groups": (("eps",), n_groups.astype(np.int64)),
            "link": (("eps", "group_a", "group_b"), link),
        },
        coords={
            "eps": eps,
            "layer": layer_names,
            "layer_i": layer_names,
            "layer_j": layer_names,
            "group_a": np.arange(n_layers),
            "group_b": np.arange(n_layers),
        },
        attrs={
            "description": "causal nodes (Def. 3: chains of consecutive layers with CKA ≥ 1 − ε) and "
            "directed causal links (Def. 4) per ε (paper 004 App. G)",
            "atol": atol,
        },
    )


def causal_nodes_dataset(cka: xr.DataArray, settings: TracerSettings, *, atol: float = ATOL) -> xr.Dataset:
    """``causal_nodes.nc``: causal nodes and links of every analysed sample (Def. 3-4, App. G).

    Args:
        cka: ``cka (sample, layer_i, layer_j)`` from the interventions step.
        settings: its ``eps`` (the chosen threshold ε: nodes and links at ``1 − ε``) and
            ``eps_sweep`` (App. G's sweep); the one way ε reaches the grouping.
        atol: rounding tolerance of :func:`binary_matrix`.

    Returns:
        Dataset with ``cka (sample, layer_i, layer_j)``, ``similar (sample, layer_i,
        layer_j)`` (B at ε), ``group (sample, layer)``, ``n_groups (sample)``, ``link
        (sample, group_a, group_b)`` (padded with False beyond ``n_groups``), and the sweep
        ``group_sweep (sample, eps, layer)`` and ``n_groups_sweep (sample, eps)``; attr
        ``eps``. Only thresholds run here, so changing ε never recomputes a CKA matrix.
    """
    if set(cka.dims) != {"sample", "layer_i", "layer_j"}:
        raise ValueError(f"causal_nodes_dataset needs cka(sample, layer_i, layer_j), got dims {cka.dims}")
    cka = cka.transpose("sample", "layer_i", "layer_j")
    eps, sweep = settings.eps, list(settings.eps_sweep)  # validated by TracerSettings
    per_sample = [eps_sweep(c, [eps, *sweep], atol=atol) for c in cka]
    ds = xr.Dataset(
        {
            "cka": cka.astype(np.float64),
            "similar": (("sample", "layer_i", "layer_j"), np.stack([d["similar"].values[0] for d in per_sample])),
            "group": (("sample", "layer"), np.stack([d["group"].values[0] for d in per_sample])),
            "n_groups": ("sample", np.array([int(d["n_groups"].values[0]) for d in per_sample], dtype=np.int64)),
            "link": (("sample", "group_a", "group_b"), np.stack([d["link"].values[0] for d in per_sample])),
            "group_sweep": (("sample", "eps", "layer"), np.stack([d["group"].values[1:] for d in per_sample])),
            "n_groups_sweep": (("sample", "eps"), np.stack([d["n_groups"].values[1:] for d in per_sample])),
        },
        coords={
            "sample": cka["sample"].values,
            "layer": [str(v) for v in cka["layer_i"].values],
            "eps": np.asarray(sweep, dtype=np.float64),
            "group_a": np.arange(cka.sizes["layer_i"]),
            "group_b": np.arange(cka.sizes["layer_i"]),
        },
        attrs={"eps": eps, "atol": atol},
    )
    ds["group"].attrs["description"] = ("causal node of each layer "
                                        "(Def. 3: chains of consecutive layers with CKA >= 1 - eps)")
    ds["link"].attrs["description"] = ("directed causal links between nodes "
                                       "(Def. 4: adjacent, or any similar layer pair)")
    return ds
