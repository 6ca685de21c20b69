"""Benchmark: counterfactuals from the trained GAN (paper 004 §3.5) vs a per-sample gradient
search (Wachter et al. 2017), on the same samples, device and classifier, in one run.

* **GAN** (:func:`causalxai.counterfactual.counterfactuals.counterfactuals`): one batched pass:
  encode, K latent candidates, decode, classify, choose. Its training time is reported
  apart (it is paid once, not per sample).
* **Wachter-style search** (what one writes without a generator): per sample, optimise
  ``x'`` in raw space [0, 1] from ``x`` with Adam (lr ``--wachter-lr``) on
  ``λ·CE(f(x'), y*) + ‖x' − x‖₁`` (raw units), clipped to [0, 1] after each step, at most
  ``--wachter-steps`` steps, stopping at the first step where ``f`` predicts ``y*``.
  ``λ`` is fixed (``--wachter-lam``; the original's outer loop raising λ is left out).

Both get the same metrics (validity, proximity ℓ1/ℓ2, sparsity, plausibility against the
training split: :mod:`causalxai.counterfactual.counterfactuals`) and the rate in samples per
second; the table ends with the speed ratio GAN / search.

The samples are those of the workflow (:func:`~causalxai.counterfactual.counterfactuals.select_samples`:
every misclassified test sample plus ``--n-correct`` correct ones). The classifier and the
GAN are trained here on the embedded digits unless given:

    python benchmarks/counterfactual.py                                 # trains both (a few minutes on CPU)
    python benchmarks/counterfactual.py --target results/digits/tracer/target_model.pt \\
        --gan results/digits/tracer/counterfactual_gan.pt
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from causalxai.counterfactual.counterfactuals import (
    CounterfactualSettings,
    candidate_metrics,
    counterfactuals,
    select_samples,
)
from causalxai.counterfactual.gan import GanSettings, load_gan, nearest_neighbours, train_counterfactual_gan
from causalxai.data.dataset import load_digits
from causalxai.runtime import resolve_device
from causalxai.tracer.settings import ClassifierSettings
from causalxai.tracer.target_model import dataset_tensors, load_target_model, train_target_model


def wachter(model, x, target, *, lam, steps, lr):
    """Per-sample gradient search; returns the counterfactuals (normalised) and the steps used."""
    out, used = [], []
    for xi, ti in zip(x, target):
        raw0 = (xi[None] + 1) / 2
        r = raw0.clone().requires_grad_(True)
        opt = torch.optim.Adam([r], lr=lr)
        t = torch.tensor([int(ti)], device=x.device)
        k = 0
        for k in range(1, steps + 1):
            logits = model(r * 2 - 1)
            if int(logits.argmax(1)) == int(ti):
                k -= 1
                break
            loss = lam * F.cross_entropy(logits, t) + (r - raw0).abs().sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            with torch.no_grad():
                r.clamp_(0, 1)
        out.append((r.detach() * 2 - 1)[0])
        used.append(k)
    return torch.stack(out), np.asarray(used)


def metrics(model, x, cf, target, pool):
    with torch.no_grad():
        pred = model(cf).argmax(1)
    m = candidate_metrics(x, cf[:, None])
    ref_x, ref_y = pool
    raw = lambda t: (t + 1) / 2  # noqa: E731
    _, d = nearest_neighbours(raw(cf), raw(ref_x), ref_y, int(ref_y.max()) + 1)
    return {
        "validity": float((pred.cpu() == target.cpu()).float().mean()),
        "proximity_l1": float(m["proximity_l1"].mean()),
        "proximity_l2": float(m["proximity_l2"].mean()),
        "sparsity": float(m["sparsity"].mean()),
        "plausibility_l1": float(d.gather(1, target.to(d.device)[:, None]).mean()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--target", help="target model .pt (default: train alexnet28 on digits here)")
    ap.add_argument("--gan", help="counterfactual GAN .pt (default: train one here)")
    ap.add_argument("--target-epochs", type=int, default=10)
    ap.add_argument("--gan-epochs", type=int, default=30)
    ap.add_argument("--n-correct", type=int, default=20)
    ap.add_argument("--n-candidates", type=int, default=8)
    ap.add_argument("--sigma", type=float, default=0.5)
    ap.add_argument("--blend-steps", type=int, default=20, help="minimal-change refinement (0: generator output only)")
    ap.add_argument("--wachter-lam", type=float, default=10.0)
    ap.add_argument("--wachter-steps", type=int, default=300)
    ap.add_argument("--wachter-lr", type=float, default=0.01)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    dev = resolve_device(args.device)

    data = load_digits()
    x_train, y_train = dataset_tensors(data, "train")
    x_test, y_test = dataset_tensors(data, "test")
    if args.target:
        model = load_target_model(args.target)
    else:
        t0 = time.perf_counter()
        model, _, summary = train_target_model(data, ClassifierSettings(epochs=args.target_epochs, seed=args.seed),
                                               device=args.device)
        print(f"target model: {float(summary['test_accuracy']):.4f} test accuracy, trained in "
              f"{time.perf_counter() - t0:.1f} s")
    model = model.to(dev).eval()
    if args.gan:
        gen, disc, _ = load_gan(args.gan)
        train_s = float("nan")
    else:
        gen, disc, hist = train_counterfactual_gan(x_train, y_train, model,
                                                   GanSettings(epochs=args.gan_epochs, seed=args.seed),
                                                   device=dev, progress=False)
        train_s = hist["train_seconds"]
        print(f"GAN: {args.gan_epochs} epochs in {train_s:.1f} s ({np.median(hist['seconds']):.2f} s per epoch, "
              f"median), validity on its training images {hist['validity'][-1]:.3f}")
    for p in model.parameters():
        p.requires_grad_(False)

    sel = select_samples(model, x_test.to(dev), y_test.to(dev), args.n_correct, args.seed)
    x = x_test[sel["index"]].to(dev)
    target = torch.as_tensor(sel["target"])
    pool = (x_train.to(dev), y_train.to(dev))
    print(f"{len(x)} samples ({int((sel['kind'] == 'misclassified').sum())} misclassified) on {dev}")

    if dev.type == "cuda":
        torch.cuda.synchronize()
    gan_rows = []
    for steps_ in sorted({0, args.blend_steps}):
        t0 = time.perf_counter()
        ds = counterfactuals(gen, model, x, {"target": target},
                             CounterfactualSettings(n_candidates=args.n_candidates, sigma=args.sigma, seed=args.seed,
                                                    blend_steps=steps_), device=dev)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        name = "GAN (K candidates)" if steps_ == 0 else f"GAN + refinement ({steps_} steps)"
        gan_rows.append((name, torch.as_tensor(ds["counterfactual_inputs"].values, device=dev),
                         time.perf_counter() - t0))

    t0 = time.perf_counter()
    cf_w, steps = wachter(model, x, target, lam=args.wachter_lam, steps=args.wachter_steps, lr=args.wachter_lr)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    t_w = time.perf_counter() - t0

    mis = torch.as_tensor(sel["kind"] == "misclassified")
    rows = {}
    for name, cf, t in (*gan_rows, ("Wachter search", cf_w, t_w)):
        row = metrics(model, x, cf, target.to(dev), pool)
        row["validity_misclassified"] = metrics(model, x[mis], cf[mis], target[mis].to(dev), pool)["validity"]
        row["seconds"] = t
        row["samples_per_s"] = len(x) / t
        rows[name] = row
    table = pd.DataFrame(rows).T
    raw = lambda t: (t + 1) / 2  # noqa: E731
    _, d0 = nearest_neighbours(raw(x), raw(pool[0]), pool[1], int(pool[1].max()) + 1)
    print(table.to_string(float_format=lambda v: f"{v:.3f}"))
    print(f"nearest real target-class image (train split): mean l1 "
          f"{float(d0.gather(1, target.to(d0.device)[:, None]).mean()):.1f}")
    print(f"Wachter steps per sample: median {np.median(steps):.0f}, max {steps.max()}")
    for name, _, _ in gan_rows:
        print(f"speed ratio {name} / Wachter: "
              f"{rows[name]['samples_per_s'] / rows['Wachter search']['samples_per_s']:.1f}x")
    if not np.isnan(train_s):
        print(f"(GAN training, paid once: {train_s:.1f} s)")


if __name__ == "__main__":
    main()
