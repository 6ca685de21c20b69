"""Benchmark: the explanation suite for many zoo models at once vs a Captum loop per model.

Both compute Gradient, SmoothGrad (25 samples, noise 0.15), Integrated Gradients (25
steps, zero baseline) and Grad-CAM (last conv layer) of each model's predicted class on
the same probe images, on the same device, in one run. The naive way is what a user
would write: for each model, build the torch module and call Captum's Saliency,
NoiseTunnel(Saliency), IntegratedGradients and LayerGradCam, with torch's threads. The
vectorized way runs as the explain step does: chunks of models through one batched forward,
as many chunks at once as torch has threads, one intra-op thread each
(``causalxai.runtime.chunk_map``). The table gives model-images per second, the ratio, and
peak memory.

    python benchmarks/explain.py                        # CPU defaults (32 models x 100 images)
    python benchmarks/explain.py --device cuda --models 30000 --captum-models 64
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import torch
import torch.nn.functional as F
from captum.attr import IntegratedGradients, LayerAttribution, LayerGradCam, NoiseTunnel, Saliency
from sklearn.datasets import load_digits

from causalxai.attribution.grad_cam import GradCam
from causalxai.attribution.gradient import Gradient
from causalxai.attribution.integrated_gradients import IntegratedGradients as ZooIntegratedGradients
from causalxai.attribution.smoothgrad import SmoothGrad
from causalxai.runtime import chunk_map, fast_heap
from causalxai.study.explain import auto_chunk
from causalxai.zoo.network import ZooCNN, batched_forward, unflatten, zoo_layout


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def peak_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def vectorized(w: torch.Tensor, acts: np.ndarray, x: torch.Tensor, chunk: int, device: torch.device) -> float:
    layout = zoo_layout(1)

    def one_chunk(item: tuple[str, np.ndarray]) -> None:
        act, sel = item
        p = unflatten(w[torch.as_tensor(sel, device=device)], layout)
        forward = batched_forward(p, act)
        with torch.no_grad():
            target = forward(x).argmax(-1)
        Gradient(forward, models=sel.size).attribute(x, target)
        SmoothGrad(forward, models=sel.size).attribute(
            x, target, samples=25, noise=0.15, generator=torch.Generator(device=device).manual_seed(0)
        )
        ZooIntegratedGradients(forward, models=sel.size).attribute(x, target, steps=25)
        GradCam(batched_forward(p, act, last_conv=True)).attribute(x, target)

    chunks = []
    for act in ("relu", "tanh"):
        idx = np.flatnonzero(acts == act)
        chunks += [(act, sel) for sel in np.array_split(idx, max(1, int(np.ceil(idx.size / chunk)))) if sel.size]
    sync(device)
    t0 = time.perf_counter()
    for _ in chunk_map(one_chunk, chunks, device):  # as the explain step: chunks at once on the CPU's threads
        pass
    sync(device)
    return time.perf_counter() - t0


def captum_loop(w: torch.Tensor, acts: np.ndarray, x: torch.Tensor, device: torch.device) -> float:
    layout = zoo_layout(1)
    sync(device)
    t0 = time.perf_counter()
    for i in range(w.shape[0]):
        model = ZooCNN.from_flat(w[i].cpu(), layout, str(acts[i])).to(device)
        prob = lambda inp, model=model: torch.softmax(model(inp), dim=-1)  # noqa: E731
        with torch.no_grad():
            target = prob(x).argmax(-1)
        sal = Saliency(prob)
        sal.attribute(x, target=target, abs=False)
        sigma = float(0.15 * (x.max() - x.min()))
        NoiseTunnel(sal).attribute(x, nt_type="smoothgrad", nt_samples=25, stdevs=sigma, target=target, abs=False)
        IntegratedGradients(prob).attribute(x, target=target, n_steps=25, method="riemann_trapezoid")
        cam = LayerGradCam(prob, model.act3).attribute(x, target=target, relu_attributions=True)
        LayerAttribution.interpolate(cam, x.shape[-2:], interpolate_mode="bilinear")
    sync(device)
    return time.perf_counter() - t0


def main() -> None:
    fast_heap()  # the explain jobs' heap settings (workflow/scripts/common.start), for both ways alike
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--models", type=int, default=None, help="models for the vectorized suite (32 CPU, 30000 GPU)")
    ap.add_argument("--captum-models", type=int, default=None, help="models for the Captum loop (8 CPU, 64 GPU)")
    ap.add_argument("--images", type=int, default=100)
    ap.add_argument("--chunk", type=int, default=None,
                    help="models per pass (default: explain.chunk_size auto, 400 model-images on CPU, 4096 GPU)")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved runs of each way; the fastest counts")
    args = ap.parse_args()
    device = torch.device(args.device)
    gpu = device.type == "cuda"
    n = args.models or (30000 if gpu else 32)
    n_cap = args.captum_models or (64 if gpu else 8)
    chunk = args.chunk or auto_chunk(device, args.images)
    d = load_digits()
    x = torch.tensor(d.images[: args.images], dtype=torch.float32)[:, None] * (255 / 16)
    x = (F.interpolate(x, size=28, mode="bilinear", align_corners=False) / 255 * 2 - 1).to(device)
    rng = np.random.default_rng(0)
    w = torch.tensor(rng.normal(scale=0.2, size=(n, 4970)), dtype=torch.float32, device=device)
    acts = rng.choice(["relu", "tanh"], size=n)
    vectorized(w[:4], acts[:4], x[:4], 4, device)  # warm-up
    captum_loop(w[:1], acts[:1], x[:4], device)
    if gpu:
        torch.cuda.reset_peak_memory_stats(device)
    t_vec, t_cap = float("inf"), float("inf")
    for _ in range(args.repeats):  # interleaved, the fastest of each: this machine's speed drifts
        t_vec = min(t_vec, vectorized(w, acts, x, chunk, device))
        mem_vec = peak_mb(device)
        t_cap = min(t_cap, captum_loop(w[:n_cap], acts[:n_cap], x, device))
    rate_vec, rate_cap = n * x.shape[0] / t_vec, n_cap * x.shape[0] / t_cap
    name = torch.cuda.get_device_name(device) if gpu else f"CPU ({torch.get_num_threads()} threads)"
    print(f"explanation suite (Gradient, SmoothGrad 25, IG 25, Grad-CAM) on {name}, {x.shape[0]} images, "
          f"torch {torch.__version__}")
    print(f"{'method (fastest of ' + str(args.repeats) + ')':<32}{'models':>8}{'seconds':>10}{'model-images/s':>17}")
    print(f"{'Captum loop per model':<32}{n_cap:>8}{t_cap:>10.2f}{rate_cap:>17.1f}")
    print(f"{'vectorized (chunks of ' + str(chunk) + ')':<32}{n:>8}{t_vec:>10.2f}{rate_vec:>17.1f}")
    print(f"speed-up (vectorized / Captum loop): {rate_vec / rate_cap:.1f}x; peak memory {mem_vec:.0f} MiB"
          f"{' (GPU, vectorized)' if gpu else ' (process max RSS)'}")


if __name__ == "__main__":
    main()
