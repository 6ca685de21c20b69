"""Matched controls of the compressed models: random contiguous partitions within a parameter
budget, the random-weight copy, matching by node count."""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch

from causalxai.compress.build import compression_plan
from causalxai.compress.controls import (
    match_by_nodes,
    partition_params,
    random_partitions,
    random_weight_copy,
)
from causalxai.tracer.mechanisms import mechanisms_dataset, parse_composition
from tests.compress.test_compress import LAYERS, SHAPE, tiny


def _all_partitions(n_nodes):
    out = []
    for cuts in itertools.combinations(range(1, len(LAYERS)), n_nodes - 1):
        b = [0, *cuts, len(LAYERS)]
        out.append("|".join("+".join(LAYERS[i:j]) for i, j in zip(b, b[1:])))
    return out


def test_partition_params_equals_built_models():
    model = tiny()
    comps = [c for k in range(1, 5) for c in _all_partitions(k)]
    assert len(comps) == 8  # 2^(4-1) contiguous partitions of 4 layers
    got = partition_params(model, comps, SHAPE)
    for comp, n in zip(comps, got):
        assert n == compression_plan(model, comp, SHAPE).attrs["params_after"], comp
    # a hand case: r1+r2 (1x8x8 -> 6x6x6: Conv(1->6, k=3, s=1)) | r3 | out
    c1 = (1 * 6 * 3 * 3 + 6) + (54 * 12 + 12) + (12 * 3 + 3)
    assert partition_params(model, ["r1+r2|r3|out"], SHAPE) == [c1]


def test_random_partitions_budget_exclusion_and_seed():
    model = tiny()
    cands = _all_partitions(3)  # r1|r2|r3+out, r1|r2+r3|out, r1+r2|r3|out
    params = dict(zip(cands, partition_params(model, cands, SHAPE)))
    target = params["r1+r2|r3|out"]
    exclude = ["r1+r2|r3|out"]
    got = random_partitions(model, LAYERS, SHAPE, n_nodes=3, target_params=target, exclude=exclude, n_draws=5,
                            budget=10.0, seed=0)
    # every other partition of 3 nodes, none excluded, each once
    assert sorted(got) == sorted(c for c in cands if c not in exclude)
    within = [c for c in cands if c not in exclude and abs(params[c] - target) <= 0.25 * target]
    tight = random_partitions(model, LAYERS, SHAPE, n_nodes=3, target_params=target, exclude=exclude, n_draws=5,
                              budget=0.25, seed=0)
    assert sorted(tight) == sorted(within)
    for comp in got:
        assert len(parse_composition(comp)) == 3
    one = [random_partitions(model, LAYERS, SHAPE, n_nodes=3, target_params=target, exclude=exclude, n_draws=1,
                             budget=10.0, seed=s) for s in range(6)]
    assert one[0] == random_partitions(model, LAYERS, SHAPE, n_nodes=3, target_params=target, exclude=exclude,
                                       n_draws=1, budget=10.0, seed=0)
    assert len({c[0] for c in one}) == 2  # the seed picks among the two
    assert random_partitions(model, LAYERS, SHAPE, n_nodes=3, target_params=target, exclude=cands, n_draws=2,
                             budget=10.0, seed=0) == []
    assert math.comb(3, 2) == len(cands)


def test_random_weight_copy_and_matching():
    model = tiny()
    a, b = random_weight_copy(model, 1), random_weight_copy(model, 1)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not torch.equal(a.c1.weight, model.c1.weight)
    assert not torch.equal(random_weight_copy(model, 2).c1.weight, a.c1.weight)
    mech = mechanisms_dataset(np.asarray([[0, 0, 1, 1]] * 2 + [[0, 1, 2, 3]] * 5 + [[0, 0, 0, 1]] * 3), layers=LAYERS)
    comp = [str(c) for c in mech["composition"].values]

    def matched(n):
        return comp[match_by_nodes(n, mech)]

    # two mechanisms of 2 nodes: the one explaining more samples (3 vs 2)
    assert matched(2) == "r1+r2+r3|out"
    assert matched(1) == "r1+r2+r3|out"
    assert matched(4) == "r1|r2|r3|out"
    # 3 nodes: 2 and 4 equally near; the 4-node mechanism explains 5 samples, the best 2-node one 3
    assert matched(3) == "r1|r2|r3|out"
