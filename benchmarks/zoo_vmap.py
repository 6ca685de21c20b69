"""Benchmark: predictions + input gradients of a zoo of any architecture, many models at once
(``torch.func`` vmap over ``functional_call``, :mod:`causalxai.zoo.forward`) vs a loop over models.

The architecture is not the Small CNN Zoo's: the CNN of Schürholt et al.'s MNIST Model Zoos
(:func:`causalxai.zoo.modelzoos.cnn`, 2,464 parameters; tanh), or with ``--arch mlp`` an MLP
(784-64-32-10). Both ways compute each model's softmax on the probe images and the gradient of
its predicted class's probability w.r.t. the input, on the same device, in one run. The loop is
what a user would write: for each model, load its state dict into the module, run it, take
``torch.autograd.grad``. The table gives model-images per second and the ratio.

    python benchmarks/zoo_vmap.py                      # CPU defaults (64 models x 100 images, chunks of 32)
    python benchmarks/zoo_vmap.py --device cuda --models 4096 --loop-models 256 --chunk 1024
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits

from causalxai.attribution.gradient import Gradient
from causalxai.zoo.checkpoints import make_state_dict_zoo
from causalxai.zoo.forward import flatten_state_dict, state_dict_layout, unflatten_rows, zoo_forward
from causalxai.zoo.modelzoos import cnn, mlp

ARCHS = {"cnn": ("causalxai.zoo.modelzoos:cnn", {"channels_in": 1, "nlin": "tanh"}, [1, 28, 28]),
         "mlp": ("causalxai.zoo.modelzoos:mlp", {"i_dim": 784, "h_dim": [64, 32], "nlin": "tanh"}, [784])}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def make_zoo(arch: str, n: int, seed: int = 0):
    spec, kwargs, shape = ARCHS[arch]
    build = cnn if arch == "cnn" else mlp
    torch.manual_seed(seed)
    rows = np.stack([flatten_state_dict(build(**kwargs).state_dict()) for _ in range(n)])
    own = build(**kwargs).state_dict()
    zoo = make_state_dict_zoo(
        rows, state_dict_layout(own), pd.DataFrame({"seed": np.arange(n, dtype=float)}),
        {"seed": {"type": "numerical", "markers": None, "log": False}},
        pd.DataFrame({"test_accuracy": np.full(n, 0.5)}), architecture=spec, kwargs=kwargs, input_shape=shape,
        n_classes=10, last_conv=None, dataset="digits", source="benchmark")
    return zoo, build, kwargs, own


def batched(zoo, x: torch.Tensor, chunk: int, device: torch.device) -> float:
    n = zoo.sizes["model"]
    sync(device)
    t0 = time.perf_counter()
    for lo in range(0, n, chunk):
        sel = np.arange(lo, min(n, lo + chunk))
        forward = zoo_forward(zoo, sel, "prob", device=device)
        with torch.no_grad():
            target = forward(x).argmax(-1)
        Gradient(forward, models=sel.size).attribute(x, target)
    sync(device)
    return time.perf_counter() - t0


def loop(zoo, build, kwargs, own, x: torch.Tensor, n: int, shape, device: torch.device) -> float:
    layout = state_dict_layout(own)
    w = torch.tensor(zoo["weights"].values[:n])
    sync(device)
    t0 = time.perf_counter()
    for i in range(n):
        model = build(**kwargs).eval()
        model.load_state_dict({k: v[0] for k, v in unflatten_rows(w[i:i + 1], layout, own).items()})
        model.to(device)
        xi = x.reshape(x.shape[0], *shape)
        with torch.no_grad():
            target = torch.softmax(model(xi), -1).argmax(-1)
        xg = xi.detach().clone().requires_grad_(True)
        prob = torch.softmax(model(xg), -1)
        torch.autograd.grad(prob.gather(-1, target[:, None]).sum(), xg)
    sync(device)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--arch", choices=sorted(ARCHS), default="cnn")
    ap.add_argument("--models", type=int, default=64)
    ap.add_argument("--loop-models", type=int, default=None, help="models for the loop (default: --models)")
    ap.add_argument("--images", type=int, default=100)
    ap.add_argument("--chunk", type=int, default=32, help="models per vmap pass")
    args = ap.parse_args()
    device = torch.device(args.device)
    n, n_loop = args.models, args.loop_models or args.models
    d = load_digits()
    x = torch.tensor(d.images[: args.images], dtype=torch.float32)[:, None] * (255 / 16)
    x = (F.interpolate(x, size=28, mode="bilinear", align_corners=False) / 255 * 2 - 1).to(device)
    zoo, build, kwargs, own = make_zoo(args.arch, n)
    shape = ARCHS[args.arch][2]
    batched(zoo.isel(model=slice(0, 4)), x[:4], 4, device)  # warm-up
    loop(zoo, build, kwargs, own, x[:4], 2, shape, device)
    t_b = batched(zoo, x, args.chunk, device)
    t_l = loop(zoo, build, kwargs, own, x, n_loop, shape, device)
    rate_b, rate_l = n * x.shape[0] / t_b, n_loop * x.shape[0] / t_l
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    print(f"predictions + input gradient of a {args.arch} zoo ({ARCHS[args.arch][0]}, "
          f"{zoo.attrs['n_params']} parameters) on {name}, {x.shape[0]} images, torch {torch.__version__}")
    print(f"{'method':<34}{'models':>8}{'seconds':>10}{'model-images/s':>17}")
    print(f"{'loop over models (nn.Module)':<34}{n_loop:>8}{t_l:>10.2f}{rate_l:>17.1f}")
    print(f"{'vmap (chunks of ' + str(args.chunk) + ')':<34}{n:>8}{t_b:>10.2f}{rate_b:>17.1f}")
    print(f"speed-up (vmap / loop): {rate_b / rate_l:.2f}x")


if __name__ == "__main__":
    main()
