"""Interventions on the input and the activations they cause (paper 004 §3.3.1, App. F).

An intervention sets a subset I of the input features to a baseline b,
``x'_i = b·1{i∈I} + x_i·(1−1{i∈I})``. TRACER's subsets are sliding windows:

* images: k×k patches moved with stride s (MNIST 3×3, stride 1; ImageNet 30×30, stride
  15 in App. F, 7×7 stride 3 in §4.2), :func:`patch_masks`;
* tabular rows of d features: 1×k windows with stride s (CIC-IDS 2017: 1×3, stride 1),
  :func:`window_masks`.

Windows start at ``0, s, 2s, …`` along an axis of length L, ``ceil((L − k) / s) + 1`` of
them; when ``(L − k)`` is not a multiple of ``s`` the last one is **truncated** at the border
(it starts at ``ceil((L − k)/s)·s`` and covers ``[start, L)``, fewer than k positions), so with s ≤ k every
position is occluded at least once. This is Captum's ``Occlusion`` rule (its shift count is
``ceil((L − k)/s) + 1``, the last window cut at the edge; with s > k a window that would start
past the border is dropped instead of kept empty, :func:`n_windows`). When the windows tile exactly the
count is the paper's ``(L − k)/s + 1``: 26·26 = 676 for MNIST (3×3, stride 1); 30×30 with stride
15 on 224 px gives 14 windows per axis, the last at 195 covering rows 195-223 (the 13 full ones
stop at row 209, so dropping the remainder would never occlude rows 210-223).
:func:`intervene` builds the original plus every intervened copy in one tensor
(row 0 the original), :func:`record_activations` runs them through the model in batches
and keeps every observed layer's output. All of it is vectorised: no Python loop per
intervention.

**The interventions step** (rule ``interventions``): one TRACER analysis per input sample:
interventions, layer activations, CKA, per-layer KL and sign (paper 004 §3.3-3.4).
:func:`interventions_dataset` gives the content of ``interventions.nc``; :func:`analyse_one`
is the per-sample work (benchmarks call it). Both take a
:class:`~causalxai.tracer.settings.TracerSettings`.

For each sample ``x`` (a Python loop over samples; the interventions of one sample are
vectorised):

1. :func:`intervene` builds the original (row 0) and its
   ``n`` interventions (k×k patches, stride s; 676 for 28×28, k = 3, s = 1);
2. :func:`record_activations` runs them through the model
   in batches and keeps every observed layer's output and the model's output;
3. :func:`~causalxai.tracer.cka.cka_matrix` gives the CKA of every layer pair over the
   ``n + 1`` inputs;
4. per layer ``l`` and intervention ``x'``: the KL divergence of Definition 5 and the sign
   of the change (below), computed layer by layer from the recorded tensors, which are then
   freed (one sample's 677 inputs through all 20 AlexNet layers take ~600 MB in float32).

Choices where the paper leaves room:

* **Baseline in raw space.** Paper 004 §4.1 sets "pixel values to zero before
  normalization". The inputs here are the dataset's *normalised* images (ours:
  ``x = raw/255·2 − 1``, i.e. ``raw = (x + 1)/2`` in [0, 1]). The baseline ``b`` is a raw value;
  patch pixels are set to ``from_raw(b)`` (default :func:`causalxai.data.dataset.from_raw`,
  ``2b − 1``: b = 0 → −1), every other pixel
  keeps its normalised value bit for bit. ``from_raw`` must act pixel by pixel (an affine
  map per channel, as every image normalisation here); ``to_raw`` is its inverse and is used
  only to check that the two callables match (``from_raw(to_raw(x)) ≈ x``).
* **KL (Definition 5).** ``KL(softmax(g_l(x')) ‖ softmax(g_l(x)))`` with the softmax over the
  whole flattened layer output, in float64: the original's ``log_softmax`` and the
  intervened distribution written relative to it (:func:`layer_kl_sign`; agrees with two
  float64 ``log_softmax`` to ~1e-14 relative). Tiny negative values from rounding are clamped
  to 0, and a layer output bitwise equal to the original's gives exactly 0 (and sign 0).
* **Sign.** Definition 5 writes ``Δ = g'_l(x) − g'_l(x')`` (a vector) but uses it as "the
  sign of the change". We take the sign of Δ at the unit where the original's softmax
  ``g'_l(x)`` peaks (the argmax of ``g_l(x)``, the first one on ties): ``+1`` when the
  intervention lowered that unit's probability, ``−1`` when it raised it, ``0`` when it did
  not change it. For the output layer that unit is the predicted class, so ``+1`` means the
  patch supported the decision. Computed in log space,
  ``sign(log g'_l(x)_j − log g'_l(x')_j)``.
* **Model output.** ``prob`` is the softmax of the model's output (the model returns
  logits); ``pred``/``pred_intervened`` its argmax on the original/each intervention.
* **Images.** ``image (sample, y, x)`` is always the first channel of the normalised input
  (what the figures draw); ``inputs (sample, channel, y, x)`` is always the full normalised
  input the model saw (what perturbation-based metrics feed back to the model), whatever
  the number of channels.
* **Identical layers.** Layers whose output is bitwise identical to the previous layer's
  (eval-mode Dropout, Flatten, Identity) share that layer's centred Gram, KL and sign: CKA
  between them is exactly 1 and nothing is computed twice.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Sequence

import numpy as np
import torch
import xarray as xr
from torch import nn

from causalxai.checks import require_informative
from causalxai.progress import Progress
from causalxai.runtime import eval_mode, model_device
from causalxai.tracer.cka import cka_matrix
from causalxai.tracer.model import forward_hooks, observed_layers, stochastic_modules
from causalxai.tracer.settings import TracerSettings

__all__ = [
    "n_windows",
    "patch_masks",
    "window_masks",
    "intervene",
    "record_activations",
    "layer_kl_sign",
    "analyse_one",
    "interventions_dataset",
]


def _pair(v: int | Sequence[int], what: str) -> tuple[int, int]:
    a, b = (v, v) if isinstance(v, int) else tuple(v)
    if a < 1 or b < 1:
        raise ValueError(f"{what} must be >= 1, got {v!r}")
    return int(a), int(b)


def n_windows(length: int, k: int, stride: int) -> int:
    """Windows of size ``k`` with stride ``stride`` along ``length``: ``ceil((length−k)/stride) + 1``.

    Starts ``0, s, 2s, …``; the last window is truncated at the border when ``length − k`` is not
    a multiple of ``stride`` (Captum's ``Occlusion``; module docstring), so every position is
    covered when ``stride ≤ k``. Tiling exactly (MNIST 3×3, stride 1: 26) gives the paper's
    ``(length−k)/stride + 1``. With ``stride > k`` a window that would start at or past the border
    (``start ≥ length``) is dropped, so no window is empty (Captum keeps it as a no-op ablation):
    ``min(ceil((length−k)/stride) + 1, ceil(length/stride))``.
    """
    if k < 1 or stride < 1:
        raise ValueError(f"window size and stride must be >= 1, got k={k}, stride={stride}")
    if k > length:
        raise ValueError(f"window size {k} is larger than the input ({length}); choose k <= {length}")
    # a window starting at or past the border (possible only when stride > k) would be empty: dropped
    return min(-(-(length - k) // stride) + 1, -(-length // stride))


def _axis_masks(length: int, k: int, stride: int, device: torch.device | str | None) -> torch.Tensor:
    """(n_windows, length) bool: row j covers [j·stride, min(j·stride + k, length))."""
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
    ``n = n_h · n_w`` with ``n_h = ceil((height − k_h)/s_h) + 1``, ``n_w`` likewise (28×28, k=3,
    s=1: 26·26 = 676); a last row/column of patches is truncated at the border when the windows
    do not tile exactly (:func:`n_windows`), so every pixel is covered.
    """
    kh, kw = _pair(k, "patch size k")
    sh, sw = _pair(stride, "stride")
    rows = _axis_masks(height, kh, sh, device)  # (n_h, H)
    cols = _axis_masks(width, kw, sw, device)  # (n_w, W)
    masks = rows[:, None, :, None] & cols[None, :, None, :]  # (n_h, n_w, H, W)
    return masks.reshape(-1, height, width)


def window_masks(d: int, k: int, stride: int, *, device: torch.device | str | None = None) -> torch.Tensor:
    """Boolean masks ``(n, d)`` of 1×k windows over d tabular features, ``n =`` :func:`n_windows`.

    Window j covers features ``[j·stride, min(j·stride + k, d))`` (CIC-IDS 2017 in paper 004: k=3,
    s=1); the last one is truncated when the windows do not tile the d features exactly.
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
    device = model_device(model, device)
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

    with eval_mode(model), forward_hooks(model, names, keep), torch.no_grad():
        for start in range(0, n, batch_size):
            window[:] = [start, min(start + batch_size, n)]
            calls.clear()
            model(inputs[start : window[1]].to(device))
            bad = {k: v for k, v in calls.items() if v != 1}
            missing = [k for k in names if k not in calls]
            if bad or missing:
                several = ", ".join(f"module {k!r} ({type(model.get_submodule(k)).__name__}) runs {v} times"
                                    for k, v in bad.items())
                raise RuntimeError(
                    "record_activations: each observed layer must run exactly once per forward pass"
                    f"{': ' + several if several else ''}{'; ' if several and missing else ''}"
                    f"{f'never ran: {missing}' if missing else ''}. A module used more than once has no single "
                    "output to observe: give each use a module of its own, or leave it out of the observed layers"
                )
    return {name: buffers[name] for name in names}


_KL_CHUNK = 1 << 22  # float64 elements per KL block (32 MiB; few large ops: robust on busy cores)


class _Tap(nn.Module):
    """The model with an Identity on its output, so that the output is recorded too."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net
        self.output = nn.Identity()
        self.train(net.training)  # record_activations restores the wrapper's flag onto the model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output(self.net(x))


def _rowdot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise dot products of two ``(r, d)`` tensors (a batched BLAS product, no temporary)."""
    return torch.bmm(a[:, None, :], b[:, :, None]).reshape(-1)


def layer_kl_sign(acts: torch.Tensor, *, original: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """KL and sign (module docstring) of every row of ``acts (N, ...)`` against row ``original``.

    Returns ``(kl, sign)``: float64 ``(N,)`` and int8 ``(N,)``, on ``acts``' device; a row
    bitwise equal to the original (the original itself included) gets exactly 0 and 0.

    Everything is float64 from the differences on. With ``z`` a row, ``z₀`` the original,
    ``Δ = z − z₀``, ``log p₀ = log_softmax(z₀)`` and ``e = exp(Δ + log p₀)`` (``= p₀ e^Δ``, no
    overflow unless the change itself is huge), ``s = Σ e``: ``log p' = log p₀ + Δ − log s``,
    hence ``KL = Σ e·Δ / s − log s`` and, at the original's peak unit ``j``,
    ``sign(log p₀_j − log p'_j) = sign(log s − Δ_j)``. Five passes over the layer per block
    of rows; a block whose ``s`` under- or overflows is redone with each row's own
    log-sum-exp.
    """
    flat = acts.reshape(acts.shape[0], -1)
    n, d = flat.shape
    ref = flat[original]
    z0 = ref.to(torch.float64)
    log_p0 = torch.log_softmax(z0, 0)
    j = int(torch.argmax(z0))
    kl = torch.empty(n, dtype=torch.float64, device=flat.device)
    sign = torch.empty(n, dtype=torch.int8, device=flat.device)
    rows = max(1, min(n, _KL_CHUNK // max(d, 1)))
    ebuf = torch.empty((rows, d), dtype=torch.float64, device=flat.device)  # reused: no page faults
    dbuf = torch.empty_like(ebuf)
    for start in range(0, n, rows):
        block = flat[start : start + rows]
        r = len(block)
        e, diff = ebuf[:r], dbuf[:r]
        torch.sub(block, z0, out=diff)  # float32 − float64: computed in float64
        changed = (block != ref).any(1)
        torch.add(diff, log_p0, out=e).exp_()
        s = e.sum(1)
        log_s = torch.log(s)
        if not bool(torch.isfinite(log_s).all()):
            z = torch.add(diff, z0)
            lse = torch.logsumexp(z, 1)
            log_s = lse - torch.logsumexp(z0, 0)
            torch.sub(z, lse[:, None], out=e).exp_()
            s = torch.ones_like(lse)
        block_kl = (_rowdot(e, diff) / s - log_s).clamp_min(0.0)
        block_sign = torch.sign(log_s - diff[:, j]).to(torch.int8)
        kl[start : start + r] = torch.where(changed, block_kl, torch.zeros_like(block_kl))
        sign[start : start + r] = torch.where(changed, block_sign, torch.zeros_like(block_sign))
    return kl, sign


def _check_round_trip(x: torch.Tensor, to_raw: Callable, from_raw: Callable) -> None:
    back = from_raw(to_raw(x))
    if not torch.allclose(back, x, rtol=1e-4, atol=1e-5):
        raise ValueError(
            "analyse_one: from_raw(to_raw(x)) differs from x; to_raw and from_raw must undo each other "
            "(they map the dataset's normalised images to the raw space where the baseline is set, "
            "default raw = (x + 1)/2)"
        )


def _same_tensor(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.numel() == b.numel() and a.dtype == b.dtype and torch.equal(a.reshape(-1), b.reshape(-1))


def analyse_one(
    model: nn.Module,
    x: torch.Tensor,
    settings: TracerSettings,
    *,
    device: torch.device | str | None = None,
    timings: dict[str, float] | None = None,
) -> dict[str, Any]:
    """The TRACER analysis of ONE normalised sample ``x (C, H, W)`` (module docstring).

    Args:
        model: the classifier (returns logits); run in eval mode, training flag restored.
        x: one normalised image ``(C, H, W)``.
        settings: its ``layers`` (names or anything :func:`observed_layers` takes; put in
            model order), ``patch`` and ``stride`` (int or ``(rows, cols)``), ``baseline``
            (the raw value patches are set to, before normalisation), ``to_raw``/``from_raw``
            (normalised → raw and back, module docstring), ``kernel`` and ``cka_dtype`` (CKA
            kernel and Gram dtype; HSIC sums are float64 regardless) and ``batch_size``
            (inputs per forward pass).
        device: where the model runs and the CKA/KL are computed (default: the model's).
        timings: if given, filled with seconds per step (``activations``, ``cka``, ``kl``).

    Returns:
        dict with ``layers`` (names), ``masks (n, H, W)`` bool, ``cka (L, L)`` float64,
        ``kl (n, L)`` float64, ``sign (n, L)`` int8, ``logits (n + 1, n_classes)`` float32
        (row 0 the original), ``prob (n_classes,)`` float64, ``pred`` int,
        ``pred_intervened (n,)`` int64; tensors on the CPU.
    """
    if x.dim() != 3:
        raise ValueError(f"analyse_one: x must be one image (C, H, W), got shape {tuple(x.shape)}")
    p = next(model.parameters(), None)
    device = model_device(model, device)
    dtype = p.dtype if p is not None and p.is_floating_point() else torch.float32
    to_raw, from_raw = settings.to_raw, settings.from_raw
    t0 = time.perf_counter()

    x = x.to(device=device, dtype=dtype)
    # in the order forward runs them, which need not be the order the model registers them in
    names = observed_layers(model, settings.layers, example_input=x[None])
    _check_round_trip(x, to_raw, from_raw)
    masks = patch_masks(x.shape[-2], x.shape[-1], settings.patch, settings.stride, device=device)
    b = from_raw(torch.full_like(x, float(settings.baseline)))  # the raw baseline, normalised, per pixel
    stack = intervene(x, masks, b)  # untouched pixels keep x exactly
    tap = _Tap(model)
    # a stochastic layer (App. H.2) draws its noise from the global RNG: seeded here (in a forked
    # state), so its draws, and the analysis, are the same on every run
    cuda = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(0)
        acts = record_activations(tap, stack, [f"net.{n}" for n in names] + ["output"], settings.batch_size,
                                  device=device, dtype=torch.float32)
    del stack
    logits = acts.pop("output")
    acts = {n: acts[f"net.{n}"] for n in names}
    if timings is not None:
        timings["activations"] = time.perf_counter() - t0

    # layers bitwise identical to the previous one share its results
    rep = list(range(len(names)))
    for i in range(1, len(names)):
        if _same_tensor(acts[names[i]], acts[names[rep[i - 1]]]):
            rep[i] = rep[i - 1]
    unique = sorted(set(rep))
    pos = {u: q for q, u in enumerate(unique)}
    index = torch.tensor([pos[r] for r in rep])

    t1 = time.perf_counter()
    cka_u = cka_matrix([acts[names[u]].to(device) for u in unique], settings.kernel, settings.cka_dtype)
    cka = cka_u.cpu()[index][:, index].contiguous()
    cka.fill_diagonal_(1.0)
    t2 = time.perf_counter()
    if timings is not None:
        timings["cka"] = t2 - t1

    n = len(masks)
    kl = torch.empty((n, len(names)), dtype=torch.float64)
    sign = torch.empty((n, len(names)), dtype=torch.int8)
    for u in unique:
        layer_kl, layer_sign = layer_kl_sign(acts[names[u]].to(device))
        cols = [i for i, r in enumerate(rep) if r == u]
        kl[:, cols] = layer_kl[1:].cpu()[:, None]
        sign[:, cols] = layer_sign[1:].cpu()[:, None]
    del acts
    if timings is not None:
        timings["kl"] = time.perf_counter() - t2

    logits = logits.reshape(logits.shape[0], -1)
    prob = torch.softmax(logits[0].to(torch.float64), 0)
    pred_all = logits.argmax(1)
    return {
        "layers": names,
        "masks": masks.cpu(),
        "cka": cka,
        "kl": kl,
        "sign": sign,
        "logits": logits,
        "prob": prob,
        "pred": int(pred_all[0]),
        "pred_intervened": pred_all[1:].to(torch.int64),
    }


def interventions_dataset(
    model: nn.Module,
    images: Any,
    settings: TracerSettings,
    *,
    sample_ids: Sequence[Any] | None = None,
    labels: Sequence[int] | None = None,
    device: torch.device | str | None = None,
    timings: dict[str, float] | None = None,
    progress: bool = False,
) -> xr.Dataset:
    """TRACER's per-sample analysis of ``images (S, C, H, W)`` (normalised): ``interventions.nc``.

    Args:
        model: the classifier (logits).
        images: normalised images ``(S, C, H, W)``.
        settings: as :func:`analyse_one`.
        sample_ids: the ``sample`` coordinate (default ``0 … S−1``).
        labels: the true classes (default −1: unknown).
        device: where to compute (default: the model's device).
        timings: optional; receives :func:`analyse_one`'s step times summed over the samples.
        progress: log the samples done at a steady rate (:class:`~causalxai.progress.Progress`).

    Returns:
        Dataset with coords ``sample``, ``layer`` (model order), ``layer_i``/``layer_j``,
        ``intervention (0 … n−1)``, ``patch_y``/``patch_x (intervention)`` (top-left corner),
        ``class``, ``channel``, ``y``, ``x`` and variables ``cka (sample, layer_i, layer_j)``
        float64, ``kl (sample, intervention, layer)`` float64, ``sign (sample, intervention,
        layer)`` int8 in {−1, 0, 1}, ``prob (sample, class)`` float64, ``pred (sample)``,
        ``label (sample)``, ``pred_intervened (sample, intervention)`` int64,
        ``image (sample, y, x)`` (first channel) and ``inputs (sample, channel, y, x)``
        float32; attrs ``patch_size``, ``stride`` (int, or ``[rows, cols]`` when they differ: a JSON
        string once written by :mod:`causalxai.io`),
        ``baseline``, ``kernel``, ``cka_dtype``, ``height``, ``width``, ``n_interventions``.

    Raises:
        causalxai.checks.DegenerateResultError: ``kl`` is all NaN (non-finite activations)
            or one constant over every sample, intervention and layer, in practice all 0: no
            occlusion changes any observed layer, so every ACE (paper 004 Def. 5) would be 0
            and every mask empty. ``cka`` is not checked: its diagonal is 1 by definition and
            constant layers get the convention of :func:`~causalxai.tracer.cka.cka_matrix`.
    """
    imgs = torch.as_tensor(np.asarray(images) if not isinstance(images, torch.Tensor) else images)
    if imgs.dim() != 4 or len(imgs) == 0:
        raise ValueError(
            f"interventions_dataset: images must be (S, C, H, W) with S ≥ 1, got shape {tuple(imgs.shape)}"
        )
    if not imgs.is_floating_point():
        imgs = imgs.float()
    n_samples, n_channels, height, width = imgs.shape
    ids = list(range(n_samples)) if sample_ids is None else list(np.asarray(sample_ids).tolist())
    if len(ids) != n_samples:
        raise ValueError(f"interventions_dataset: {len(ids)} sample ids for {n_samples} images")
    lab = np.full(n_samples, -1, np.int64) if labels is None else np.asarray(labels, dtype=np.int64).reshape(-1)
    if len(lab) != n_samples:
        raise ValueError(f"interventions_dataset: {len(lab)} labels for {n_samples} images")

    results = []
    step: dict[str, float] = {}
    counter = Progress(n_samples, "TRACER interventions", "samples", enabled=progress)
    for s in range(n_samples):
        r = analyse_one(model, imgs[s], settings, device=device, timings=step)
        counter.update()
        if timings is not None:
            for key, value in step.items():
                timings[key] = timings.get(key, 0.0) + value
        r.pop("logits")
        masks = r.pop("masks")
        results.append(r)
    names = results[0]["layers"]
    kh, kw = _pair(settings.patch, "patch size k")
    sh, sw = _pair(settings.stride, "stride")
    n_int = len(masks)
    n_w = n_windows(width, kw, sw)
    idx = np.arange(n_int)
    n_classes = len(results[0]["prob"])

    def stack(key: str) -> np.ndarray:
        return np.stack([np.asarray(r[key].numpy() if isinstance(r[key], torch.Tensor) else r[key]) for r in results])

    kl_all = stack("kl")
    require_informative(
        kl_all, "kl (every sample, intervention and observed layer)", "interventions",
        causes=f"no {kh}x{kw} occlusion to the baseline {settings.baseline:g} (raw) changes any observed layer "
               f"({', '.join(map(str, names))}): a model whose output does not depend on its input (an untrained or "
               "collapsed target model: tracer.model.epochs, tracer.model.lr), a baseline equal to the images "
               "(tracer.interventions.baseline), or non-finite activations",
        fix="train the target model (snakemake --forcerun target_model) longer or with another lr, or choose "
            "another tracer.interventions.baseline or a larger tracer.interventions.patch",
    )
    imgs_np = imgs.numpy().astype(np.float32)
    stochastic = stochastic_modules(model, imgs[:1].to(model_device(model)))
    out = xr.Dataset(
        {
            "cka": (("sample", "layer_i", "layer_j"), stack("cka").astype(np.float64)),
            "kl": (("sample", "intervention", "layer"), kl_all.astype(np.float64)),
            "sign": (("sample", "intervention", "layer"), stack("sign").astype(np.int8)),
            "prob": (("sample", "class"), stack("prob").astype(np.float64)),
            "pred": (("sample",), stack("pred").astype(np.int64)),
            "label": (("sample",), lab),
            "pred_intervened": (("sample", "intervention"), stack("pred_intervened").astype(np.int64)),
            "image": (("sample", "y", "x"), imgs_np[:, 0]),
            "inputs": (("sample", "channel", "y", "x"), imgs_np),
            "stochastic": (("layer",), np.array([n in stochastic for n in names], dtype=bool)),
        },
        coords={
            "sample": ids,
            "layer": names,
            "layer_i": names,
            "layer_j": names,
            "intervention": idx,
            "patch_y": (("intervention",), (idx // n_w) * sh),
            "patch_x": (("intervention",), (idx % n_w) * sw),
            "class": np.arange(n_classes),
            "channel": np.arange(n_channels),
            "y": np.arange(height),
            "x": np.arange(width),
        },
        attrs={
            "description": "TRACER per-sample analysis (paper 004 §3.3-3.4): CKA between observed layers over "
            "the original and its k×k patch interventions, KL(softmax(g_l(x')) ‖ softmax(g_l(x))) and the sign "
            "of the change at the original's peak unit per layer and intervention",
            "patch_size": kh if kh == kw else [kh, kw],
            "stride": sh if sh == sw else [sh, sw],
            "baseline": float(settings.baseline),
            "baseline_space": "raw (before normalisation)",
            "kernel": settings.kernel,
            "cka_dtype": str(settings.cka_dtype).replace("torch.", ""),
            "height": int(height),
            "width": int(width),
            "n_interventions": int(n_int),
            "stochastic_modules": ", ".join(stochastic),
        },
    )
    out["stochastic"].attrs["description"] = (
        "the observed layer is a stochastic (exogenous) node (paper 004 App. H.2): its output varies across "
        "repeated eval-mode forward passes of the same input while its own input does not; its noise is drawn from "
        "the RNG seeded once per sample, and its CKA and KL include that noise")
    return out
