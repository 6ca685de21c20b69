"""Compressed models from a causal mechanism (paper 004 §4.3, App. E, Tables 1-2).

A mechanism partitions the observed layers into causal nodes
(:mod:`causalxai.tracer.mechanisms`, composition ``"relu1+relu2|relu3|…"``). The paper builds
compressed models "by replacing redundant layers in a layer group with a single
representative layer where inputs and output sizes are adjusted to work with the rest of
the network" (App. E) and retrains them. It gives no construction rule; this module's:

**Segments.** The model's leaf modules, in forward order, are cut after each observed
layer: an observed layer's *segment* is the modules after the previous observed layer up
to and including it (the first segment starts at the input). A causal node is the union of
its layers' consecutive segments. For :func:`~causalxai.tracer.model.alexnet28` observed
at relu1…relu7, fc3 the segments are ``conv1 relu1 | conv2 relu2 | pool1 conv3 relu3 |
conv4 relu4 | conv5 relu5 | pool2 flatten drop1 fc1 relu6 | drop2 fc2 relu7 | fc3``: the
pooling, flattening and dropout *after* relu5 belong to relu6's segment. Modules after the
last observed layer (none by default, fc3 being observed) are kept unchanged at the end.

**A node of one observed layer** keeps its segment's modules unchanged (deep copies;
re-initialised with each module's ``reset_parameters`` unless ``reinit=False``).

**A node of several observed layers** becomes one parametric layer mapping the node's input
shape (the previous node's output, or the model input) to its output shape (its last
observed layer's output), both read from one forward pass of a zero input with hooks:

* image → image (``C×H×W`` → ``C'×H'×W'``): one ``Conv2d(C → C')`` whose geometry is chosen
  per spatial axis by :func:`conv_rule`: same size → kernel 3, stride 1, padding 1;
  smaller → stride ``s = ⌊n_in / n_out⌋``, kernel ``k = n_in − s·(n_out − 1)``, padding 0,
  which gives exactly ``n_out`` (``⌊(n_in − k)/s⌋ + 1 = n_out``) with ``s ≤ k``, so every
  input pixel is seen; larger (never in a classifier) → kernel 3, padding 1, then
  ``nn.Upsample(size, nearest)``.
* anything else (→ vector, or a non-image shape): ``Flatten`` (if the input is not a
  vector) + one ``Linear(prod(in) → prod(out))`` (+ ``Unflatten`` if the output is not a
  vector).
* If the node's **last observed layer is an activation** (a module from
  ``torch.nn.modules.activation``: ReLU, Tanh, Softmax, …) a copy of it follows the new
  layer; a node ending at the logits (a Linear) gets none.
* If the node contains a **Dropout** (any ``nn.Dropout*``), a copy of its first one is put
  right before the new layer (for AlexNet's classifier: the Dropout(0.5) in front of fc1
  stays in front of the replacing Linear, as regularisation in the retraining).

Example (AlexNet, mechanism ``relu1+relu2+relu3+relu4|relu5|relu6+relu7+fc3``): node 1
``1×28×28 → 64×13×13`` becomes ``Conv2d(1→64, k=4, s=2)`` + ReLU (1,088 parameters); node 2
keeps ``conv5, relu5`` (18,464); node 3 ``32×13×13 → 10`` (relu5's output: pool2 belongs to
node 3 and is replaced too) becomes ``Flatten, Dropout(0.5), Linear(5408→10)`` (54,090):
73,642 parameters in all, 99.37 % fewer than the original 11,696,202 (the paper's C1:
66,218, 99.4 %; its Table 2 lists a different layer choice it does not explain).

Only models whose forward runs their leaf modules one after another (an ``nn.Sequential``,
nested or not) can be cut this way, and the observed layers must be leaf modules; anything
else raises ``ValueError`` naming the problem. The compressed model is a flat
``nn.Sequential`` with readable names (``node1_conv``, ``node1_relu``, ``node2_conv5``, …).
"""

from __future__ import annotations

import copy
import os
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch
import xarray as xr
from torch import nn

from causalxai.io import atomic_path
from causalxai.runtime import eval_mode
from causalxai.tracer.mechanisms import GROUP_SEP, LAYER_SEP, parse_composition
from causalxai.tracer.model import leaf_modules, trace_forward

