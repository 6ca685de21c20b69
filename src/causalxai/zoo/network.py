"""The Small CNN Zoo network and its flat weight layout (Unterthiner et al. 2020).

Network: 3 × Conv2D(16 filters, 3×3, stride 2, *valid* padding, activation) → global
average pooling → Dense(10). With one input channel it has 160 + 2320 + 2320 + 170 =
4970 parameters. The zoo stores each model as one flat float32 row; ``layout.csv``
(``varname,start_idx,end_idx,shape``) says where each tensor lies: per layer the bias,
then the kernel, kernels in TensorFlow order (conv HWIO, dense ``(in, out)``). Every zoo
in this project, downloaded or trained here, is stored in exactly that layout.

Two ways to run the network:

* :class:`ZooCNN`, an ordinary ``torch.nn.Module`` for one model (``from_flat`` rebuilds
  it from one row), the reference;
* :func:`batched_logits`, many models in one pass: the models' channels are stacked and
  each convolution is one grouped convolution (``groups = n_models``), the dense layer one
  batched matrix product. No Python loop over models. :func:`batched_forward` closes it
  over a chunk's parameters: the forward the attribution methods
  (:mod:`causalxai.attribution`) explain many models at once with.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "Tensor",
    "LayoutEntry",
    "zoo_layout",
    "parse_layout",
    "layout_to_json",
    "layout_from_json",
    "n_params",
    "unflatten",
    "flatten",
    "ZooCNN",
    "batched_logits",
    "batched_forward",
    "OUTPUTS",
    "ARCHITECTURE",
]

Tensor = torch.Tensor

N_FILTERS = 16
KERNEL = 3
STRIDE = 2
N_CLASSES = 10
OUTPUTS = ("prob", "logit")
CONV_VARS = ("conv2d", "conv2d_1", "conv2d_2")
DENSE_VAR = "dense"
TORCH_NAMES = {"conv2d": "conv1", "conv2d_1": "conv2", "conv2d_2": "conv3", "dense": "dense"}

ARCHITECTURE = {
    "name": "small_cnn_zoo",
    "layers": "3 x Conv2D(16, 3x3, stride 2, valid, activation) -> global average pool -> Dense(10)",
    "filters": N_FILTERS,
    "kernel_size": KERNEL,
    "stride": STRIDE,
    "padding": "valid",
    "pooling": "global_average",
    "n_classes": N_CLASSES,
    "dropout": "after each convolution's activation (training only)",
    "flat_layout": "per layer bias then kernel; conv kernels HWIO, dense kernel (in, out)",
}


@dataclass(frozen=True)
class LayoutEntry:
    """One tensor of the flat layout: ``weights[:, start:end].reshape(shape)``."""

    varname: str
    start: int
    end: int
    shape: tuple[int, ...]

    @property
    def layer(self) -> str:
        """The layer's name, e.g. ``conv2d_1`` for ``sequential/conv2d_1/kernel:0``."""
        parts = self.varname.split("/")
        return parts[-2] if len(parts) >= 2 else parts[0]

    @property
    def kind(self) -> str:
        """``kernel`` or ``bias``."""
        return self.varname.split("/")[-1].split(":")[0]


def zoo_layout(in_channels: int = 1) -> pd.DataFrame:
    """The zoo's ``layout.csv`` for ``in_channels`` input channels, as a DataFrame."""
    shapes: list[tuple[str, tuple[int, ...]]] = []
    c_in = in_channels
    for var in CONV_VARS:
        shapes.append((f"sequential/{var}/bias:0", (N_FILTERS,)))
        shapes.append((f"sequential/{var}/kernel:0", (KERNEL, KERNEL, c_in, N_FILTERS)))
        c_in = N_FILTERS
    shapes.append((f"sequential/{DENSE_VAR}/bias:0", (N_CLASSES,)))
    shapes.append((f"sequential/{DENSE_VAR}/kernel:0", (N_FILTERS, N_CLASSES)))
    rows, start = [], 0
    for name, shape in shapes:
        end = start + int(np.prod(shape))
        rows.append({"varname": name, "start_idx": start, "end_idx": end, "shape": str(shape)})
        start = end
    return pd.DataFrame(rows)


def _parse_shape(text: str) -> tuple[int, ...]:
    text = str(text).strip()
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        value = [int(t) for t in re.findall(r"\d+", text)]
    if isinstance(value, int):
        value = (value,)
    return tuple(int(v) for v in value)


