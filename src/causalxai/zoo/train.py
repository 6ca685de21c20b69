"""Train a zoo of small CNNs locally, many models in one vectorized loop.

Each model is the Small CNN Zoo network (:mod:`causalxai.zoo.network`) with its own
hyperparameters drawn as the zoo drew them (:func:`causalxai.zoo.hparams.sample_hparams`):
optimizer, activation, initialiser and its std, L2 penalty on the kernels, dropout,
learning rate and the fraction of the training split it sees. Models are trained in
chunks: one chunk is one set of stacked parameters, its convolutions are grouped
convolutions (``groups = models in the chunk``), so a training step of the whole chunk
is one forward and one backward pass. Within a chunk every model keeps:

* its own optimizer state and learning rate (SGD, Adam and RMSprop with Keras' default
  constants; ``torch.optim`` has no per-row learning rate, so the three update rules are
  written out here);
* its own data subset (``train_fraction`` of the training split, drawn per model) and
  its own minibatch stream (each epoch a fresh permutation of its subset);
* its own number of steps: ``ceil(epochs * subset_size / batch_size)``, as a model
  trained for ``epochs`` epochs on its subset would take; a model that has taken all
  its steps stops updating while the rest of its chunk goes on.

Chunks never mix optimizers or activations (:func:`make_chunks`), and within a chunk the
models have similar train fractions, hence similar step counts. The results are
returned in the original model order.

**The zoo does not depend on the chunk size.** The random draws (initial weights, data
subsets, minibatch order, dropout masks) come in fixed blocks of :data:`RNG_BLOCK` models,
each from its own generator (seeded by the seed and the block's number); a chunk is one or
more whole blocks of one (optimizer, activation) group, and draws every block's numbers as
that block would alone (:func:`chunk_blocks`). Each model's arithmetic does not depend on its
chunk either (a grouped convolution computes every group on its own), so on one thread a zoo
trained 16 or 1,024 models at a time is the same, bit for bit (``tests/zoo/test_train.py``).
On the CPU every chunk trains on one thread, and the job's threads train that many chunks at
once (:func:`causalxai.runtime.chunk_map`), so the zoo does not depend on the thread count
either. (Before, a chunk's operations used all the job's threads, and torch summed in an order
that depended on their number: a rounding difference that training amplified for a few models.)
A chunk is never smaller than a block: ``chunk_size`` below 16 trains 16 models at a time.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
import xarray as xr

from causalxai.progress import Progress
from causalxai.runtime import chunk_map, resolve_device
from causalxai.zoo.hparams import sample_hparams
from causalxai.zoo.init import init_kernels
from causalxai.zoo.network import batched_logits, flatten, parse_layout, unflatten, zoo_layout

__all__ = [
    "TrainSettings",
    "train_zoo",
    "init_flat",
    "train_chunk",
    "make_chunks",
    "build_trained_zoo",
    "resolve_chunk_size",
    "chunk_blocks",
    "evaluate",
    "RNG_BLOCK",
]

ADAM_B1, ADAM_B2, ADAM_EPS = 0.9, 0.999, 1e-7
#: models per block of random draws (see the module docstring): the CPU's chunk size, so a
#: zoo trained in chunks of 16 draws as it always did
RNG_BLOCK = 16
RMS_RHO, RMS_EPS = 0.9, 1e-7

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainSettings:
    """How every model of the zoo is trained (the same for all models). ``chunk_size`` (models
    trained at once, whole blocks of :data:`RNG_BLOCK`) and ``device`` say where and how many at
    a time: the zoo does not depend on the chunk size (see the module docstring)."""

    epochs: int = 10
    batch_size: int = 32
    chunk_size: int | str = "auto"
    device: str = "auto"
    eval_batch_size: int = 512

    @classmethod
    def from_params(cls, train: Mapping[str, Any]) -> TrainSettings:
        """From the config's ``zoo.train`` (``epochs``, ``batch_size``; ``chunk_size`` and
        ``device`` default to ``auto``)."""
        return cls(
            epochs=int(train["epochs"]),
            batch_size=int(train["batch_size"]),
            chunk_size=train.get("chunk_size", "auto"),
            device=train.get("device", "auto"),
        )


def resolve_chunk_size(chunk_size: int | str, device: torch.device, n_models: int) -> int:
    """``auto`` → 16 models per chunk on the CPU (larger groups ran slower there), 1024 on a GPU."""
    if chunk_size == "auto":
        chunk_size = 1024 if device.type == "cuda" else 16
    return max(1, min(int(chunk_size), n_models))


def make_chunks(hp: pd.DataFrame, chunk_size: int) -> list[np.ndarray]:
    """Split models into chunks that share an optimizer and an activation.

    Within each (optimizer, activation) group, models are sorted by train fraction (so a
    chunk's step counts are close) and split into ``ceil(n / chunk_size)`` chunks of
    near-equal size. Homogeneous chunks take the fast path of every step: one update rule
    and one activation for the whole stacked tensor.
    """
    chunks: list[np.ndarray] = []
    keys = hp[["optimizer", "activation"]].astype(str).agg("/".join, axis=1).to_numpy()
    frac = hp["train_fraction"].to_numpy()
    for key in sorted(set(keys)):
        members = np.flatnonzero(keys == key)
        members = members[np.argsort(frac[members], kind="stable")]
        n_chunks = int(np.ceil(members.size / chunk_size))
        chunks.extend(np.array_split(members, n_chunks))
    return chunks


def chunk_blocks(hp: pd.DataFrame, blocks: Sequence[np.ndarray], chunk_size: int) -> list[list[int]]:
    """The blocks of random draws (:func:`make_chunks` of :data:`RNG_BLOCK`) trained together:
    consecutive blocks of one (optimizer, activation) group, as many as fit in ``chunk_size``
    models (at least one). Returns the block numbers of each chunk."""
    keys = hp[["optimizer", "activation"]].astype(str).agg("/".join, axis=1).to_numpy()
    chunks: list[list[int]] = []
    size = 0
    for b, members in enumerate(blocks):
        same = bool(chunks) and keys[members[0]] == keys[blocks[chunks[-1][-1]][0]]
        if same and size + members.size <= chunk_size:
            chunks[-1].append(b)
            size += members.size
        else:
            chunks.append([b])
            size = members.size
    return chunks


def _block_generator(seed: int, block: int) -> torch.Generator:
    """The generator of block ``block`` (CPU; the same on every device)."""
    return torch.Generator().manual_seed(int(seed) * 1_000_003 + int(block))


def _batch_stream(
    n_train: int, n_sub: np.ndarray, epochs: int, g: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-model index streams: E fresh permutations of each model's own subset.

    Returns ``stream (M, T_max)`` (int64 indices into the training split) and
    ``length (M,)`` (valid entries per model, ``epochs * n_sub``).
    """
    m = len(n_sub)
    n_sub_t = torch.as_tensor(n_sub, dtype=torch.int64)
    # each model's subset: the first n_sub entries of a random permutation of the split
    subset = torch.argsort(torch.rand((m, n_train), generator=g), dim=1)
    n_max = int(n_sub.max())
    subset = subset[:, :n_max]
    pos = torch.arange(n_max)[None, :]
    valid = pos < n_sub_t[:, None]
    blocks = []
    for _ in range(epochs):
        keys = torch.rand((m, n_max), generator=g).masked_fill(~valid, 2.0)
        perm = torch.argsort(keys, dim=1)  # valid positions first, shuffled
        blocks.append(torch.gather(subset, 1, perm))
    block = torch.stack(blocks, dim=1)  # (M, E, n_max)
    length = n_sub_t * epochs
    t = torch.arange(int(length.max()))[None, :]
    e = torch.clamp(t // n_sub_t[:, None], max=epochs - 1)
    j = t % n_sub_t[:, None]
    stream = block[torch.arange(m)[:, None], e, j]
    return stream, length


@torch.no_grad()
def evaluate(
    params: Mapping[str, torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    is_tanh: torch.Tensor,
    batch_size: int = 512,
) -> tuple[np.ndarray, np.ndarray]:
    """Accuracy and mean cross-entropy ``(M,)`` of every model on ``(x, y)``.

    Images go through in batches of at most ``batch_size`` and at most 16,384
    model-images per pass (the first convolution's output of a pass is then below
    200 MB whatever the number of models).
    """
    m = is_tanh.shape[0]
    batch_size = max(1, min(batch_size, 16384 // m))
    correct = torch.zeros(m, dtype=torch.float64, device=x.device)
    loss = torch.zeros(m, dtype=torch.float64, device=x.device)
    for s in range(0, x.shape[0], batch_size):
        xb, yb = x[s : s + batch_size], y[s : s + batch_size]
        logits = batched_logits(params, xb, is_tanh)
        correct += (logits.argmax(-1) == yb[None]).sum(1).double()
        loss += F.cross_entropy(logits.transpose(1, 2), yb[None].expand(m, -1), reduction="none").sum(1).double()
    n = x.shape[0]
    return (correct / n).cpu().numpy(), (loss / n).cpu().numpy()


def init_flat(hp: pd.DataFrame, layout: pd.DataFrame, g: torch.Generator) -> torch.Tensor:
    """Initial flat zoo-layout weights ``(M, n_params)``: kernels per ``w_init``, zero biases."""
    m = len(hp)
    flat = torch.zeros((m, parse_layout(layout)[-1].end))
    for e in parse_layout(layout):
        if e.kind == "kernel":
            k = init_kernels(e.shape, hp["w_init"].to_numpy(), hp["init_std"].to_numpy(), g)
            flat[:, e.start : e.end] = k.reshape(m, -1)
    return flat


def train_chunk(
    hp: pd.DataFrame,
    flat0: torch.Tensor,
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    settings: TrainSettings,
    layout: pd.DataFrame,
    g: torch.Generator | Sequence[torch.Generator],
    progress: Progress | None = None,
    *,
    blocks: Sequence[int] | None = None,
) -> tuple[dict[str, torch.Tensor], np.ndarray]:
    """Train one chunk of models from initial weights ``flat0`` (see the module docstring).

    The chunk trains where ``x_train`` lies; ``progress`` counts its model-steps. ``g`` is the
    random source of the data subsets, minibatch order and dropout: one generator, or one per
    block of consecutive models, ``blocks`` giving their sizes; each block then draws what it
    would draw trained alone, so the trained models do not depend on how blocks are grouped.

    The chunk's parameters are one leaf tensor ``(M, n_params)`` in the flat zoo layout;
    each step views it as torch-ordered tensors for the grouped-convolution forward pass,
    so the optimizer update is a handful of element-wise operations on one tensor.

    Returns the trained torch-ordered parameters and each model's step count.
    """
    m = len(hp)
    n_train = x_train.shape[0]
    device = x_train.device
    entries = parse_layout(layout)
    flat = flat0.to(device=device, dtype=torch.float32).clone().requires_grad_(True)
    kernel_cols = torch.zeros(flat.shape[1], dtype=torch.bool, device=device)
    for e in entries:
        if e.kind == "kernel":
            kernel_cols[e.start : e.end] = True

    gens = [g] if isinstance(g, torch.Generator) else list(g)
    sizes = [m] if blocks is None else [int(b) for b in blocks]
    if len(gens) != len(sizes) or sum(sizes) != m:
        raise ValueError(f"train_chunk: {len(gens)} generator(s) for blocks of {sizes} models; the chunk has {m}")
    bounds = np.cumsum([0, *sizes])
    n_sub = np.maximum(1, np.round(hp["train_fraction"].to_numpy() * n_train)).astype(np.int64)
    parts = [_batch_stream(n_train, n_sub[lo:hi], settings.epochs, gb) for gb, lo, hi in zip(gens, bounds, bounds[1:])]
    width = max(part[0].shape[1] for part in parts)  # positions past a model's length are never read
    stream = torch.cat([F.pad(part[0], (0, width - part[0].shape[1])) for part in parts])
    length = torch.cat([part[1] for part in parts])
    stream, length = stream.to(device), length.to(device)
    steps = torch.ceil(length.double() / settings.batch_size).long()
    steps_np = steps.cpu().numpy()
    max_steps = int(steps_np.max())

    lr = torch.tensor(hp["learning_rate"].to_numpy(), dtype=torch.float32, device=device)[:, None]
    l2reg = torch.tensor(hp["l2reg"].to_numpy(), dtype=torch.float32, device=device)
    drop = torch.tensor(hp["dropout"].to_numpy(), dtype=torch.float32, device=device)
    use_dropout = bool((drop > 0).any())
    act_names = hp["activation"].to_numpy()
    activation: str | torch.Tensor = (
        str(act_names[0]) if (act_names == act_names[0]).all() else torch.tensor(act_names == "tanh", device=device)
    )
    opt = hp["optimizer"].to_numpy()
    unknown = set(opt.tolist()) - {"sgd", "adam", "rmsprop"}
    if unknown:
        raise ValueError(f"unknown optimizer {sorted(unknown)}: choose from ['sgd', 'adam', 'rmsprop']")
    kinds = {k: torch.tensor(opt == k, device=device)[:, None] for k in ("sgd", "adam", "rmsprop") if (opt == k).any()}
    single = next(iter(kinds)) if len(kinds) == 1 else None
    mom = torch.zeros_like(flat) if "adam" in kinds else None
    vel = torch.zeros_like(flat) if ("adam" in kinds or "rmsprop" in kinds) else None
    gdev = [
        gb if device.type == "cpu"
        else torch.Generator(device=device).manual_seed(int(torch.randint(0, 2**62, (1,), generator=gb)))
        for gb in gens
    ]
    dropout_gen = gdev[0] if len(gdev) == 1 else list(zip(gdev, sizes))
    bs = settings.batch_size
    offs = torch.arange(bs, device=device)[None, :]
    rows = torch.arange(m, device=device)[:, None]

    for step in range(max_steps):
        n_active = int((steps_np > step).sum())
        all_active = n_active == m
        active = None if all_active else (steps > step)[:, None]
        t = step + 1
        idx = stream[rows, (step * bs + offs) % length[:, None]]  # (M, bs)
        xb, yb = x_train[idx], y_train[idx]
        params = unflatten(flat, entries)
        logits = batched_logits(params, xb, activation, dropout=drop if use_dropout else None, generator=dropout_gen)
        ce = F.cross_entropy(logits.transpose(1, 2), yb, reduction="none").mean(1)
        l2 = l2reg * (flat * flat * kernel_cols).sum(1)
        (grad,) = torch.autograd.grad((ce + l2).sum(), flat)
        with torch.no_grad():
            upd = {}
            if "adam" in kinds:
                sel = kinds["adam"] if active is None else kinds["adam"] & active
                new_m = ADAM_B1 * mom + (1 - ADAM_B1) * grad
                new_v = ADAM_B2 * vel + (1 - ADAM_B2) * grad * grad
                mom = new_m if single else torch.where(sel, new_m, mom)
                vel_a = new_v if single else torch.where(sel, new_v, vel)
                # all models of a chunk start together, so the active ones share t
                lr_t = lr * (math.sqrt(1 - ADAM_B2**t) / (1 - ADAM_B1**t))
                upd["adam"] = lr_t * mom / (vel_a.sqrt() + ADAM_EPS)
            if "rmsprop" in kinds:
                sel = kinds["rmsprop"] if active is None else kinds["rmsprop"] & active
                new_v = RMS_RHO * vel + (1 - RMS_RHO) * grad * grad
                vel_r = new_v if single else torch.where(sel, new_v, vel)
                upd["rmsprop"] = lr * grad / (vel_r.sqrt() + RMS_EPS)
            if "sgd" in kinds:
                upd["sgd"] = lr * grad
            if single:
                update = upd[single]
                if single == "adam":
                    vel = vel_a
                elif single == "rmsprop":
                    vel = vel_r
            else:
                update = torch.zeros_like(flat)
                for k, u in upd.items():
                    update = torch.where(kinds[k], u, update)
                if "adam" in kinds and "rmsprop" in kinds:
                    vel = torch.where(kinds["adam"], vel_a, vel_r)
                elif "adam" in kinds:
                    vel = vel_a
                elif "rmsprop" in kinds:
                    vel = vel_r
            if active is not None:
                update = update * active
            flat.sub_(update)
        if progress is not None:
            progress.update(n_active)
    return {k: v.detach() for k, v in unflatten(flat.detach(), entries).items()}, steps_np


def train_zoo(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    *,
    n_models: int,
    hparam_spec: Mapping[str, Any],
    settings: TrainSettings,
    seed: int,
) -> tuple[np.ndarray, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Draw ``n_models`` hyperparameter settings and train one zoo network for each; the
    model-steps done are logged (INFO) every 15 s with elapsed time and ETA.

    Args:
        x_train, y_train, x_test, y_test: preprocessed images ``(N, 1, H, W)`` and labels.
        n_models: size of the zoo.
        hparam_spec: see :func:`causalxai.zoo.hparams.sample_hparams`.
        settings: epochs, batch size, chunk size, device.
        seed: seeds the hyperparameters, initial weights, subsets, batches and dropout.

    Returns:
        ``(weights, hparams, metrics, layout)``: flat zoo-layout weights ``(n_models,
        n_params)`` float32, the hyperparameter table, a metrics table
        (``train_accuracy, test_accuracy, train_loss, test_loss, n_steps``) and the layout.
    """
    device = resolve_device(settings.device)
    hp = sample_hparams(n_models, hparam_spec, seed)
    layout = zoo_layout(int(x_train.shape[1]))
    xt = torch.tensor(np.asarray(x_train, dtype=np.float32), device=device)
    yt = torch.tensor(np.asarray(y_train, dtype=np.int64), device=device)
    xv = torch.tensor(np.asarray(x_test, dtype=np.float32), device=device)
    yv = torch.tensor(np.asarray(y_test, dtype=np.int64), device=device)
    chunk = resolve_chunk_size(settings.chunk_size, device, n_models)
    blocks = make_chunks(hp, RNG_BLOCK)
    n_train = xt.shape[0]
    total = int(
        np.ceil(
            settings.epochs * np.maximum(1, np.round(hp["train_fraction"].to_numpy() * n_train)) / settings.batch_size
        ).sum()
    )
    weights = np.zeros((n_models, parse_layout(layout)[-1].end), dtype=np.float32)
    metrics = pd.DataFrame(
        {k: np.zeros(n_models) for k in ("train_accuracy", "test_accuracy", "train_loss", "test_loss")}
    )
    metrics["n_steps"] = 0
    progress = Progress(total, f"training {n_models} models", "model-steps", log)

    def one_chunk(members: list[int]) -> list[tuple[np.ndarray, np.ndarray, tuple[np.ndarray, ...], np.ndarray]]:
        """Train one chunk of blocks; per block its rows, flat weights, metrics and step counts."""
        gens = [_block_generator(seed, b) for b in members]
        subs = [hp.iloc[blocks[b]].reset_index(drop=True) for b in members]
        flat0 = torch.cat([init_flat(sub, layout, gb) for sub, gb in zip(subs, gens)])
        sel = np.concatenate([blocks[b] for b in members])
        params, steps = train_chunk(hp.iloc[sel].reset_index(drop=True), flat0, xt, yt, settings, layout, gens,
                                    progress, blocks=[blocks[b].size for b in members])
        done, lo = [], 0
        for b, sub in zip(members, subs):  # evaluated block by block: the same batches as a block alone
            rows = blocks[b]
            part = {k: v[lo : lo + rows.size] for k, v in params.items()}
            is_tanh = torch.tensor((sub["activation"] == "tanh").to_numpy(), device=device)
            scores = (*evaluate(part, xt, yt, is_tanh, settings.eval_batch_size),
                      *evaluate(part, xv, yv, is_tanh, settings.eval_batch_size))
            done.append((rows, flatten({k: v.cpu() for k, v in part.items()}, layout).numpy(), scores,
                         steps[lo : lo + rows.size]))
            lo += rows.size
        return done

    # chunks at once on the CPU, one intra-op thread each (runtime.chunk_map): the zoo does not
    # depend on the job's thread count either
    for done in chunk_map(one_chunk, chunk_blocks(hp, blocks, chunk), device):
        for rows, flat, (tr_acc, tr_loss, te_acc, te_loss), steps in done:
            weights[rows] = flat
            metrics.loc[rows, "train_accuracy"] = tr_acc
            metrics.loc[rows, "test_accuracy"] = te_acc
            metrics.loc[rows, "train_loss"] = tr_loss
            metrics.loc[rows, "test_loss"] = te_loss
            metrics.loc[rows, "n_steps"] = steps
    return weights, hp, metrics, layout


def build_trained_zoo(dataset: xr.Dataset, cfg: Mapping[str, Any]) -> xr.Dataset:
    """Train a zoo on a ``dataset.nc`` and return it as a ``zoo.nc`` dataset.

    Args:
        dataset: preprocessed images with ``split`` and ``label`` (see
            :func:`causalxai.data.dataset.load_dataset`).
        cfg: ``n_models``, ``seed``, ``device``, ``epochs``, ``batch_size``,
            ``chunk_size`` and ``hparams`` (the config's ``zoo.train`` plus the rest).
    """
    from causalxai.data.dataset import grayscale
    from causalxai.zoo.dataset import make_zoo_dataset

    split = dataset["split"].values
    img = grayscale(dataset)[:, None]  # several channels: their mean, the Small CNN Zoo's convention
    lab = dataset["label"].values.astype(np.int64)
    tr, te = split == "train", split == "test"
    settings = TrainSettings.from_params(cfg)
    weights, hp, metrics, layout = train_zoo(
        img[tr], lab[tr], img[te], lab[te],
        n_models=int(cfg["n_models"]),
        hparam_spec=cfg.get("hparams", {}),
        settings=settings,
        seed=int(cfg["seed"]),
    )
    device = resolve_device(settings.device)
    zoo = make_zoo_dataset(
        weights, hp, metrics, layout,
        dataset=str(dataset.attrs.get("dataset", "")),
        source="train",
        input_size=int(img.shape[-1]),
        attrs={
            "epochs": settings.epochs,
            "batch_size": settings.batch_size,
            "chunk_size": resolve_chunk_size(settings.chunk_size, device, int(cfg["n_models"])),
            "device": str(device),
            "n_train": int(tr.sum()),
            "n_test": int(te.sum()),
        },
    )
    zoo["n_steps"] = ("model", metrics["n_steps"].to_numpy(dtype=np.int64))
    zoo["n_steps"].attrs["description"] = "optimizer steps the model took: ceil(epochs * subset size / batch size)"
    return zoo