__all__ = [
    "compress_skip_reason",
    "skipped_compression",
    "NodePlan",
    "conv_rule",
    "plan_nodes",
    "compress_model",
    "compression_plan",
    "singleton_composition",
    "save_compressed_models",
    "load_compressed_models",
]


@dataclass
class NodePlan:
    """One causal node: its observed layers, original modules, shapes and replacement."""

    index: int  # 1-based; 0 for the tail after the last observed layer
    layers: list[str]
    original: list[tuple[str, nn.Module]]
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    replacement: list[tuple[str, nn.Module]] = field(default_factory=list)
    kept: bool = True

    @property
    def params_before(self) -> int:
        return int(sum(p.numel() for _, m in self.original for p in m.parameters()))

    @property
    def params_after(self) -> int:
        return int(sum(p.numel() for _, m in self.replacement for p in m.parameters()))


def conv_rule(n_in: int, n_out: int) -> tuple[int, int, int, bool]:
    """``(kernel, stride, padding, upsample)`` of the Conv2d that maps ``n_in`` to ``n_out``
    pixels along one axis (see the module docstring); ``upsample`` means an ``nn.Upsample``
    to ``n_out`` must follow (only when ``n_out > n_in``)."""
    n_in, n_out = int(n_in), int(n_out)
    if n_in < 1 or n_out < 1:
        raise ValueError(f"conv_rule: sizes must be positive, got {n_in} → {n_out}")
    if n_out == n_in:
        return 3, 1, 1, False
    if n_out > n_in:
        return 3, 1, 1, True
    s = n_in // n_out
    return n_in - s * (n_out - 1), s, 0, False


def singleton_composition(layers: Sequence[str]) -> str:
    """Every observed layer its own node: the composition that rebuilds the original model."""
    return GROUP_SEP.join(str(n) for n in layers)


# ---------------------------------------------------------------------------------------
# planning


def _shapes(model: nn.Module, leaves: list[tuple[str, nn.Module]], input_shape: Sequence[int]):
    """Input and output shape (no batch axis) of every leaf and the model's output shape, from
    one eval-mode forward of a zero input; checks the leaves run one after another."""
    order: list[str] = []
    ins: dict[str, tuple[int, ...]] = {}
    outs: dict[str, tuple[int, ...]] = {}

    def hook(name):
        def fn(mod, args, out):
            order.append(name)
            if args and isinstance(args[0], torch.Tensor):
                ins.setdefault(name, tuple(args[0].shape[1:]))
            if isinstance(out, torch.Tensor):
                outs.setdefault(name, tuple(out.shape[1:]))
        return fn

    p = next(model.parameters(), None)
    x = torch.zeros((1, *map(int, input_shape)), device=p.device if p is not None else "cpu",
                    dtype=p.dtype if p is not None and p.is_floating_point() else torch.float32)
    handles = [m.register_forward_hook(hook(n)) for n, m in leaves]
    try:
        with eval_mode(model), torch.no_grad():
            y = model(x)
    finally:
        for h in handles:
            h.remove()
    names = [n for n, _ in leaves]
    problem = None
    if order != names:
        missing = [n for n in names if n not in order]
        problem = (f"leaf modules {missing} never ran" if missing else
                   f"the leaf modules ran as {order}, not once each in their registration order")
    else:
        prev = tuple(int(v) for v in input_shape)
        for n in names:
            if n not in ins or n not in outs:
                problem = f"module {n!r} does not take and return a single tensor"
                break
            if ins[n] != prev:
                problem = f"module {n!r} receives shape {ins[n]}, not its predecessor's output {prev}"
                break
            prev = outs[n]
        if problem is None and (not isinstance(y, torch.Tensor) or tuple(y.shape[1:]) != prev):
            problem = "the model's output is not its last leaf module's output"
    if problem:
        raise ValueError(f"compress_model needs a model whose forward runs its leaf modules one after another "
                         f"(an nn.Sequential, nested or not): {problem}")
    return ins, outs, tuple(y.shape[1:])


def _groups(composition: str | Sequence[Sequence[str]]) -> list[list[str]]:
    groups = (parse_composition(composition) if isinstance(composition, str)
              else [[str(n) for n in g] for g in composition])
    if not groups or any(not g or any(not n for n in g) for g in groups):
        raise ValueError(f"compress_model: empty causal node in composition {composition!r}")
    return groups