def parse_layout(layout: pd.DataFrame) -> list[LayoutEntry]:
    """Validate a layout table and return its entries in order.

    Raises:
        ValueError: a missing column, a shape that does not match its index range, or
            ranges that overlap or leave gaps, naming the offending ``varname``.
    """
    missing = {"varname", "start_idx", "end_idx", "shape"} - set(layout.columns)
    if missing:
        raise ValueError(f"layout.csv lacks the column(s) {sorted(missing)}; expected varname,start_idx,end_idx,shape")
    entries: list[LayoutEntry] = []
    expected_start = 0
    for row in layout.sort_values("start_idx").itertuples(index=False):
        shape = _parse_shape(row.shape)
        start, end = int(row.start_idx), int(row.end_idx)
        if end - start != int(np.prod(shape)):
            raise ValueError(
                f"layout.csv: {row.varname} spans {end - start} values but its shape {shape} "
                f"holds {int(np.prod(shape))}"
            )
        if start != expected_start:
            raise ValueError(f"layout.csv: {row.varname} starts at {start}, expected {expected_start} (gap or overlap)")
        expected_start = end
        entries.append(LayoutEntry(str(row.varname), start, end, shape))
    return entries


def layout_to_json(layout: pd.DataFrame) -> str:
    return json.dumps(layout[["varname", "start_idx", "end_idx", "shape"]].to_dict(orient="records"))


def layout_from_json(text: str) -> pd.DataFrame:
    return pd.DataFrame(json.loads(text))


def n_params(layout: pd.DataFrame) -> int:
    return int(parse_layout(layout)[-1].end)


def _check_zoo_layout(entries: Sequence[LayoutEntry]) -> None:
    layers = []
    for e in entries:
        if e.layer not in layers:
            layers.append(e.layer)
    convs = [layer for layer in layers
             if any(e.layer == layer and e.kind == "kernel" and len(e.shape) == 4 for e in entries)]
    dense = [layer for layer in layers
             if any(e.layer == layer and e.kind == "kernel" and len(e.shape) == 2 for e in entries)]
    if len(convs) != 3 or len(dense) != 1:
        raise ValueError(
            f"layout describes {len(convs)} conv and {len(dense)} dense layers; the zoo network has 3 and 1"
        )


def _entries(layout: pd.DataFrame | Sequence[LayoutEntry]) -> list[LayoutEntry]:
    return list(layout) if not isinstance(layout, pd.DataFrame) else parse_layout(layout)


def unflatten(weights: Tensor, layout: pd.DataFrame | Sequence[LayoutEntry]) -> dict[str, Tensor]:
    """Split flat rows ``(n_models, n_params)`` into torch-ordered tensors.

    Returns a dict with ``conv{1,2,3}.weight`` ``(M, out, in, kh, kw)``, ``conv{i}.bias``
    ``(M, out)``, ``dense.weight`` ``(M, 10, 16)`` and ``dense.bias`` ``(M, 10)``: the
    names of :class:`ZooCNN`'s parameters with a leading model dimension.
    """
    if weights.dim() == 1:
        weights = weights[None]
    entries = _entries(layout)
    _check_zoo_layout(entries)
    if weights.shape[1] != entries[-1].end:
        raise ValueError(f"weights have {weights.shape[1]} columns but the layout needs {entries[-1].end}")
    order = []
    for e in entries:
        if e.layer not in order:
            order.append(e.layer)
    names = {layer: (f"conv{i + 1}" if i < 3 else "dense") for i, layer in enumerate(order)}
    m = weights.shape[0]
    out: dict[str, Tensor] = {}
    for e in entries:
        block = weights[:, e.start : e.end].reshape(m, *e.shape)
        if e.kind == "kernel" and len(e.shape) == 4:  # HWIO -> OIHW
            block = block.permute(0, 4, 3, 1, 2)
        elif e.kind == "kernel" and len(e.shape) == 2:  # (in, out) -> (out, in)
            block = block.permute(0, 2, 1)
        out[f"{names[e.layer]}.{'weight' if e.kind == 'kernel' else 'bias'}"] = block.contiguous()
    return out


def flatten(params: Mapping[str, Tensor], layout: pd.DataFrame | Sequence[LayoutEntry]) -> Tensor:
    """Inverse of :func:`unflatten`: torch-ordered tensors back to flat zoo rows."""
    entries = _entries(layout)
    order = []
    for e in entries:
        if e.layer not in order:
            order.append(e.layer)
    names = {layer: (f"conv{i + 1}" if i < 3 else "dense") for i, layer in enumerate(order)}
    m = next(iter(params.values())).shape[0]
    blocks = []
    for e in entries:
        t = params[f"{names[e.layer]}.{'weight' if e.kind == 'kernel' else 'bias'}"]
        if e.kind == "kernel" and len(e.shape) == 4:
            t = t.permute(0, 3, 4, 2, 1)
        elif e.kind == "kernel" and len(e.shape) == 2:
            t = t.permute(0, 2, 1)
        blocks.append(t.reshape(m, -1))
    return torch.cat(blocks, dim=1)


