"""Benchmark: counterfactuals from the trained GAN (paper 004 §3.5) vs the Wachter et al. (2017)
gradient search, on the same samples, device and classifier, in one run.

* **GAN** (:func:`causalxai.counterfactual.counterfactuals.counterfactuals`): one batched pass:
  encode, K latent candidates, decode, classify, choose; with ``--blend-steps`` > 0 also the
  minimal-change refinement. Its training time is reported apart (it is paid once, not per sample).
* **Wachter search** (:func:`causalxai.counterfactual.wachter.wachter_search`, the package's, the
  same as the ``wachter_counterfactuals`` rule): ``λ·CE(f(x'), y*) + ‖x' − x‖₁`` (raw units) with
  Adam, λ raised by ``--wachter-factor`` each round a sample stays invalid, all samples at once.

All get the same metrics (:func:`causalxai.counterfactual.metrics.counterfactual_metrics`:
validity, proximity ℓ1/ℓ2/L∞, L0, sparsity, plausibility, yNN, redundancy against the training
split) and the rate in samples per second; the table ends with the speed ratio GAN / search.

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

from causalxai.counterfactual.counterfactuals import CounterfactualSettings, counterfactuals, select_samples
from causalxai.counterfactual.gan import GanSettings, load_gan, nearest_neighbours, train_counterfactual_gan
from causalxai.counterfactual.metrics import counterfactual_metrics
from causalxai.counterfactual.wachter import WachterSettings, wachter_search
from causalxai.data.dataset import load_digits
from causalxai.runtime import resolve_device
from causalxai.tracer.settings import ClassifierSettings
from causalxai.tracer.target_model import dataset_tensors, load_target_model, train_target_model


def metrics(model, x, cf, target, pool, pool_pred):
    m = counterfactual_metrics(model, x, cf, target, pool=pool, pool_pred=pool_pred)
    return {k: float(np.nanmean(v.astype(np.float64))) for k, v in m.items() if k != "pred"}


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
    ap.add_argument("--wachter-lam", type=float, default=1.0, help="initial lambda")
    ap.add_argument("--wachter-factor", type=float, default=10.0, help="lambda's factor per round while invalid")
    ap.add_argument("--wachter-rounds", type=int, default=4)
    ap.add_argument("--wachter-steps", type=int, default=100, help="Adam steps per round")
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
    # one call with the refinement on gives both: the raw generator's choice and the refined one; the times are
    # the generation's own (seconds_per_counterfactual), not the metrics counterfactuals() computes as well
    ds = counterfactuals(gen, model, x, {"target": target},
                         CounterfactualSettings(n_candidates=args.n_candidates, sigma=args.sigma, seed=args.seed,
                                                blend_steps=args.blend_steps), device=dev)
    prefix = "raw_" if args.blend_steps > 0 else ""
    gan_rows.append(("GAN (K candidates)", torch.as_tensor(ds[f"{prefix}counterfactual_inputs"].values, device=dev),
                     ds.attrs[f"{prefix}seconds_per_counterfactual"] * len(x)))
    if args.blend_steps > 0:
        gan_rows.append((f"GAN + refinement ({args.blend_steps} steps)",
                         torch.as_tensor(ds["counterfactual_inputs"].values, device=dev),
                         ds.attrs["seconds_per_counterfactual"] * len(x)))

    t0 = time.perf_counter()
    found = wachter_search(model, x, target.to(dev),
                           WachterSettings(lam=args.wachter_lam, lam_factor=args.wachter_factor,
                                           rounds=args.wachter_rounds, steps=args.wachter_steps, lr=args.wachter_lr))
    if dev.type == "cuda":
        torch.cuda.synchronize()
    t_w = time.perf_counter() - t0
    cf_w, steps = found["counterfactual"], found["steps"].cpu().numpy()

    mis = torch.as_tensor(sel["kind"] == "misclassified")
    pool_pred = model(pool[0]).argmax(1) if len(pool[0]) <= 4096 else None
    rows = {}
    for name, cf, t in (*gan_rows, ("Wachter search", cf_w, t_w)):
        row = metrics(model, x, cf, target.to(dev), pool, pool_pred)
        row["validity_misclassified"] = float(
            (model(cf[mis]).argmax(1).cpu() == target[mis]).float().mean()) if bool(mis.any()) else float("nan")
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
