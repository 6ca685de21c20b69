"""Torch plumbing every stage shares: the device a step runs on, evaluation mode, batched prediction.

These live on the package's lowest floor so that no stage imports another one for them (TRACER,
the GAN and compression never import the zoo). Nothing here is science.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator

import torch
from torch import nn

__all__ = ["eval_mode", "model_device", "predict", "resolve_device"]


def resolve_device(device: str | torch.device) -> torch.device:
    """The config's ``device``: ``auto`` is CUDA when present, else CPU; anything else as given.

    Args:
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"``, … or a :class:`torch.device`.

    Returns:
        The device. Asking for CUDA where none is present raises :class:`ValueError` naming the
        config key.
    """
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device: {str(device)!r} was asked for but no CUDA device is present; use 'auto' or 'cpu'")
    return dev


def model_device(model: nn.Module, device: torch.device | str | None = None) -> torch.device:
    """``device`` when given, else the device of the model's first parameter (CPU for none)."""
    if device is not None:
        return torch.device(device)
    prm = next(model.parameters(), None)
    return prm.device if prm is not None else torch.device("cpu")


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Run a block with ``model`` in evaluation mode and restore its training flag afterwards
    (also on error), so callers never leave a model they were given in a changed state."""
    was = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was)


@torch.no_grad()
def predict(
    model: nn.Module,
    x: torch.Tensor,
    *,
    batch_size: int = 512,
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    device: torch.device | str | None = None,
    output: str = "logits",
) -> torch.Tensor:
    """The model's outputs on ``x`` in batches, in evaluation mode, on the CPU.

    Args:
        model: a classifier returning logits.
        x: inputs ``(N, …)`` on any device.
        batch_size: inputs per forward pass.
        transform: applied to each batch before the model (e.g. the normalisation of raw inputs).
        device: where to run; default the model's device.
        output: ``"logits"``, ``"prob"`` (softmax) or ``"label"`` (argmax).

    Returns:
        ``(N, classes)`` float logits or probabilities, or ``(N,)`` int64 labels.
    """
    if output not in ("logits", "prob", "label"):
        raise ValueError(f"predict: output must be 'logits', 'prob' or 'label', got {output!r}")
    if batch_size < 1:
        raise ValueError(f"predict: batch_size must be >= 1, got {batch_size}")
    dev = model_device(model, device)
    out = []
    with eval_mode(model):
        for i in range(0, len(x), batch_size):
            xb = x[i : i + batch_size].to(dev)
            if transform is not None:
                xb = transform(xb)
            logits = model(xb)
            if output == "label":
                out.append(logits.argmax(dim=1).cpu())
            elif output == "prob":
                out.append(torch.softmax(logits, dim=1).cpu())
            else:
                out.append(logits.cpu())
    if out:
        return torch.cat(out)
    return torch.empty(0, dtype=torch.long) if output == "label" else torch.empty(0, 0)