def _is_activation(m: nn.Module) -> bool:
    return type(m).__module__ == "torch.nn.modules.activation"


def _is_dropout(m: nn.Module) -> bool:
    return isinstance(m, nn.modules.dropout._DropoutNd)


def _fresh(m: nn.Module, reinit: bool) -> nn.Module:
    c = copy.deepcopy(m)
    if reinit:
        for sub in c.modules():
            if hasattr(sub, "reset_parameters") and callable(sub.reset_parameters):
                sub.reset_parameters()
    return c


def _replace(node: NodePlan) -> list[tuple[str, nn.Module]]:
    """The single-layer replacement of a multi-layer node (see the module docstring)."""
    tag = f"node{node.index}"
    mods = dict(node.original)
    last = mods[node.layers[-1]]
    drop = next((m for _, m in node.original if _is_dropout(m)), None)
    act = copy.deepcopy(last) if _is_activation(last) else None
    out: list[tuple[str, nn.Module]] = []
    i, o = node.in_shape, node.out_shape
    if len(i) == 3 and len(o) == 3:
        if drop is not None:
            out.append((f"{tag}_drop", copy.deepcopy(drop)))
        (kh, sh, ph, uh), (kw, sw, pw, uw) = conv_rule(i[1], o[1]), conv_rule(i[2], o[2])
        out.append((f"{tag}_conv", nn.Conv2d(i[0], o[0], kernel_size=(kh, kw), stride=(sh, sw), padding=(ph, pw))))
        if uh or uw:
            out.append((f"{tag}_upsample", nn.Upsample(size=(o[1], o[2]), mode="nearest")))
    else:
        if len(i) != 1:
            out.append((f"{tag}_flatten", nn.Flatten()))
        if drop is not None:
            out.append((f"{tag}_drop", copy.deepcopy(drop)))
        out.append((f"{tag}_linear", nn.Linear(int(np.prod(i)), int(np.prod(o)))))
        if len(o) != 1:
            out.append((f"{tag}_unflatten", nn.Unflatten(1, tuple(o))))
    if act is not None:
        out.append((f"{tag}_{type(act).__name__.lower()}", act))
    return out


def plan_nodes(
    model: nn.Module,
    composition: str | Sequence[Sequence[str]],
    input_shape: Sequence[int],
    *,
    reinit: bool = True,
) -> list[NodePlan]:
    """The causal nodes of ``composition`` on ``model`` with their replacements (new modules).

    The list holds one :class:`NodePlan` per node (``index`` 1, 2, …) and, when modules
    follow the last observed layer, a final tail plan (``index`` 0) that keeps them.
    """
    groups = _groups(composition)
    leaves = leaf_modules(model)
    if not leaves:
        raise ValueError("compress_model: the model has no leaf modules")
    names = [n for n, _ in leaves]
    pos = {n: k for k, n in enumerate(names)}
    flat = [n for g in groups for n in g]
    unknown = [n for n in flat if n not in pos]
    if unknown:
        raise ValueError(f"compress_model: layers {unknown} of composition {composition!r} are not leaf modules of "
                         f"the model (it has {names})")
    idx = [pos[n] for n in flat]
    if any(b <= a for a, b in zip(idx, idx[1:])):
        raise ValueError(f"compress_model: the layers of composition {composition!r} are not in forward order "
                         "(or repeat)")
    ins, outs, _ = _shapes(model, leaves, input_shape)
    plans: list[NodePlan] = []
    start = 0
    for k, g in enumerate(groups, start=1):
        end = pos[g[-1]] + 1
        original = leaves[start:end]
        node = NodePlan(index=k, layers=list(g), original=original, in_shape=ins[original[0][0]],
                        out_shape=outs[original[-1][0]], kept=len(g) == 1)
        if node.kept:
            node.replacement = [(f"node{k}_{n.replace('.', '_')}", _fresh(m, reinit)) for n, m in original]
        else:
            node.replacement = _replace(node)
        plans.append(node)
        start = end
    if start < len(leaves):
        tail = leaves[start:]
        plans.append(NodePlan(index=0, layers=[], original=tail, in_shape=ins[tail[0][0]], out_shape=outs[tail[-1][0]],
                              replacement=[(f"tail_{n.replace('.', '_')}", _fresh(m, reinit)) for n, m in tail]))
    for node in plans:
        for _, m in node.replacement:
            m.cpu()
    # every node's replacement must map its input shape to its output shape
    x = torch.zeros((1, *map(int, input_shape)))
    with torch.no_grad():
        for node in plans:
            for _, m in node.replacement:
                with eval_mode(m):
                    x = m(x)
            if tuple(x.shape[1:]) != tuple(node.out_shape):
                raise ValueError(f"compress_model: node {node.index} ({'+'.join(node.layers)}) gives shape "
                                 f"{tuple(x.shape[1:])}, expected {node.out_shape}")
    return plans


