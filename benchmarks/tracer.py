"""Benchmark: one sample's TRACER analysis (paper 004 §3.3-3.4) vs the naive way, in one run.

One 28×28 digit (the embedded default's test image 0) through the untrained AlexNet of
Table 2 (``alexnet28``, ``torch.manual_seed(0)``), 3×3 patches with stride 1 (676
interventions + the original), every observed layer recorded; then the CKA of every layer
pair, the layer groups at ε = 0.05 (:mod:`causalxai.tracer.nodes`), the KL and sign per
layer and intervention, and ACE with per-pixel attributions (:mod:`causalxai.tracer.ace`).

The vectorised way is :func:`causalxai.tracer.interventions.interventions_dataset` (batched forwards,
one Gram per distinct layer, one HSIC product) and :func:`causalxai.tracer.ace.ace_dataset`.
The naive way is what a user would write from the paper's formulas:

* one forward of batch 1 per intervention (677 forwards), hooks keeping every layer;
* per layer pair (i < j), both kernels ``K = f fᵀ`` recomputed and centred with the explicit
  ``n × n`` matrix ``H K H``, HSIC as ``Tr(H K_i H K_j)``, all float64 NumPy. Running every
  pair takes minutes, so each layer's kernel (``f fᵀ`` and ``H K H``) and one pair's traces
  are timed once and the naive total is their exact sum over the pairs
  (``Σ_{i<j} t_K(i) + t_K(j) + t_trace``); ``--naive-pairs`` literal pairs are also timed
  to check that sum (``--naive-pairs -1``: every pair, literally);
* KL per intervention and layer with ``scipy.stats.entropy`` of the two softmaxes;
* attributions by a loop over patches adding ``effect / k²`` to each patch's pixels.

Bars of the issue: ≤ 5 s for one sample on 2 CPU cores and ≥ 10× the naive way.

    python benchmarks/tracer.py                        # all 20 layers, then the 8 activation outputs
    python benchmarks/tracer.py --layers relu1 relu2 --repeats 5
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time

import numpy as np
import scipy.special
import scipy.stats
import torch
import xarray as xr

from causalxai.data.dataset import load_digits
from causalxai.tracer.ace import ace_dataset, output_layers
from causalxai.tracer.interventions import interventions_dataset
from causalxai.tracer.model import alexnet28, observed_layers
from causalxai.tracer.nodes import binary_matrix, layer_groups
from causalxai.tracer.settings import TracerSettings

EIGHT = ["relu1", "relu2", "relu3", "relu4", "relu5", "relu6", "relu7", "fc3"]  # §4.1: eight activation outputs
EPS = 0.05
K, STRIDE = 3, 1


def vectorised(model, x, layers) -> tuple[dict[str, float], xr.Dataset, xr.Dataset]:
    t: dict[str, float] = {}
    t0 = time.perf_counter()
    settings = TracerSettings(layers=layers, patch=K, stride=STRIDE, eps=EPS)
    ds = interventions_dataset(model, x[None], settings, timings=t)
    total_analysis = time.perf_counter() - t0
    t["dataset"] = total_analysis - t["activations"] - t["cka"] - t["kl"]
    t0 = time.perf_counter()
    grp = layer_groups(binary_matrix(ds["cka"].values[0], EPS))
    groups = xr.DataArray(grp[None], dims=("sample", "layer"), coords={"sample": ds["sample"], "layer": ds["layer"]})
    t["groups"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    ace = ace_dataset(ds, groups, settings)
    t["ace"] = time.perf_counter() - t0
    return t, ds, ace


def naive_activations(model, x: np.ndarray, names: list[str]) -> tuple[dict[str, np.ndarray], float]:
    """One forward per intervention (batch 1), every layer's output kept."""
    t0 = time.perf_counter()
    h, w = x.shape[-2:]
    inputs = [x]
    for i in range(0, h - K + 1, STRIDE):
        for j in range(0, w - K + 1, STRIDE):
            xp = x.copy()
            xp[:, i : i + K, j : j + K] = -1.0  # raw 0 before normalisation x/255·2 − 1
            inputs.append(xp)
    rows: dict[str, list[np.ndarray]] = {n: [] for n in names}
    hooks = [
        model.get_submodule(n).register_forward_hook(lambda m, a, o, _n=n: rows[_n].append(o.detach().numpy().copy()))
        for n in names
    ]
    try:
        with torch.no_grad():
            for xp in inputs:
                model(torch.from_numpy(xp)[None])
    finally:
        for hk in hooks:
            hk.remove()
    acts = {n: np.concatenate(v).reshape(len(inputs), -1) for n, v in rows.items()}
    return acts, time.perf_counter() - t0


