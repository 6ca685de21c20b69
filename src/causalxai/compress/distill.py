"""Theorem 1 without retraining (issue 16): each causal node of several layers replaced by one
layer fitted to the node's own input → output mapping, swapped into the *original* network.

Paper 004 §4.3 (Theorem 1) argues that the layers of a causal node compute one mapping a single
layer can stand in for. Retraining the whole compressed model from scratch (the compress
step's C1, C2, …) does not test that: any small network may learn the task. Here nothing but
the replacement is fitted. For a compressed model's composition:

1. each node of several observed layers gets the builder's replacement
   (:func:`~causalxai.compress.build.plan_nodes`: the same Conv2d or Linear, and activation,
   the compressed model uses), its initial weights drawn after ``torch.manual_seed(seed)``;
2. the replacement is fitted by distillation: mean squared error between its output and the
   node's output in the original network (the last observed layer of the node), given the
   node's input in the original network (the previous node's output), on the training
   images; Adam (``lr``), ``epochs`` passes in a seeded random order of ``batch_size``
   images; the replacement is run in eval mode (its Dropout off: a fixed mapping is fitted);
3. the original network with that replacement swapped in (every other module the
   original's trained weights) is evaluated on the test split, per node alone and with all
   the composition's replacements together; ``r2`` = 1 − MSE / Var(node output) on the test
   images says how much of the node's output the single layer reproduces.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from causalxai.compress.build import plan_nodes
from causalxai.runtime import adam, resolve_device
from causalxai.tracer.model import evaluate_classifier, leaf_modules

__all__ = ["distill_nodes", "swapped_model"]


def swapped_model(original: nn.Module, replacements: dict[int, nn.Module], plans: Sequence[Any]) -> nn.Sequential:
    """The original's leaf modules in forward order (shared, not copied) as one
    ``nn.Sequential``, with the modules of each node ``k`` in ``replacements`` (keyed by
    :class:`~causalxai.compress.build.NodePlan` ``index``) replaced by ``replacements[k]``."""
    mods: list[nn.Module] = []
    covered = 0
    for node in plans:
        if node.index in replacements:
            mods.append(replacements[node.index])
        else:
            mods.extend(m for _, m in node.original)
        covered += len(node.original)
    if covered != len(leaf_modules(original)):
        raise ValueError("swapped_model: the plans do not cover the model's leaf modules")
    return nn.Sequential(*mods)


def _fit(prefix: nn.Module, segment: nn.Module, rep: nn.Module, x: torch.Tensor, *, epochs: int, batch_size: int,
         lr: float, seed: int, dev: torch.device) -> None:
    opt = adam(rep.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(int(seed))
    rep.eval()
    for _ in range(int(epochs)):
        order = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), batch_size):
            xb = x[order[i: i + batch_size]].to(dev)
            with torch.no_grad():
                h = prefix(xb)
                target = segment(h)
            loss = F.mse_loss(rep(h), target)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()


def _node_error(prefix: nn.Module, segment: nn.Module, rep: nn.Module, x: torch.Tensor, dev: torch.device,
                batch_size: int = 512) -> tuple[float, float]:
    sq, tot, s1, s2 = 0.0, 0, 0.0, 0.0
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            h = prefix(x[i: i + batch_size].to(dev))
            t = segment(h).double()
            sq += float(((rep(h).double() - t) ** 2).sum())
            s1 += float(t.sum())
            s2 += float((t**2).sum())
            tot += t.numel()
    mse = sq / tot
    var = s2 / tot - (s1 / tot) ** 2
    return mse, 1.0 - mse / var if var > 0 else float("nan")


def distill_nodes(
    original: nn.Module,
    composition: str,
    x_train: torch.Tensor,
    x_test: torch.Tensor,
    y_test: torch.Tensor,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    device: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Distil every multi-layer node of ``composition`` into its single replacement layer and
    swap it into the original network (module docstring).

    Args:
        original: the trained target model (left untouched: a copy is used).
        composition: the compressed model's composition (``"relu1+relu2|relu3|…"``).
        x_train: training images (the distillation's inputs).
        x_test, y_test: the test split.
        epochs, batch_size, lr: the distillation (Adam).
        seed: the replacements' initial weights and the batches' order.
        device: where to fit and evaluate.

    Returns:
        ``{"node": [k, …], "mse": [...], "r2": [...], "accuracy": [...]`` (one entry per
        multi-layer node: its 1-based index, test MSE and R² of the node's output, test
        accuracy of the original with this replacement alone), ``"accuracy_all"`` (all
        replacements together; the original's accuracy when no node has several layers),
        ``"original_accuracy"``, ``"replacements"`` (the fitted modules by node index, CPU)}.
    """
    dev = resolve_device(device) if isinstance(device, str) else torch.device(device)
    model = copy.deepcopy(original).cpu().eval()
    x_train = torch.as_tensor(x_train, dtype=torch.float32)
    x_test = torch.as_tensor(x_test, dtype=torch.float32)
    y_test = torch.as_tensor(y_test, dtype=torch.int64)
    input_shape = tuple(int(v) for v in x_train.shape[1:])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        plans = plan_nodes(model, composition, input_shape, reinit=False)
    model.to(dev)
    out: dict[str, Any] = {"node": [], "mse": [], "r2": [], "accuracy": []}
    fitted: dict[int, nn.Module] = {}
    before: list[nn.Module] = []
    for node in plans:
        if node.index and not node.kept:
            prefix = nn.Sequential(*before).eval()
            segment = nn.Sequential(*(m for _, m in node.original)).eval()
            rep = nn.Sequential(*(m for _, m in node.replacement)).to(dev)
            _fit(prefix, segment, rep, x_train, epochs=epochs, batch_size=batch_size, lr=lr,
                 seed=int(seed) + node.index, dev=dev)
            rep.eval()
            mse, r2 = _node_error(prefix, segment, rep, x_test, dev)
            alone = swapped_model(model, {node.index: rep}, plans)
            out["node"].append(int(node.index))
            out["mse"].append(mse)
            out["r2"].append(r2)
            out["accuracy"].append(evaluate_classifier(alone, x_test, y_test, device=dev)[1])
            fitted[node.index] = rep
        before.extend(m for _, m in node.original)
    out["accuracy_all"] = evaluate_classifier(swapped_model(model, fitted, plans), x_test, y_test, device=dev)[1]
    out["original_accuracy"] = evaluate_classifier(model, x_test, y_test, device=dev)[1]
    out["replacements"] = {k: m.cpu() for k, m in fitted.items()}
    out["mse"] = np.asarray(out["mse"], dtype=float)
    out["r2"] = np.asarray(out["r2"], dtype=float)
    out["accuracy"] = np.asarray(out["accuracy"], dtype=float)
    return out