def compress_skip_reason(model: nn.Module, layers: Sequence[str], input_shape: Sequence[int]) -> str:
    """Why :func:`plan_nodes` cannot rebuild ``model`` from causal nodes of ``layers``, or ``""``.

    The rebuild runs the leaf modules one after another in registration order, so it is
    faithful only when that chain *is* the model: its output on a seeded random input
    ``(2, *input_shape)`` (eval mode) must equal the model's (``torch.allclose``, rtol 1e-4,
    atol 1e-5). A residual block (``x + f(x)``: the sum is no module), a module used twice, a
    functional call in ``forward`` or modules registered out of forward order fail it; so do
    observed layers that are not leaf modules (a residual block's output). The compress step
    records the reason instead of building a model that is not the target.

    Args:
        model: the target classifier.
        layers: the observed layers (each its own causal node here).
        input_shape: one input's shape.
    """
    from causalxai.tracer.target_model import ScriptedLayer

    leaves = leaf_modules(model)
    if any(isinstance(m, ScriptedLayer) for _, m in leaves):
        return ("a TorchScript target: its layers are scripted modules, which the compress step cannot copy, "
                "re-initialise or rebuild")
    x = torch.randn((2, *map(int, input_shape)), generator=torch.Generator().manual_seed(0))
    trace = trace_forward(model, x)
    registered = [n for n, _ in leaves]
    order = "" if registered == trace.leaves else (f"; it registers its leaf modules as {registered} but its forward "
                                                   f"runs them as {trace.leaves}")
    z: Any = x
    try:
        with eval_mode(model), torch.no_grad():
            for _, m in leaves:
                z = m(z)
        same = isinstance(z, torch.Tensor) and isinstance(trace.output, torch.Tensor) and \
            z.shape == trace.output.shape and bool(torch.allclose(z, trace.output, rtol=1e-4, atol=1e-5))
    except Exception:  # noqa: BLE001 - a chain that cannot even run is not the model
        same = False
    if not same:
        return (f"{type(model).__name__}'s forward is not its leaf modules run one after another (a residual sum "
                f"x + f(x), a module used twice or a function in forward){order}, so its causal nodes cannot be "
                "rebuilt as a chain of layers")
    try:
        plan_nodes(model, singleton_composition(list(layers)), input_shape, reinit=False)
    except ValueError as exc:
        return str(exc)
    return ""


def skipped_compression(reason: str, input_shape: Sequence[int]) -> xr.Dataset:
    """``compress.nc`` of a target the compress step cannot rebuild (:func:`compress_skip_reason`):
    no models, the reason in attribute ``skipped``.

    Args:
        reason: why (non-empty).
        input_shape: one input's shape.
    """
    if not reason:
        raise ValueError("skipped_compression: give the reason the compression is skipped")
    return xr.Dataset(attrs={
        "skipped": str(reason),
        "input_shape": [int(v) for v in input_shape],
        "description": "compressed models (paper 004 §4.3): skipped, the target cannot be rebuilt from its causal "
                       "nodes (attribute skipped)",
    })


def compress_model(
    model: nn.Module,
    composition: str | Sequence[Sequence[str]],
    input_shape: Sequence[int],
    *,
    reinit: bool = True,
) -> nn.Sequential:
    """The compressed model of ``composition`` (a string ``"a+b|c"`` or a list of layer-name
    lists): one layer per multi-layer causal node, single-layer nodes kept (module docstring).

    ``input_shape`` is one sample's shape without the batch axis. The model is left
    untouched; the result is a new flat ``nn.Sequential`` on the CPU in training mode, its
    kept modules re-initialised unless ``reinit=False``, new layers with PyTorch's default
    initialisation from the global RNG (seed it for reproducible weights).
    """
    plans = plan_nodes(model, composition, input_shape, reinit=reinit)
    return nn.Sequential(OrderedDict((n, m) for node in plans for n, m in node.replacement)).cpu().train()


