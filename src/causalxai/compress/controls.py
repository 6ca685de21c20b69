"""Matched controls of the compressed models (issue 16): partitions TRACER did not find, built
by the same builder (:func:`~causalxai.compress.build.compress_model`) and retrained the same way.

Two kinds:

* **random contiguous partitions** (:func:`random_partitions`): the observed layers cut into
  the same number of contiguous nodes as the TRACER model, a partition different from every
  mechanism TRACER found, whose built model has a parameter count within ``±budget`` (25 %)
  of the TRACER model's. The partitions are drawn by seeded rejection sampling without
  replacement: the cut sets are enumerated (``C(L−1, n−1)`` of them for ``L`` layers and
  ``n`` nodes) in a seeded random order, and the first ``n_draws`` that pass both tests are
  kept; fewer (possibly none) are returned when fewer exist, and the caller records that.
  A model's parameter count is computed from the node shapes without building it
  (:func:`partition_params`, equal to :func:`~causalxai.compress.build.compression_plan`'s).
* **the mechanisms of a random-weight copy** (:func:`random_weight_mechanisms`): the target's
  architecture with freshly initialised (seeded) weights, analysed by TRACER's own chain
  (interventions → CKA → causal nodes → mechanisms) on the same samples; a TRACER model is
  matched with the random-weight mechanism of the same number of nodes, else the nearest
  (ties: the more common one), by :func:`match_by_nodes`.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import xarray as xr
from torch import nn

from causalxai.compress.build import _groups, _shapes, conv_rule
from causalxai.tracer.interventions import interventions_dataset
from causalxai.tracer.mechanisms import GROUP_SEP, LAYER_SEP, mechanisms_dataset, parse_composition
from causalxai.tracer.model import leaf_modules
from causalxai.tracer.nodes import causal_nodes_dataset
from causalxai.tracer.settings import TracerSettings

__all__ = ["match_by_nodes", "partition_params", "random_partitions", "random_weight_copy",
           "random_weight_mechanisms"]


def _n_params(m: nn.Module) -> int:
    return int(sum(p.numel() for p in m.parameters()))


def partition_params(model: nn.Module, compositions: Sequence[str], input_shape: Sequence[int]) -> list[int]:
    """Parameters of the compressed model of each composition, from shapes only (no module is
    built): a single-layer node keeps its segment's parameters; a multi-layer node costs
    ``C·C'·k_h·k_w + C'`` (image → image, :func:`~causalxai.compress.build.conv_rule`'s
    kernel) or ``prod(in)·prod(out) + prod(out)`` (else); modules after the last observed
    layer are kept."""
    leaves = leaf_modules(model)
    names = [n for n, _ in leaves]
    pos = {n: k for k, n in enumerate(names)}
    ins, outs, _ = _shapes(model, leaves, input_shape)
    own = [_n_params(m) for _, m in leaves]
    out = []
    for comp in compositions:
        groups = _groups(comp)
        total, start = 0, 0
        for g in groups:
            end = pos[g[-1]] + 1
            if len(g) == 1:
                total += sum(own[start:end])
            else:
                i, o = ins[names[start]], outs[names[end - 1]]
                if len(i) == 3 and len(o) == 3:
                    kh, kw = conv_rule(i[1], o[1])[0], conv_rule(i[2], o[2])[0]
                    total += i[0] * o[0] * kh * kw + o[0]
                else:
                    total += math.prod(i) * math.prod(o) + math.prod(o)
            start = end
        out.append(int(total + sum(own[start:])))
    return out


def _composition(layers: Sequence[str], cuts: Sequence[int]) -> str:
    bounds = [0, *cuts, len(layers)]
    return GROUP_SEP.join(LAYER_SEP.join(layers[a:b]) for a, b in zip(bounds, bounds[1:]))


def random_partitions(
    model: nn.Module,
    layers: Sequence[str],
    input_shape: Sequence[int],
    *,
    n_nodes: int,
    target_params: int,
    exclude: Sequence[str],
    n_draws: int,
    budget: float = 0.25,
    seed: int = 0,
    max_candidates: int = 20000,
) -> list[str]:
    """Random contiguous partitions of ``layers`` into ``n_nodes`` nodes (module docstring).

    Args:
        model: the target model (the partitions' shapes and kept modules).
        layers: the observed layers, in forward order.
        input_shape: one sample's shape.
        n_nodes: nodes per partition.
        target_params: the TRACER model's parameter count.
        exclude: compositions not to draw (every mechanism TRACER found).
        n_draws: partitions wanted.
        budget: accepted relative distance ``|params − target| ≤ budget · target``.
        seed: the order in which the cut sets are tried.
        max_candidates: at most this many cut sets are tried (the enumeration is lazy).

    Returns:
        Up to ``n_draws`` distinct compositions (fewer when fewer qualify).
    """
    layers = [str(v) for v in layers]
    if n_draws <= 0:
        return []
    if not 1 <= n_nodes <= len(layers):
        raise ValueError(f"random_partitions: n_nodes must be in 1..{len(layers)}, got {n_nodes}")
    rng = np.random.default_rng(int(seed))
    total = math.comb(len(layers) - 1, n_nodes - 1)
    excluded = set(map(str, exclude))
    if total <= max_candidates:
        cut_sets = list(itertools.combinations(range(1, len(layers)), n_nodes - 1))
        order = [cut_sets[i] for i in rng.permutation(len(cut_sets))]
    else:  # too many to enumerate: distinct random cut sets
        seen: set[tuple[int, ...]] = set()
        order = []
        while len(order) < max_candidates:
            cuts = tuple(sorted(rng.choice(np.arange(1, len(layers)), n_nodes - 1, replace=False).tolist()))
            if cuts not in seen:
                seen.add(cuts)
                order.append(cuts)
    comps = [c for c in (_composition(layers, cuts) for cuts in order) if c not in excluded]
    out: list[str] = []
    chunk = 64
    for k in range(0, len(comps), chunk):
        batch = comps[k: k + chunk]
        for comp, n in zip(batch, partition_params(model, batch, input_shape)):
            if abs(n - target_params) <= budget * target_params:
                out.append(comp)
                if len(out) == n_draws:
                    return out
    return out


def random_weight_copy(model: nn.Module, seed: int) -> nn.Module:
    """A copy of ``model`` with every module's parameters re-drawn by its ``reset_parameters``
    after ``torch.manual_seed(seed)`` (in a forked RNG; the caller's RNG is left alone)."""
    out = copy.deepcopy(model).cpu()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        for m in out.modules():
            if hasattr(m, "reset_parameters") and callable(m.reset_parameters):
                m.reset_parameters()
    return out.eval()


def random_weight_mechanisms(
    model: nn.Module,
    inputs: Any,
    settings: TracerSettings,
    *,
    seed: int,
    labels: Sequence[int] | None = None,
    sample_ids: Sequence[Any] | None = None,
    device: torch.device | str | None = None,
    progress: bool = False,
) -> xr.Dataset:
    """TRACER's mechanisms of a random-weight copy of ``model`` (:func:`random_weight_copy`)
    on ``inputs``: :func:`~causalxai.tracer.interventions.interventions_dataset` →
    :func:`~causalxai.tracer.nodes.causal_nodes_dataset` →
    :func:`~causalxai.tracer.mechanisms.mechanisms_dataset`, as the TRACER rules run them.

    Returns:
        The mechanisms dataset (``composition``, ``n_nodes``, ``coverage``, …).
    """
    rand = random_weight_copy(model, seed)
    inter = interventions_dataset(rand, inputs, settings, sample_ids=sample_ids, labels=labels, device=device,
                                  progress=progress)
    nodes = causal_nodes_dataset(inter["cka"], settings)
    return mechanisms_dataset(nodes["group"], inter["label"].values)


def match_by_nodes(n_nodes: int, mechanisms_ds: xr.Dataset) -> int:
    """Index of the mechanism with ``n_nodes`` nodes (else the nearest count; ties: the one
    explaining more samples, then the first)."""
    comps = [str(c) for c in np.asarray(mechanisms_ds["composition"].values).tolist()]
    if not comps:
        raise ValueError("match_by_nodes: no mechanisms")
    counts = [len(parse_composition(c)) for c in comps]
    share = (np.asarray(mechanisms_ds["n_samples"].values, dtype=float) if "n_samples" in mechanisms_ds
             else np.zeros(len(comps)))
    return int(min(range(len(comps)), key=lambda m: (abs(counts[m] - int(n_nodes)), -share[m], m)))
