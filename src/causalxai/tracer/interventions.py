"""Interventions on the input and the activations they cause (paper 004 §3.3.1, App. F).

An intervention sets a subset I of the input features to a baseline b,
``x'_i = b·1{i∈I} + x_i·(1−1{i∈I})``. TRACER's subsets are sliding windows:

* images: k×k patches moved with stride s (MNIST 3×3, stride 1; ImageNet 30×30, stride
  15 in App. F, 7×7 stride 3 in §4.2), :func:`patch_masks`;
* tabular rows of d features: 1×k windows with stride s (CIC-IDS 2017: 1×3, stride 1),
  :func:`window_masks`.

The number of interventions along one axis of length L is ``floor((L − k) / s) + 1``
(windows that fit entirely; no padding), so an H×W image has
``(floor((H − k_h)/s_h) + 1) · (floor((W − k_w)/s_w) + 1)`` of them: 26·26 = 676 for
MNIST. :func:`intervene` builds the original plus every intervened copy in one tensor
(row 0 the original), :func:`record_activations` runs them through the model in batches
and keeps every observed layer's output. All of it is vectorised: no Python loop per
intervention.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from torch import nn
from tqdm.auto import tqdm

from causalxai.tracer.model import forward_hooks, observed_layers

__all__ = ["n_windows", "patch_masks", "window_masks", "intervene", "record_activations"]


def _pair(v: int | Sequence[int], what: str) -> tuple[int, int]:
    a, b = (v, v) if isinstance(v, int) else tuple(v)
    if a < 1 or b < 1:
        raise ValueError(f"{what} must be >= 1, got {v!r}")
    return int(a), int(b)


def n_windows(length: int, k: int, stride: int) -> int:
    """Windows of size ``k`` with stride ``stride`` that fit in ``length``: ``(length−k)//stride + 1``."""
    if k < 1 or stride < 1:
        raise ValueError(f"window size and stride must be >= 1, got k={k}, stride={stride}")
    if k > length:
        raise ValueError(f"window size {k} is larger than the input ({length}); choose k <= {length}")
    return (length - k) // stride + 1


def _axis_masks(length: int, k: int, stride: int, device: torch.device | str | None) -> torch.Tensor:
    """(n_windows, length) bool: row j covers [j·stride, j·stride + k)."""
    starts = torch.arange(n_windows(length, k, stride), device=device) * stride
    pos = torch.arange(length, device=device)
    return (pos >= starts[:, None]) & (pos < starts[:, None] + k)