def _shape_str(shape: Sequence[int]) -> str:
    return "x".join(str(int(v)) for v in shape)


def _describe(m: nn.Module) -> str:
    if isinstance(m, nn.Conv2d):
        k, s, p = (f"{a}×{b}" for a, b in (m.kernel_size, m.stride, m.padding))
        return f"Conv2d({m.in_channels}→{m.out_channels}, k={k}, s={s}, p={p})"
    if isinstance(m, nn.Linear):
        return f"Linear({m.in_features}→{m.out_features})"
    if _is_dropout(m):
        return f"{type(m).__name__}({m.p:g})"
    return type(m).__name__


def compression_plan(
    model: nn.Module,
    composition: str | Sequence[Sequence[str]],
    input_shape: Sequence[int],
) -> pd.DataFrame:
    """One row per causal node (and a ``tail`` row if modules follow the last observed layer):
    ``node, layers, n_layers, kept, original_modules, replacement, in_shape, out_shape,
    params_before, params_after``. Shapes are ``"32x13x13"`` strings; ``replacement``
    describes the new modules (``"Conv2d(1→64, k=4×4, s=2×2, p=0×0) + ReLU"``), ``"kept"``
    for a single-layer node. ``df.attrs`` has ``params_before`` (the whole model's),
    ``params_after`` and ``compression`` (share of parameters removed)."""
    plans = plan_nodes(model, composition, input_shape, reinit=False)
    rows = []
    for node in plans:
        rows.append({
            "node": node.index if node.index else "tail",
            "layers": LAYER_SEP.join(node.layers),
            "n_layers": len(node.layers),
            "kept": bool(node.kept),
            "original_modules": ", ".join(n for n, _ in node.original),
            "replacement": "kept" if node.kept else " + ".join(_describe(m) for _, m in node.replacement),
            "in_shape": _shape_str(node.in_shape),
            "out_shape": _shape_str(node.out_shape),
            "params_before": node.params_before,
            "params_after": node.params_after,
        })
    df = pd.DataFrame(rows)
    before = int(sum(p.numel() for p in model.parameters()))
    after = int(df["params_after"].sum())
    df.attrs.update(params_before=before, params_after=after,
                    compression=1.0 - after / before if before else float("nan"))
    return df


# ---------------------------------------------------------------------------------------
# saving and loading


def save_compressed_models(
    path: str | os.PathLike[str],
    models: dict[str, nn.Module],
    compositions: dict[str, str],
    *,
    architecture: str,
    kwargs: dict[str, Any],
    input_shape: Sequence[int],
) -> None:
    """Write every compressed model to one file (atomically): the original architecture's
    name and keyword arguments, the input shape, and per model its composition and
    ``state_dict``. The architecture is rebuilt from these by :func:`load_compressed_models`
    (the file holds tensors, strings and numbers only: ``torch.load(weights_only=True)``)."""
    missing = [n for n in models if n not in compositions]
    if missing:
        raise ValueError(f"save_compressed_models: no composition for {missing}")
    payload = {
        "architecture": str(architecture),
        "kwargs": dict(kwargs),
        "input_shape": [int(v) for v in input_shape],
        "models": {
            str(n): {"composition": str(compositions[n]),
                     "state_dict": {k: v.detach().cpu() for k, v in m.state_dict().items()}}
            for n, m in models.items()
        },
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_compressed_models(path: str | os.PathLike[str]) -> dict[str, nn.Sequential]:
    """The models written by :func:`save_compressed_models`, in eval mode on the CPU."""
    from causalxai.tracer.target_model import build_classifier, load_checkpoint

    path = Path(path)
    ckpt = load_checkpoint(path, ("architecture", "kwargs", "input_shape", "models"), "compressed-models file",
                           "compress")
    base = build_classifier(str(ckpt["architecture"]), **dict(ckpt["kwargs"]))
    out = {}
    for name, entry in ckpt["models"].items():
        m = compress_model(base, entry["composition"], ckpt["input_shape"], reinit=False)
        m.load_state_dict(entry["state_dict"])
        out[name] = m.eval()
    return out
