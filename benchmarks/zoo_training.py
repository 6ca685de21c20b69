"""Benchmark: vectorized zoo training vs a sequential per-model loop, same device, one run.

The naive way a user would train a zoo: for each model, build a torch module and a
torch.optim optimizer and run its training steps, one model after another. The
vectorized way (``causalxai.zoo.train.train_chunk``) trains a chunk of models as stacked
parameters with grouped convolutions. Both run the same models (same hyperparameters,
batch size 32, digits images 28x28) for the same number of steps; the table reports
model-steps per second and the ratio.

    python benchmarks/zoo_training.py                    # CPU defaults
    python benchmarks/zoo_training.py --device cuda --models 4096 --chunk 4096
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits

from causalxai.runtime import chunk_map, fast_heap
from causalxai.zoo.hparams import sample_hparams
from causalxai.zoo.network import ZooCNN, zoo_layout
from causalxai.zoo.train import TrainSettings, init_flat, make_chunks, train_chunk


def digits(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32)[:, None] * (255 / 16)
    x = F.interpolate(x, size=28, mode="bilinear", align_corners=False) / 255 * 2 - 1
    return x.to(device), torch.tensor(d.target, device=device)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def sequential(hp, flat0, x, y, steps: int, batch: int, device: torch.device, seed: int) -> float:
    """Per-model loop: a module and a torch.optim optimizer per model; seconds taken."""
    layout = zoo_layout(1)
    g = torch.Generator(device=device).manual_seed(seed)
    sync(device)
    t0 = time.perf_counter()
    for i, row in enumerate(hp.itertuples()):
        model = ZooCNN.from_flat(flat0[i], layout, row.activation, float(row.dropout)).to(device).train()
        opt_cls = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "rmsprop": torch.optim.RMSprop}[row.optimizer]
        opt = opt_cls(model.parameters(), lr=float(row.learning_rate))
        kernels = [m.weight for m in (model.conv1, model.conv2, model.conv3, model.dense)]
        for _ in range(steps):
            idx = torch.randint(0, x.shape[0], (batch,), generator=g, device=device)
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x[idx]), y[idx]) + float(row.l2reg) * sum((k * k).sum() for k in kernels)
            loss.backward()
            opt.step()
    sync(device)
    return time.perf_counter() - t0


def vectorized(hp, flat0, x, y, steps: int, batch: int, chunk: int, device: torch.device, seed: int) -> float:
    """train_chunk over the chunks train_zoo would form (``make_chunks``), as many at once as torch
    has threads, one intra-op thread each (``runtime.chunk_map``, as ``train_zoo``); seconds."""
    layout = zoo_layout(1)
    n = x.shape[0]
    # every model takes exactly `steps` steps: epochs * n_sub / batch = steps with train_fraction 1
    hp = hp.assign(train_fraction=1.0)
    epochs = max(1, int(np.ceil(steps * batch / n)))
    xs, ys = x[: (steps * batch) // epochs], y[: (steps * batch) // epochs]

    def one_chunk(item: tuple[int, np.ndarray]) -> None:
        c, sel = item
        train_chunk(hp.iloc[sel].reset_index(drop=True), flat0[sel], xs, ys,
                    TrainSettings(epochs=epochs, batch_size=batch), layout, torch.Generator().manual_seed(seed + c))

    sync(device)
    t0 = time.perf_counter()
    for _ in chunk_map(one_chunk, list(enumerate(make_chunks(hp, chunk))), device):  # as train_zoo
        pass
    sync(device)
    return time.perf_counter() - t0


def main() -> None:
    fast_heap()  # the training job's heap settings (workflow/scripts/common.start), for both ways alike
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--models", type=int, default=None, help="models (default 64 on CPU, 4096 on GPU)")
    ap.add_argument("--seq-models", type=int, default=None,
                    help="models for the sequential loop (default: min(models, 32 CPU / 64 GPU))")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--chunk", type=int, default=None, help="models per chunk (default 16 CPU, 4096 GPU)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    device = torch.device(args.device)
    gpu = device.type == "cuda"
    n = args.models or (4096 if gpu else 64)
    n_seq = args.seq_models or min(n, 64 if gpu else 32)
    chunk = args.chunk or (4096 if gpu else 16)
    x, y = digits(device)
    hp = sample_hparams(n, {}, seed=args.seed)
    flat0 = init_flat(hp, zoo_layout(1), torch.Generator().manual_seed(args.seed))
    # warm-up (allocator, kernels) on a few models, not timed
    vectorized(hp.iloc[:4], flat0[:4], x, y, 3, args.batch, 4, device, args.seed)
    sequential(hp.iloc[:2], flat0[:2], x, y, 3, args.batch, device, args.seed)

    t_vec = vectorized(hp, flat0, x, y, args.steps, args.batch, chunk, device, args.seed)
    t_seq = sequential(hp.iloc[:n_seq], flat0[:n_seq], x, y, args.steps, args.batch, device, args.seed)
    vec_rate = n * args.steps / t_vec
    seq_rate = n_seq * args.steps / t_seq
    name = torch.cuda.get_device_name(device) if gpu else f"CPU ({torch.get_num_threads()} threads)"
    print(f"zoo training on {name}: batch {args.batch}, {args.steps} steps per model, torch {torch.__version__}")
    print(f"{'method':<34}{'models':>8}{'seconds':>10}{'model-steps/s':>16}")
    print(f"{'sequential per-model loop':<34}{n_seq:>8}{t_seq:>10.2f}{seq_rate:>16.1f}")
    print(f"{'vectorized (chunks of ' + str(chunk) + ')':<34}{n:>8}{t_vec:>10.2f}{vec_rate:>16.1f}")
    print(f"speed-up (vectorized / sequential): {vec_rate / seq_rate:.2f}x")


if __name__ == "__main__":
    main()
