"""Benchmark: the effects step (paper 000 eq. 4, total and direct, bootstrap and permutation
null) vs a naive per-cell, per-replicate loop.

The effects step of the embedded default estimates, for every hyperparameter (and the
placebo), value, accuracy bucket (and the bucket of all models) and probe image, eq. (4)
with the RBF kernel (fixed γ = 1/d) for Y and for each method's total and direct maps
(Identity + 4 methods, 100 images of 28x28): the point estimate, B bootstrap replicates
and P label permutations, then every correlation per replicate. Here it runs on synthetic
outputs of exactly the default's shapes and zoo, so it needs no earlier step. The naive way
is what a user would write from the equation: for each cell, output, image and replicate
(a resample of the models, or a relabelling), a float64 NumPy kernel matrix of the
treated and control models. It is timed on a few cells and replicates; both are given as
evaluations (cell × replicate) per second, in one run.

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

from causalxai.study.buckets import make_buckets
from causalxai.study.effects import EffectsSettings, compute_effects
from causalxai.study.estimators.treatments import treatment_groups, treatment_levels
from causalxai.zoo.dataset import make_zoo_dataset
from causalxai.zoo.hparams import sample_hparams
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
        {
            "prob": (("model", "image", "class"), prob),
            "prob_direct": (("model", "image", "class"), prob[..., ::-1].copy()),
        },
        coords={"image": np.arange(n_images)},
    )
    expl = {
        m: xr.Dataset({"E": (("model", "effect", "image", "y", "x"),
                             rng.uniform(size=(n_models, 2, n_images, side, side)).astype(np.float32))},
                      coords={"effect": ["total", "direct"]})
        for m in METHODS
    }
    return zoo, buckets, pred, expl


def naive_cell(outputs: list[np.ndarray], treated: np.ndarray, control: np.ndarray, replicates: int,
               rng: np.random.Generator) -> None:
    """Eq. (4) as written, per output, image and bootstrap resample, in float64 NumPy."""
    for _ in range(replicates):
        t = rng.choice(treated, treated.size)  # a resample (the naive bootstrap recomputes everything)
        c = rng.choice(control, control.size)
        for out in outputs:
            for img in range(out.shape[1]):
                a = out[t, img].reshape(t.size, -1).astype(np.float64)
                b = out[c, img].reshape(c.size, -1).astype(np.float64)
                u = np.concatenate([a, b])
                d2 = ((u[:, None] - u[None]) ** 2).sum(-1)
                k = np.exp(-d2 / a.shape[1])
                n = a.shape[0]
                _ = np.diag(k)[:n].mean() + np.diag(k)[n:].mean() - 2 * k[:n, n:].mean()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=int, default=600)
    ap.add_argument("--images", type=int, default=100)
    ap.add_argument("--size", type=int, default=28)
    ap.add_argument("--cap", type=int, default=100)
    ap.add_argument("--naive-cells", type=int, default=3, help="cells the naive loop is timed on")
    ap.add_argument("--naive-replicates", type=int, default=2, help="replicates per cell of the naive loop")
    ap.add_argument("--bootstrap", type=int, default=200)
    ap.add_argument("--permutations", type=int, default=100)
    args = ap.parse_args()
    zoo, buckets, pred, expl = synthetic(args.models, args.images, args.size)
    rows = []
    for b, p in ((0, 0), (args.bootstrap, args.permutations)):
        t0 = time.perf_counter()
        ds = compute_effects(zoo, buckets, pred, expl, EffectsSettings(cap=args.cap, bootstrap=b, permutations=p))
        rows.append((b, p, time.perf_counter() - t0))
    n_cells = int(((ds["n_treated"] > 0) & (ds["n_control"] > 0)).sum())
    columns = 1 + args.bootstrap + args.permutations
    outputs = [pred["prob"].values, pred["prob_direct"].values]
    outputs += [e["E"].values[:, k] for e in expl.values() for k in range(2)]
    lv, labels = treatment_levels("optimizer", zoo["optimizer"].values)
    groups = treatment_groups(lv, len(labels), buckets["bucket"].values, buckets.sizes["bucket_label"], args.cap, 0)
    pick = np.random.default_rng(1).choice(len(groups), min(args.naive_cells, len(groups)), replace=False)
    groups = [groups[i] for i in pick]  # a random sample of the cells: a fair estimate of the naive rate
    rng = np.random.default_rng(2)
    t0 = time.perf_counter()
    for g in groups:
        naive_cell(outputs, g.treated, g.control, args.naive_replicates, rng)
    t_naive = time.perf_counter() - t0
    rate_naive = len(groups) * args.naive_replicates / t_naive
    rate_vec = n_cells * columns / rows[-1][2]
    print(f"effects step (eq. 4, RBF fixed gamma, total + direct, Identity + {len(METHODS)} methods), {args.models} "
          f"models, {args.images} images {args.size}x{args.size}, {len(ds['hparam'])} hyperparameters incl. the "
          f"placebo, {ds.sizes['bucket']} buckets, CPU ({torch.get_num_threads()} threads)")
    print(f"{'way':<44}{'cells':>7}{'columns':>9}{'seconds':>10}{'evals/s':>10}")
    print(f"{'naive NumPy loop (random cells, resamples)':<44}{len(groups):>7}{args.naive_replicates:>9}"
          f"{t_naive:>10.2f}{rate_naive:>10.2f}")
    for b, p, t in rows:
        print(f"{f'compute_effects (B={b}, P={p})':<44}{n_cells:>7}{1 + b + p:>9}{t:>10.2f}"
              f"{n_cells * (1 + b + p) / t:>10.1f}")
    print(f"speed-up: {rate_vec / rate_naive:.0f}x (naive: estimated {n_cells * columns / rate_naive / 3600:.1f} h for "
          f"every cell and column); the bootstrap and null cost {rows[-1][2] / rows[0][2]:.1f}x the point estimate; "
          f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
