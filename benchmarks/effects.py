"""Benchmark: the effects step (paper 000 eq. 4, total and direct) vs a naive per-cell loop.

The effects step of the embedded default estimates, for every hyperparameter, value,
accuracy bucket and probe image, eq. (4) with the RBF kernel for Y and for each method's
total and direct maps (Identity + 4 methods, 100 images of 28x28), then correlates them.
Here it runs on synthetic outputs of exactly the default's shapes and zoo, so it needs
no earlier step. The naive way is what a user would write from the equation: for each
(hyperparameter, value, bucket) cell, each output and each image, a float64 NumPy kernel
matrix of the treated and control models (median-heuristic bandwidth). The naive loop is
timed on a subset of cells and both are given as cells per second, in one run.

    python benchmarks/effects.py                      # the embedded default (600 models)
    python benchmarks/effects.py --models 2000 --naive-cells 4
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import pandas as pd
import torch
import xarray as xr

from causalxai.effects.groups import treatment_groups, treatment_levels
from causalxai.effects.table import compute_effects
from causalxai.zoo.buckets import make_buckets
from causalxai.zoo.dataset import make_zoo_dataset
from causalxai.zoo.hparams import HPARAMS, sample_hparams
from causalxai.zoo.network import zoo_layout

METHODS = ["gradient", "smoothgrad", "integrated_gradients", "grad_cam"]
EDGES = [0, 20, 40, 60, 80, 90, 95, 99, 100]


def synthetic(n_models: int, n_images: int, side: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    hp = sample_hparams(n_models, {}, seed=seed)
    zoo = make_zoo_dataset(
        np.zeros((n_models, 4970), np.float32), hp, pd.DataFrame({"test_accuracy": rng.uniform(size=n_models)}),
        zoo_layout(1), dataset="synthetic", source="train", input_size=side,
    )
    buckets = make_buckets(zoo, EDGES)
    prob = rng.dirichlet(np.ones(10), size=(n_models, n_images)).astype(np.float32)
    pred = xr.Dataset(
        {"prob": (("model", "image", "class"), prob), "prob_direct": (("model", "image", "class"), prob[..., ::-1].copy())},
        coords={"image": np.arange(n_images)},
    )
    expl = {
        m: xr.Dataset({"E": (("model", "effect", "image", "y", "x"),
                             rng.uniform(size=(n_models, 2, n_images, side, side)).astype(np.float32))},
                      coords={"effect": ["total", "direct"]})
        for m in METHODS
    }
    return zoo, buckets, pred, expl


def naive_cell(outputs: list[np.ndarray], treated: np.ndarray, control: np.ndarray) -> None:
    """Eq. (4) as written, per output and per image, in float64 NumPy."""
    for out in outputs:
        for img in range(out.shape[1]):
            a = out[treated, img].reshape(treated.size, -1).astype(np.float64)
            b = out[control, img].reshape(control.size, -1).astype(np.float64)
            u = np.concatenate([a, b])
            d2 = ((u[:, None] - u[None]) ** 2).sum(-1)
            s2 = np.median(d2[np.triu_indices(len(u), 1)])
            k = np.exp(-d2 / (2 * s2))
            n = a.shape[0]
            _ = k[:n, :n].mean() + k[n:, n:].mean() - 2 * k[:n, n:].mean()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=int, default=600)
    ap.add_argument("--images", type=int, default=100)
    ap.add_argument("--size", type=int, default=28)
    ap.add_argument("--cap", type=int, default=100)
    ap.add_argument("--naive-cells", type=int, default=3, help="cells the naive loop is timed on")
    args = ap.parse_args()
    zoo, buckets, pred, expl = synthetic(args.models, args.images, args.size)
    t0 = time.perf_counter()
    ds = compute_effects(zoo, buckets, pred, expl, kernel="rbf", cap=args.cap, seed=0)
    t_vec = time.perf_counter() - t0
    n_cells = int(((ds["n_treated"] > 0) & (ds["n_control"] > 0)).sum())
    outputs = [pred["prob"].values, pred["prob_direct"].values]
    outputs += [e["E"].values[:, k] for e in expl.values() for k in range(2)]
    lv, labels = treatment_levels("optimizer", zoo["optimizer"].values)
    groups = treatment_groups(lv, len(labels), buckets["bucket"].values, buckets.sizes["bucket_label"], args.cap, 0)
    pick = np.random.default_rng(1).choice(len(groups), min(args.naive_cells, len(groups)), replace=False)
    groups = [groups[i] for i in pick]  # a random sample of the cells: a fair estimate of the naive rate
    t0 = time.perf_counter()
    for g in groups:
        naive_cell(outputs, g.treated, g.control)
    t_naive = time.perf_counter() - t0
    rate_vec, rate_naive = n_cells / t_vec, len(groups) / t_naive
    print(f"effects step (eq. 4, RBF, total + direct, Identity + {len(METHODS)} methods), {args.models} models, "
          f"{args.images} images {args.size}x{args.size}, {len(ds['hparam'])} hyperparameters, "
          f"CPU ({torch.get_num_threads()} threads)")
    print(f"{'way':<40}{'cells':>7}{'seconds':>10}{'cells/s':>10}")
    print(f"{'naive NumPy loop (random cells)':<40}{len(groups):>7}{t_naive:>10.2f}{rate_naive:>10.3f}")
    print(f"{'compute_effects (shared bucket Grams)':<40}{n_cells:>7}{t_vec:>10.2f}{rate_vec:>10.3f}")
    print(f"speed-up: {rate_vec / rate_naive:.1f}x (naive: estimated {n_cells / rate_naive:.0f} s for every cell); "
          f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
