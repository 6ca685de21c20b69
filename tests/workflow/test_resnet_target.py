"""TRACER on a residual network (issue 18 item 2, paper 004 App. H): the built-in resnet_small, trained on
the embedded digits, through interventions → causal nodes → ACE → mechanisms → reliability, its causal
graph drawn, and the compress step skipping it with the reason (a residual sum is no chain of layers)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from causalxai import io

from .conftest import TINY_CONFIG

pytestmark = pytest.mark.workflow

#: one epoch on the digits (test accuracy ~0.2 at seed 1), 4x4 patches at stride 4 (49 interventions), ε 0.02.
#: Measured (tests/tracer/test_resnet.py explains): early in training a block's output x + f(x) is still
#: closer to its input x (CKA ~0.995) than to its residual branch f(x) (~0.98), so at ε 0.02 the stem and
#: block1's output are linked past block1's branch: a skip link. A resnet_small trained to ~0.97 has
#: branches that dominate their blocks (CKA(f(x), x + f(x)) ~0.996) and no skip link at ε >= 0.01.
RESNET = {"tracer": {"model": {"architecture": "resnet_small", "epochs": 1}, "layers": "auto",
                     "interventions": {"patch": 4, "stride": 4}, "cka": {"eps": 0.02}}}


def test_tracer_runs_on_resnet_small_and_finds_its_skip_link(snakemake_runner, tmp_path):
    extra = tmp_path / "resnet.yaml"
    extra.write_text(yaml.safe_dump(RESNET))
    res_dir = "results/digits"
    targets = [f"{res_dir}/tracer/mechanisms.nc", f"{res_dir}/tracer/reliability.nc", f"{res_dir}/tracer/ace.nc",
               f"{res_dir}/figures/tracer/causal_graph_0.png", f"{res_dir}/tracer/compress.nc"]
    res = snakemake_runner.run(tmp_path, targets=targets, cores=2, configfiles=[TINY_CONFIG, extra])
    assert res.returncode == 0, res.stderr[-4000:]
    out = tmp_path / res_dir / "tracer"
    inter = io.open(out / "interventions.nc")
    layers = ["stem", "block1.conv2", "block1", "block2.conv2", "block2", "block3.conv2", "block3", "relu", "fc"]
    assert [str(v) for v in inter["layer"].values] == layers  # tracer.layers: auto, in forward order
    assert not inter["stochastic"].values.any() and inter.attrs["stochastic_modules"] == ""

    nodes = io.open(out / "causal_nodes.nc")
    groups, n_groups = nodes["group"].values, nodes["n_groups"].values
    link = nodes["link"].values
    skips = [(int(s), int(a), int(b)) for s in range(link.shape[0])
             for a, b in np.argwhere(np.triu(link[s, : n_groups[s], : n_groups[s]], 2))]
    assert skips, f"no skip link in any sample: groups {groups.tolist()}"
    # every skip link is Def. 4's: some layer of the earlier group similar (CKA >= 1 - eps) to one of the later
    eps = float(nodes.attrs["eps"])
    for s, a, b in skips:
        cka = nodes["cka"].values[s]
        pairs = [cka[i, j] for i in np.flatnonzero(groups[s] == a) for j in np.flatnonzero(groups[s] == b)]
        assert max(pairs) >= 1 - eps - 1e-12
        assert b > a + 1  # not adjacent
    # block1's skip connection itself: the stem (block1's input x) linked to block1's output x + f(x) past the
    # group of its residual branch f(x) (block1.conv2)
    stem, branch, block1 = (layers.index(n) for n in ("stem", "block1.conv2", "block1"))
    residual = [s for s, a, b in skips
                if a == groups[s][stem] and b == groups[s][block1] and a < groups[s][branch] < b]
    assert residual, f"no stem -> block1 skip link: {skips}"
    print("resnet_small causal graphs (sample: groups, links):")
    for s in range(link.shape[0]):
        n = int(n_groups[s])
        edges = [tuple(map(int, e)) for e in np.argwhere(link[s, :n, :n])]
        print(int(nodes["sample"].values[s]), groups[s].tolist(), edges)

    for name in ("ace.nc", "mechanisms.nc", "reliability.nc"):
        assert io.open(out / name).attrs["step"]
    mech = io.open(out / "mechanisms.nc")
    assert all("|" in str(c) or "+" in str(c) for c in mech["composition"].values)
    assert (tmp_path / res_dir / "figures" / "tracer" / "causal_graph_0.png").stat().st_size > 10_000
    comp = io.open(out / "compress.nc")
    assert "not its leaf modules run one after another" in comp.attrs["skipped"]
    assert "skipped" in pd.read_csv(tmp_path / res_dir / "tables" / "compress_models.csv").columns