def _activation(name: str):
    if name == "relu":
        return torch.relu
    if name == "tanh":
        return torch.tanh
    raise ValueError(f"unknown activation {name!r}: the zoo network uses 'relu' or 'tanh'")


class ZooCNN(nn.Module):
    """One zoo network, the per-model reference for :func:`batched_logits`."""

    def __init__(self, in_channels: int = 1, activation: str = "relu", dropout: float = 0.0):
        super().__init__()
        _activation(activation)
        self.activation = activation
        self.conv1 = nn.Conv2d(in_channels, N_FILTERS, KERNEL, stride=STRIDE)
        self.conv2 = nn.Conv2d(N_FILTERS, N_FILTERS, KERNEL, stride=STRIDE)
        self.conv3 = nn.Conv2d(N_FILTERS, N_FILTERS, KERNEL, stride=STRIDE)
        # activation modules (no parameters) so that hooks see each conv layer's output
        # as Keras defines it, activation included (act3 is "the last conv layer")
        make = nn.ReLU if activation == "relu" else nn.Tanh
        self.act1, self.act2, self.act3 = make(), make(), make()
        self.drop = nn.Dropout(dropout)
        self.dense = nn.Linear(N_FILTERS, N_CLASSES)

    def forward(self, x: Tensor) -> Tensor:
        for conv, act in ((self.conv1, self.act1), (self.conv2, self.act2), (self.conv3, self.act3)):
            x = self.drop(act(conv(x)))
        return self.dense(x.mean(dim=(2, 3)))

    @classmethod
    def from_flat(
        cls, row: np.ndarray | Tensor, layout: pd.DataFrame, activation: str, dropout: float = 0.0
    ) -> "ZooCNN":
        """Rebuild a model from one flat zoo row."""
        row_t = torch.tensor(np.asarray(row, dtype=np.float32))
        params = {k: v[0] for k, v in unflatten(row_t[None], layout).items()}
        model = cls(params["conv1.weight"].shape[1], activation, dropout)
        model.load_state_dict(params)
        return model.eval()


def _stack_input(x: Tensor, m: int) -> Tensor:
    if x.dim() == 4:  # one batch shared by every model
        b, c, h, w = x.shape
        return x.repeat(1, m, 1, 1)
    if x.dim() == 5:  # a batch per model
        mm, b, c, h, w = x.shape
        if mm != m:
            raise ValueError(f"input has batches for {mm} models but the parameters hold {m}")
        return x.transpose(0, 1).reshape(b, m * c, h, w)
    raise ValueError(f"input must be (batch, C, H, W) or (models, batch, C, H, W), got {tuple(x.shape)}")


def _random_bytes(shape: torch.Size, generator: torch.Generator | None, device: torch.device) -> Tensor:
    """Uniform random integers in [0, 256) of ``shape`` (int16), from 64-bit draws."""
    n = int(np.prod(shape))
    words = torch.randint(
        -(2**63), 2**63 - 1, ((n + 7) // 8,), dtype=torch.int64, generator=generator, device=device
    )
    return words.view(torch.uint8)[:n].view(shape)


def _dropout_bytes(
    shape: torch.Size, generator: torch.Generator | Sequence[tuple[torch.Generator, int]] | None, device: torch.device
) -> Tensor:
    """The random bytes of one layer's dropout masks ``(batch, models * filters, h, w)``: from one
    generator, or block by block (each ``(generator, models)`` draws its models' channels, exactly
    the bytes it would draw for those models alone)."""
    if generator is None or isinstance(generator, torch.Generator):
        return _random_bytes(shape, generator, device)
    parts = [_random_bytes(torch.Size((shape[0], n * N_FILTERS, *shape[2:])), g, device) for g, n in generator]
    if sum(p.shape[1] for p in parts) != shape[1]:
        raise ValueError(f"dropout generator blocks cover {sum(p.shape[1] for p in parts) // N_FILTERS} models, "
                         f"the layer has {shape[1] // N_FILTERS}")
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)


def _conv(x: Tensor, w: Tensor, b: Tensor, groups: int) -> Tensor:
    return F.conv2d(x, w, b, stride=STRIDE, groups=groups)


