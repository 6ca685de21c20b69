"""Synthetic outputs of the TRACER steps, in the steps' schemas, for the figure tests
(tests/plots/test_tracer_figures.py, tests/plots/test_tracer_sample_figures.py)."""

from __future__ import annotations

import numpy as np
import xarray as xr
from matplotlib.image import imread

LAYERS = ["conv1", "relu1", "pool1", "conv2", "relu2", "pool2", "fc1", "relu3", "fc2", "fc3"]
EPS = [0.0, 0.05, 0.1, 0.2, 1.0]
SAMPLES = [3, 11, 17, 42, 50]
METHODS = ["tracer", "gradient", "smoothgrad", "integrated_gradients", "grad_cam", "lime", "kernel_shap", "lrp"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SIDE = 12

# per sample: group id of each layer (chains, ids in layer order) and the skip links
GROUPS = {
    3: [0, 0, 0, 1, 1, 1, 2, 2, 3, 3],
    11: [0, 0, 1, 1, 1, 2, 2, 2, 2, 2],
    17: [0, 0, 0, 0, 0, 1, 1, 1, 1, 1],
    42: [0, 1, 2, 3, 3, 3, 4, 4, 5, 5],
    50: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
}
SKIPS = {3: [(0, 2)], 11: [], 17: [], 42: [(1, 4), (0, 5)], 50: []}


def make_cka(samples=SAMPLES, seed=0) -> xr.Dataset:
    """A ``causal_nodes.nc``: CKA high inside groups, groups, padded directed links, an ε sweep."""
    rng = np.random.default_rng(seed)
    n_s, n_l = len(samples), len(LAYERS)
    cka = np.empty((n_s, n_l, n_l))
    group = np.zeros((n_s, n_l), dtype=np.int64)
    n_groups = np.zeros(n_s, dtype=np.int64)
    link = np.zeros((n_s, n_l, n_l), dtype=bool)
    sweep = np.zeros((n_s, len(EPS), n_l), dtype=np.int64)
    for k, s in enumerate(samples):
        g = np.asarray(GROUPS[s])
        same = g[:, None] == g[None, :]
        c = np.where(same, rng.uniform(0.96, 1.0, (n_l, n_l)), rng.uniform(0.1, 0.9, (n_l, n_l)))
        c = (c + c.T) / 2
        np.fill_diagonal(c, 1.0)
        cka[k], group[k], n_groups[k] = c, g, g.max() + 1
        for a in range(g.max()):
            link[k, a, a + 1] = True
        for a, b in SKIPS[s]:
            link[k, a, b] = True
        # sweep: ε = 0 every layer alone, the chosen ε the groups, larger ε merges pairs, ε = 1 one node
        sweep[k, 0] = np.arange(n_l)
        sweep[k, 1] = g
        sweep[k, 2] = g // 2
        sweep[k, 3] = g // 3
        sweep[k, 4] = 0
    n_sweep = sweep.max(axis=-1) + 1
    return xr.Dataset(
        {
            "cka": (("sample", "layer_i", "layer_j"), cka),
            "group": (("sample", "layer"), group),
            "n_groups": (("sample",), n_groups),
            "link": (("sample", "group_a", "group_b"), link),
            "group_sweep": (("sample", "eps", "layer"), sweep),
            "n_groups_sweep": (("sample", "eps"), n_sweep),
        },
        coords={"sample": list(samples), "layer": LAYERS, "layer_i": LAYERS, "layer_j": LAYERS,
                "group_a": np.arange(n_l), "group_b": np.arange(n_l), "eps": EPS},
        attrs={"eps": 0.05, "step": "causal_nodes"},
    )


def make_interventions(samples=SAMPLES, seed=1) -> xr.Dataset:
    rng = np.random.default_rng(seed)
    n_s = len(samples)
    yy, xx = np.mgrid[:SIDE, :SIDE]
    ring = (np.hypot(yy - SIDE / 2, xx - SIDE / 2) < SIDE / 3).astype(float)
    image = np.clip(ring[None] * 2 - 1 + rng.normal(0, 0.05, (n_s, SIDE, SIDE)), -1, 1)
    cka = make_cka(samples)["cka"].values
    return xr.Dataset(
        {
            "image": (("sample", "y", "x"), image),
            "label": (("sample",), rng.integers(0, 10, n_s)),
            "pred": (("sample",), rng.integers(0, 10, n_s)),
            "cka": (("sample", "layer_i", "layer_j"), cka),
        },
        coords={"sample": list(samples), "layer": LAYERS, "layer_i": LAYERS, "layer_j": LAYERS,
                "intervention": np.arange(4)},
    )


def make_ace(samples=SAMPLES, seed=2) -> xr.Dataset:
    """An ``ace.nc``: groups beyond the sample's n_groups are NaN padding."""
    rng = np.random.default_rng(seed)
    n_s, n_g = len(samples), len(LAYERS)
    attr = np.full((n_s, n_g, SIDE, SIDE), np.nan)
    ace = np.full((n_s, n_g), np.nan)
    out = np.full((n_s, n_g), "", dtype=object)
    for k, s in enumerate(samples):
        g = np.asarray(GROUPS[s])
        for j in range(g.max() + 1):
            attr[k, j] = rng.normal(0, 1 + j, (SIDE, SIDE))
            ace[k, j] = rng.normal()
            out[k, j] = LAYERS[np.flatnonzero(g == j)[-1]]
    return xr.Dataset(
        {
            "attribution": (("sample", "group", "y", "x"), attr),
            "ace": (("sample", "group"), ace),
            "mask": (("sample", "y", "x"), rng.random((n_s, SIDE, SIDE)) < 0.3),
            "output_layer": (("sample", "group"), out.astype(str)),
        },
        coords={"sample": list(samples), "group": np.arange(n_g)},
    )


def make_mechanisms() -> xr.Dataset:
    n = np.array([3, 4, 5, 2])
    comp = ["conv1+relu1+pool1|conv2+relu2+pool2|fc1+relu3+fc2+fc3",
            "conv1+relu1|pool1+conv2|relu2+pool2|fc1+relu3+fc2+fc3",
            "conv1|relu1|pool1+conv2|relu2+pool2+fc1|relu3+fc2+fc3",
            "conv1+relu1+pool1+conv2+relu2|pool2+fc1+relu3+fc2+fc3"]
    n_samples = np.array([85, 14, 1, 0])
    share = n_samples / n_samples.sum()
    return xr.Dataset(
        {"n_nodes": (("mechanism",), n), "composition": (("mechanism",), comp),
         "n_samples": (("mechanism",), n_samples), "share": (("mechanism",), share),
         "coverage": (("mechanism",), np.cumsum(share))},
        coords={"mechanism": np.arange(4)},
    )


def make_reliability(seed=3, nan_method=None) -> xr.Dataset:
    rng = np.random.default_rng(seed)
    score = rng.uniform(0.05, 0.6, (len(METHODS), 10))
    score[0] += 0.35
    if nan_method is not None:
        score[METHODS.index(nan_method)] = np.nan
    return xr.Dataset(
        {"score": (("method", "trial"), score), "mean": (("method",), score.mean(axis=1)),
         "std": (("method",), score.std(axis=1))},
        coords={"method": METHODS, "trial": np.arange(10)},
        attrs={"p": 0.5},
    )


def make_reliability_protocols(seed=4) -> xr.Dataset:
    """A ``reliability.nc`` as the rule writes it: both protocols, bootstrap intervals, empty masks."""
    rng = np.random.default_rng(seed)
    methods = [*METHODS, "occlusion", "random_foreground"]
    score = rng.uniform(0.02, 0.5, (len(methods), 2, 10))
    mean = score.mean(-1)
    return xr.Dataset(
        {"score": (("method", "protocol", "trial"), score), "mean": (("method", "protocol"), mean),
         "std": (("method", "protocol"), score.std(-1)),
         "ci_low": (("method", "protocol"), mean - rng.uniform(0.01, 0.05, mean.shape)),
         "ci_high": (("method", "protocol"), mean + rng.uniform(0.01, 0.05, mean.shape)),
         "n_empty": (("method", "protocol"), rng.integers(0, 90, mean.shape)),
         "mask_fraction": (("method", "protocol"), rng.uniform(0.05, 0.7, mean.shape))},
        coords={"method": methods, "protocol": ["paper", "equal_size"], "trial": np.arange(10)},
        attrs={"p": 0.5, "ci": 0.95, "n_samples": 100},
    )


def check_png(path, min_w=300, min_h=200) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    img = imread(path)
    h, w = img.shape[:2]
    assert w >= min_w and h >= min_h
    assert w < 6000 and h < 6000
    assert img.std() > 0.01
    assert not list(path.parent.glob(".*.tmp"))


def make_large_cka(n_l: int = 40) -> tuple[xr.Dataset, list[str]]:
    """A ``causal_nodes.nc`` of a large network: ``n_l`` layers, each its own node (ε = 0); and the names."""
    names = [f"layer{i}" for i in range(n_l)]
    rng = np.random.default_rng(4)
    c = rng.uniform(0, 1, (2, n_l, n_l))
    link = np.zeros((2, n_l, n_l), dtype=bool)
    link[:, np.arange(n_l - 1), np.arange(1, n_l)] = True
    ds = xr.Dataset(
        {"cka": (("sample", "layer_i", "layer_j"), c),
         "group": (("sample", "layer"), np.tile(np.arange(n_l), (2, 1))),
         "n_groups": (("sample",), np.array([n_l, n_l])),
         "link": (("sample", "group_a", "group_b"), link),
         "group_sweep": (("sample", "eps", "layer"), np.tile(np.arange(n_l), (2, 2, 1))),
         "n_groups_sweep": (("sample", "eps"), np.full((2, 2), n_l))},
        coords={"sample": [0, 1], "layer": names, "layer_i": names, "layer_j": names, "eps": [0.0, 0.05]},
    )
    return ds, names


def with_validation(ace: xr.Dataset, seed: int = 5, units: int = 3) -> xr.Dataset:
    """``ace`` with the node ablation, its agreement with ACE and the top units (as the ace rule adds them)."""
    from causalxai.tracer.ablation import ace_ablation_agreement

    rng = np.random.default_rng(seed)
    n_s, n_g = ace.sizes["sample"], ace.sizes["group"]
    valid = np.isfinite(ace["ace"].values)
    n_groups = valid.sum(1)
    kl = np.where(valid[:, :, None], rng.lognormal(-6, 2, (n_s, n_g, 2)), np.nan)
    kl[0, 0, 0] = 0.0  # an exact zero: drawn on the axis floor
    flip = valid[:, :, None] & (rng.random((n_s, n_g, 2)) < 0.2)
    unit = np.where(valid[:, :, None], rng.integers(0, 64, (n_s, n_g, units)), -1)
    score = np.where(valid[:, :, None], rng.uniform(0, 1, (n_s, n_g, units)), np.nan)
    maps = np.where(valid[:, :, None, None, None], rng.uniform(0, 1, (n_s, n_g, units, SIDE, SIDE)), np.nan)
    ds = ace.assign(
        ablation_kl=(("sample", "group", "ablation"), kl),
        ablation_flip=(("sample", "group", "ablation"), flip),
        n_groups=(("sample",), n_groups),
        top_unit=(("sample", "group", "unit_rank"), unit),
        top_unit_score=(("sample", "group", "unit_rank"), score),
        unit_attribution=(("sample", "group", "unit_rank", "y", "x"), maps),
    ).assign_coords(ablation=["interventions", "samples"], unit_rank=np.arange(units))
    return ds.merge(ace_ablation_agreement(ds["ace"], ds["ablation_kl"]))