def patch_masks(
    height: int,
    width: int,
    k: int | Sequence[int],
    stride: int | Sequence[int],
    *,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Boolean masks ``(n, height, width)`` of the k×k patches moved with ``stride``.

    ``k`` and ``stride`` are an int or a ``(rows, cols)`` pair. Patches are ordered row-major
    by their top-left corner ``(i·s_h, j·s_w)``; patch ``i·n_w + j`` covers rows
    ``[i·s_h, i·s_h + k_h)`` and columns ``[j·s_w, j·s_w + k_w)``.
    ``n = n_h · n_w`` with ``n_h = (height − k_h)//s_h + 1``, ``n_w = (width − k_w)//s_w + 1``
    (28×28, k=3, s=1: 26·26 = 676).
    """
    kh, kw = _pair(k, "patch size k")
    sh, sw = _pair(stride, "stride")
    rows = _axis_masks(height, kh, sh, device)  # (n_h, H)
    cols = _axis_masks(width, kw, sw, device)  # (n_w, W)
    masks = rows[:, None, :, None] & cols[None, :, None, :]  # (n_h, n_w, H, W)
    return masks.reshape(-1, height, width)


def window_masks(d: int, k: int, stride: int, *, device: torch.device | str | None = None) -> torch.Tensor:
    """Boolean masks ``(n, d)`` of 1×k windows over d tabular features, ``n = (d − k)//stride + 1``.

    Window j covers features ``[j·stride, j·stride + k)`` (CIC-IDS 2017 in paper 004: k=3, s=1).
    """
    return _axis_masks(int(d), int(k), int(stride), device)


def intervene(
    x: torch.Tensor,
    masks: torch.Tensor,
    baseline: float | torch.Tensor = 0.0,
    *,
    normalize: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """The original sample and its interventions, stacked: ``(n + 1, *x.shape)``.

    ``x`` is ONE sample in the raw input space, before any normalisation, shaped
    ``(*lead, *S)`` where ``S = masks.shape[1:]`` (``(C, H, W)`` with ``(n, H, W)`` patch
    masks, so every channel of a patch is set; ``(d,)`` with ``(n, d)`` window masks). Row 0
    is ``x`` unchanged; row ``i + 1`` is ``x`` with the pixels of ``masks[i]`` set to
    ``baseline``: a number (paper 004: 0 before normalisation) or a tensor broadcastable to
    ``x`` (a per-channel value, a blurred copy of ``x``, …).

    The baseline lives in the raw space: set it, then normalise. ``normalize`` (optional) is
    applied once to the whole stack after the baseline was set, so it must take a batch
    ``(n + 1, *x.shape)``, e.g. ``lambda t: (t - mean) / std``; row 0 is then
    ``normalize(x)``. Integer inputs are converted to float32 first.
    """
    masks = torch.as_tensor(masks, device=x.device).bool()
    if masks.dim() < 2:
        raise ValueError(f"intervene: masks must be (n_interventions, ...), got shape {tuple(masks.shape)}")
    spatial = tuple(masks.shape[1:])
    if x.dim() < len(spatial) or tuple(x.shape[x.dim() - len(spatial) :]) != spatial:
        raise ValueError(
            f"intervene: a sample of shape {tuple(x.shape)} does not end in the masks' shape {spatial}; "
            "pass one sample (no batch axis) whose trailing axes match the masks"
        )
    if not x.is_floating_point():
        x = x.float()
    n_lead = x.dim() - len(spatial)
    m = masks.reshape(masks.shape[0], *([1] * n_lead), *spatial)
    b = torch.as_tensor(baseline, dtype=x.dtype, device=x.device)
    out = torch.cat([x.unsqueeze(0), torch.where(m, b, x.unsqueeze(0))], dim=0)
    if normalize is not None:
        out = normalize(out)
    return out


def record_activations(
    model: nn.Module,
    inputs: torch.Tensor,
    layers: str | Sequence[str] = "all",
    batch_size: int = 256,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = torch.float32,
    progress: bool = False,
) -> dict[str, torch.Tensor]:
    """Every observed layer's output for every input: ``{name: (N, *layer_output_shape)}`` on CPU.

    ``layers`` is a list of module names or anything :func:`observed_layers` takes as
    ``select`` (``"all"``, ``"parametric"``, a type name). ``inputs`` ``(N, ...)`` (e.g. the
    output of :func:`intervene`) go through ``model`` in batches of ``batch_size``: one
    forward per batch, forward hooks copying each layer's output into a preallocated CPU
    tensor (so an in-place op after the layer cannot change what was recorded). The model
    runs in eval mode (dropout off, norms frozen) under ``torch.no_grad`` on ``device``
    (default: where its parameters are); its training flag is restored and all hooks are
    removed afterwards, also on error. Outputs are float32 by default (``dtype=None`` keeps
    the layer's dtype). A module that runs more than once per forward, or whose output is
    not a tensor, raises.

    Memory: the result holds N × (sum of the layers' output sizes) numbers; observe fewer
    layers or fewer inputs when that is too much.
    """
    names = observed_layers(model, layers) if isinstance(layers, str) else list(layers)
    if not names:
        raise ValueError("record_activations: no layers to observe")
    if batch_size < 1:
        raise ValueError(f"record_activations: batch_size must be >= 1, got {batch_size}")
    if device is None:
        p = next(model.parameters(), None)
        device = p.device if p is not None else torch.device("cpu")
    n = len(inputs)
    if n == 0:
        raise ValueError("record_activations: no inputs")
    buffers: dict[str, torch.Tensor] = {}
    calls: dict[str, int] = {}
    window = [0, 0]  # rows [start, stop) of the batch being run

    def keep(name: str, module: nn.Module, out: Any) -> None:
        if not isinstance(out, torch.Tensor):
            raise TypeError(
                f"record_activations: layer {name!r} ({type(module).__name__}) returned "
                f"{type(out).__name__}, not a tensor; observe another layer"
            )
        calls[name] = calls.get(name, 0) + 1
        start, stop = window
        if out.shape[0] != stop - start:
            raise RuntimeError(
                f"record_activations: layer {name!r} output has batch size {out.shape[0]}, "
                f"expected {stop - start}; it cannot be recorded per input"
            )
        if name not in buffers:
            buffers[name] = torch.empty((n, *out.shape[1:]), dtype=dtype or out.dtype, device="cpu")
        buffers[name][start:stop].copy_(out.detach())

    was_training = model.training
    model.eval()
    try:
        with forward_hooks(model, names, keep), torch.no_grad():
            for start in tqdm(range(0, n, batch_size), desc="activations", disable=not progress):
                window[:] = [start, min(start + batch_size, n)]
                calls.clear()
                model(inputs[start : window[1]].to(device))
                bad = {k: v for k, v in calls.items() if v != 1}
                missing = [k for k in names if k not in calls]
                if bad or missing:
                    raise RuntimeError(
                        "record_activations: each observed layer must run exactly once per forward; "
                        f"ran several times: {bad or 'none'}, never ran: {missing or 'none'}. "
                        "Leave those modules out of the observed layers"
                    )
    finally:
        model.train(was_training)
    return {name: buffers[name] for name in names}