def _fold_applies(x: Tensor, w: Tensor, b: Tensor) -> bool:
    """:class:`_FoldInputGrad` serves a CPU pass that needs only the input's gradient of a layer
    with one input channel per model (the zoo's first convolution on grey images)."""
    return (x.device.type == "cpu" and x.requires_grad and w.shape[2] == 1
            and not w.requires_grad and not b.requires_grad)


class _FoldInputGrad(torch.autograd.Function):
    """The grouped convolution of :func:`batched_logits` with its input gradient computed as
    ``fold(Wᵀ · grad)`` (one einsum over the models, then :func:`torch.nn.functional.fold` sums
    the overlapping windows), the same numbers as autograd's up to float rounding. On the CPU,
    oneDNN's backward of a grouped convolution with one input channel per group took 2.5 ms
    for 4 models × 100 images (5x its forward, 44 % of a Gradient pass); this takes 0.9-1.3 ms.
    Weights and biases get no gradient: used only where they need none (explanations)."""

    @staticmethod
    def forward(ctx, x: Tensor, w: Tensor, b: Tensor, groups: int) -> Tensor:  # noqa: D102
        ctx.save_for_backward(w)
        ctx.groups, ctx.hw = groups, tuple(x.shape[-2:])
        return _conv(x, w, b, groups)

    @staticmethod
    def backward(ctx, grad: Tensor):  # noqa: D102
        (w,) = ctx.saved_tensors
        return _fold_input_grad(w, grad, ctx.groups, ctx.hw), None, None, None