def naive_kernel(f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    f = f.astype(np.float64)
    n = f.shape[0]
    h = np.eye(n) - np.ones((n, n)) / n
    k = f @ f.T
    return k, h @ k @ h


def naive_hsic_traces(k_i, hkh_i, k_j, hkh_j) -> float:
    hsic_ij = np.trace(hkh_i @ k_j)
    hsic_ii = np.trace(hkh_i @ k_i)
    hsic_jj = np.trace(hkh_j @ k_j)
    return hsic_ij / np.sqrt(hsic_ii * hsic_jj)


def naive_pair(fi: np.ndarray, fj: np.ndarray) -> float:
    """CKA of one pair exactly as the formula reads: both kernels recomputed."""
    k_i, hkh_i = naive_kernel(fi)
    k_j, hkh_j = naive_kernel(fj)
    return naive_hsic_traces(k_i, hkh_i, k_j, hkh_j)


def naive_cka(acts: dict[str, np.ndarray], names: list[str], literal_pairs: int) -> tuple[np.ndarray, float, str]:
    n_layers = len(names)
    pairs = [(i, j) for i in range(n_layers) for j in range(i + 1, n_layers)]
    cka = np.eye(n_layers)
    if literal_pairs < 0:  # every pair, literally
        t0 = time.perf_counter()
        for i, j in pairs:
            cka[i, j] = cka[j, i] = naive_pair(acts[names[i]], acts[names[j]])
        return cka, time.perf_counter() - t0, f"all {len(pairs)} pairs run"
    t_k, kernels = [], []
    for name in names:
        t0 = time.perf_counter()
        kernels.append(naive_kernel(acts[name]))
        t_k.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    for i, j in pairs:
        if (i, j) == pairs[0]:
            cka[i, j] = cka[j, i] = naive_hsic_traces(*kernels[i], *kernels[j])
            t_tr = time.perf_counter() - t0
        else:  # the same value by the elementwise identity Tr(A B) = Σ A ∘ Bᵀ (not timed: agreement check only)
            (ki, hi), (kj, _) = kernels[i], kernels[j]
            cka[i, j] = cka[j, i] = float(np.sum(hi * kj) / np.sqrt(np.sum(hi * ki) * np.sum(kernels[j][1] * kj)))
    total = sum(t_k[i] + t_k[j] + t_tr for i, j in pairs)
    rng = np.random.default_rng(0)
    check = [pairs[q] for q in rng.choice(len(pairs), min(literal_pairs, len(pairs)), replace=False)]
    t0 = time.perf_counter()
    for i, j in check:
        naive_pair(acts[names[i]], acts[names[j]])
    measured = time.perf_counter() - t0
    predicted = sum(t_k[i] + t_k[j] + t_tr for i, j in check)
    note = (f"{len(pairs)} pairs from per-kernel times; {len(check)} literal pairs took {measured:.2f} s "
            f"vs {predicted:.2f} s predicted") if check else f"{len(pairs)} pairs from per-kernel times"
    return cka, total, note


def naive_kl(acts: dict[str, np.ndarray], names: list[str]) -> tuple[np.ndarray, np.ndarray, float]:
    t0 = time.perf_counter()
    n = next(iter(acts.values())).shape[0] - 1
    kl = np.zeros((n, len(names)))
    sign = np.zeros((n, len(names)))
    for i in range(n):
        for layer, name in enumerate(names):
            p = scipy.special.softmax(acts[name][0].astype(np.float64))
            q = scipy.special.softmax(acts[name][i + 1].astype(np.float64))
            kl[i, layer] = scipy.stats.entropy(q, p)
            j = int(np.argmax(p))
            sign[i, layer] = np.sign(p[j] - q[j])
    return kl, sign, time.perf_counter() - t0


def naive_ace(kl: np.ndarray, sign: np.ndarray, groups: np.ndarray, side: int) -> float:
    t0 = time.perf_counter()
    last = output_layers(groups)
    n_w = side - K + 1
    attribution = np.zeros((len(last), side, side))
    for g, li in enumerate(last):
        for i in range(kl.shape[0]):
            y, x = (i // n_w) * STRIDE, (i % n_w) * STRIDE
            attribution[g, y : y + K, x : x + K] += sign[i, li] * kl[i, li] / K**2
    _ = (sign[:, last] * kl[:, last]).mean(0)
    return time.perf_counter() - t0


def run(model, x: torch.Tensor, layers, repeats: int, literal_pairs: int, label: str) -> None:
    names = observed_layers(model, layers)
    runs = [vectorised(model, x, names) for _ in range(repeats)]
    med = {k: statistics.median(r[0][k] for r in runs) for k in runs[0][0]}
    totals = [sum(r[0].values()) for r in runs]
    _, ds, ace = runs[-1]

    acts, t_fwd = naive_activations(model, x.numpy(), names)
    cka_n, t_cka, note = naive_cka(acts, names, literal_pairs)
    kl_n, sign_n, t_kl = naive_kl(acts, names)
    del acts
    t0 = time.perf_counter()
    grp_n = layer_groups(binary_matrix(cka_n, EPS))
    t_grp = time.perf_counter() - t0
    t_ace = naive_ace(kl_n, sign_n, grp_n, x.shape[-1])

    cka_err = float(np.abs(cka_n - ds["cka"].values[0]).max())
    kl_ref = ds["kl"].values[0]
    kl_err = float(np.abs(kl_n - kl_ref).max() / max(np.abs(kl_n).max(), 1e-300))
    same_groups = bool(np.array_equal(grp_n, ace["layer_group"].values[0]))

    rows = [
        ("interventions + activations", med["activations"], t_fwd),
        ("CKA, all layer pairs", med["cka"], t_cka),
        (f"groups (eps {EPS})", med["groups"], t_grp),
        ("KL + sign per layer", med["kl"], t_kl),
        ("dataset assembly", med["dataset"], 0.0),
        ("ACE + attributions + mask", med["ace"], t_ace),
    ]
    vec_total = sum(r[1] for r in rows)
    naive_total = sum(r[2] for r in rows)
    print(f"\n== {label}: {len(names)} layers, {ds.attrs['n_interventions']} interventions "
          f"({K}x{K}, stride {STRIDE}), {torch.get_num_threads()} threads; vectorised: median of {repeats}")
    print(f"{'step':<32}{'vectorised s':>14}{'naive s':>10}{'ratio':>9}")
    for name, v, n in rows:
        ratio = f"{n / v:>8.1f}x" if n > 0 and v > 0 else f"{'-':>9}"
        print(f"{name:<32}{v:>14.3f}{n:>10.2f}{ratio}")
    print(f"{'total':<32}{vec_total:>14.3f}{naive_total:>10.2f}{naive_total / vec_total:>8.1f}x")
    print(f"vectorised totals per repeat: {', '.join(f'{t:.2f}' for t in totals)} s (min {min(totals):.2f})")
    print(f"naive CKA: {note}")
    print(f"agreement: max |CKA - naive| {cka_err:.1e}, max KL rel. diff {kl_err:.1e}, same groups: {same_groups}; "
          f"{int(ace['n_groups'].values[0])} causal nodes at eps {EPS}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", nargs="+", default=None,
                    help="observed layers (default: all 20, then the 8 activation outputs)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--naive-pairs", type=int, default=3,
                    help="literal naive CKA pairs timed to check the per-kernel sum (-1: run every pair)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.threads)
    except ImportError:
        pass
    torch.manual_seed(0)
    model = alexnet28().eval()
    digits = load_digits()
    test = digits["image"].values[digits["split"].values == "test"]
    x = torch.from_numpy(test[0][None].astype(np.float32))
    sets = ([(args.layers, "selected layers")] if args.layers
            else [("all", "all layers"), (EIGHT, "8 activation outputs")])
    for layers, label in sets:
        run(model, x, layers, args.repeats, args.naive_pairs, label)
    print(f"\npeak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