def _fold_input_grad(w: Tensor, grad: Tensor, m: int, hw: tuple[int, int]) -> Tensor:
    """The input gradient ``(N, M, H, W)`` of the first convolution (one input channel per
    model, weights ``(M · 16, 1, k, k)``) from its output's gradient ``(N, M · 16, h, w)``:
    ``fold(Wᵀ · grad)``, one einsum over the models, then :func:`torch.nn.functional.fold`."""
    n, mo, ho, wo = grad.shape
    k = w.shape[-1]
    cols = torch.einsum("mok,nmol->nmkl", w.reshape(m, mo // m, k * k), grad.reshape(n, m, mo // m, ho * wo))
    return F.fold(cols.reshape(n * m, k * k, ho * wo), hw, k, stride=STRIDE).view(n, m, *hw)


def _shared_copies(x: Tensor, w: Tensor, b: Tensor) -> bool:
    """:class:`_SharedInputConv` serves a CPU pass whose ``(M, N, 1, H, W)`` input holds ``M``
    copies of one batch as a view (stride 0 along the models: the attribution methods' per-model
    copies, :meth:`causalxai.attribution.base.Attribution.input_gradients`) and needs only the
    input's gradient."""
    return (x.dim() == 5 and x.shape[0] > 1 and x.stride(0) == 0 and x.shape[2] == 1
            and x.device.type == "cpu" and x.requires_grad and not w.requires_grad and not b.requires_grad)


class _SharedInputConv(torch.autograd.Function):
    """The first convolution of :func:`batched_logits` on ``M`` per-model copies of one batch
    that are views of it (``x (M, N, 1, H, W)``, stride 0 along the models): the forward is one
    ordinary convolution of the shared batch with every model's filters (``M · 16`` output
    channels) instead of a grouped one over ``M`` stacked copies, and the backward gives each
    model's own input gradient (:func:`_fold_input_grad`), so autograd still sees ``M`` inputs.
    The same numbers as the stacked path up to float rounding (``tests/zoo/test_network.py``).
    Weights and biases get no gradient: used only where they need none (explanations)."""

    @staticmethod
    def forward(ctx, x: Tensor, w: Tensor, b: Tensor) -> Tensor:  # noqa: D102
        ctx.save_for_backward(w)
        ctx.m, ctx.hw = x.shape[0], tuple(x.shape[-2:])
        return F.conv2d(x[0], w, b, stride=STRIDE)

    @staticmethod
    def backward(ctx, grad: Tensor):  # noqa: D102
        (w,) = ctx.saved_tensors
        gx = _fold_input_grad(w, grad, ctx.m, ctx.hw)  # (N, M, H, W)
        return gx.transpose(0, 1).unsqueeze(2), None, None


def batched_logits(
    params: Mapping[str, Tensor],
    x: Tensor,
    activation: str | Tensor,
    dropout: Tensor | None = None,
    generator: torch.Generator | Sequence[tuple[torch.Generator, int]] | None = None,
    return_last_conv: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """Logits of many zoo models at once: ``(n_models, batch, 10)``.

    Args:
        params: output of :func:`unflatten` (leading model dimension ``M``).
        x: ``(batch, C, H, W)`` fed to every model, or ``(M, batch, C, H, W)``.
        activation: ``"relu"``/``"tanh"`` for all models, or a bool tensor ``(M,)`` that is
            True where a model uses tanh.
        dropout: per-model drop probability ``(M,)``; applied (inverted dropout, as
            Keras) after each convolution's activation when given, i.e. in training.
        generator: random source for the dropout masks: one generator, or ``(generator, n)``
            pairs, one per consecutive block of ``n`` models (the blocks' masks are then the
            masks each block draws alone: :func:`causalxai.zoo.train.train_zoo`'s random blocks).
        return_last_conv: also return the last conv layer's output (activation
            included), ``(M, batch, 16, h, w)``, a view into the graph (for Grad-CAM).
    """
    m = params["conv1.weight"].shape[0]
    shared = _shared_copies(x, params["conv1.weight"], params["conv1.bias"]) and m == x.shape[0]
    h = x if shared else _stack_input(x, m)
    if isinstance(activation, str):
        act = _activation(activation)
        mixed = None
    else:
        is_tanh = activation.to(torch.bool)
        if bool(is_tanh.all()):
            act, mixed = torch.tanh, None
        elif not bool(is_tanh.any()):
            act, mixed = torch.relu, None
        else:
            act = None
            mixed = is_tanh.repeat_interleave(N_FILTERS)[None, :, None, None]
    keep = None
    if dropout is not None:
        # keep probabilities quantised to 1/256 so masks come from random bytes (one
        # 64-bit draw per 8 units, ~5x cheaper than a float uniform per unit); the
        # survivors are scaled by the quantised keep probability, so E[mask] = 1 exactly
        thr = torch.round((1.0 - dropout.float()) * 256).clamp(1, 256).repeat_interleave(N_FILTERS)
        keep_q = (thr / 256).to(h.dtype)[None, :, None, None]
        keep = (thr.to(torch.int16)[None, :, None, None], 1.0 / keep_q)
    for i in (1, 2, 3):
        w = params[f"conv{i}.weight"]
        if i == 1 and shared:
            h = _SharedInputConv.apply(h, w.reshape(-1, *w.shape[2:]), params["conv1.bias"].reshape(-1))
        else:
            conv = _FoldInputGrad.apply if i == 1 and _fold_applies(h, w, params[f"conv{i}.bias"]) else _conv
            h = conv(h, w.reshape(-1, *w.shape[2:]), params[f"conv{i}.bias"].reshape(-1), m)
        h = act(h) if mixed is None else torch.where(mixed, torch.tanh(h), torch.relu(h))
        if keep is not None:
            h = h * ((_dropout_bytes(h.shape, generator, h.device) < keep[0]) * keep[1])
    b = h.shape[0]
    last = h.view(b, m, N_FILTERS, *h.shape[2:]).transpose(0, 1)  # (M, B, 16, h, w)
    feats = last.mean(dim=(3, 4))  # global average pooling: (M, B, 16)
    logits = torch.baddbmm(params["dense.bias"][:, None, :], feats, params["dense.weight"].transpose(1, 2))
    return (logits, last) if return_last_conv else logits


def batched_forward(
    params: Mapping[str, Tensor], activation: str | Tensor, output: str = "prob", last_conv: bool = False
) -> Callable[[Tensor], Tensor | tuple[Tensor, Tensor]]:
    """The forward of a chunk of zoo models for :mod:`causalxai.attribution` (``models = M``).

    Args:
        params, activation: of :func:`batched_logits`.
        output: ``"prob"`` (the softmax, what PAIR saliency differentiated on the zoo's
            Keras models ending in a softmax) or ``"logit"``.
        last_conv: return ``(last conv layer's output (M, batch, 16, h, w), scores)`` (the
            forward of :class:`causalxai.attribution.grad_cam.GradCam`) instead of the scores.

    Returns:
        ``x (batch, C, H, W) or (M, batch, C, H, W) -> scores (M, batch, 10)``.
    """
    if output not in OUTPUTS:
        raise ValueError(f"explain.output must be 'prob' or 'logit', got {output!r}")

    def scores(logits: Tensor) -> Tensor:
        return torch.softmax(logits, dim=-1) if output == "prob" else logits

    def forward(x: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        if last_conv:
            logits, last = batched_logits(params, x, activation, return_last_conv=True)
            return last, scores(logits)
        return scores(batched_logits(params, x, activation))

    return forward
