"""Cost and accuracy of the original and the compressed models (paper 004 §4.3, Tables 1-2).

:func:`model_metrics` measures one model the way Table 1 reports it:

* ``n_params``: all parameters (θ).
* ``size_mb``: bytes of all parameters and buffers / 10⁶ (decimal megabytes: Table 1's
  46.8 MB is AlexNet's 11,696,202 float32 parameters, 4 bytes each; the ``state_dict`` on
  disk adds a few kB of pickling overhead and is not counted).
* ``flops``: floating-point operations of one sample's forward pass counted by
  :class:`torch.utils.flop_counter.FlopCounterMode` (batch 1, eval mode). It counts the
  matrix products and convolutions, 2 per multiply-accumulate (a ``Linear(i→o)`` is
  ``2·i·o``), and nothing for element-wise ops (ReLU, pooling, bias). ``macs = flops / 2``:
  Table 1's "FLOPs" column is this count (AlexNet: 46.3 M multiply-accumulates).
* ``latency_cpu_ms_mean/std``: wall time of one forward pass of ``batch`` test samples
  divided by ``batch`` (per-sample latency, ms; Table 1's "Speed"), mean ± std over
  ``repeats`` timed runs after ``warmup`` untimed ones, under ``torch.inference_mode`` in
  eval mode, with ``threads`` CPU threads (default: torch's current setting).
* ``latency_gpu_ms_mean/std``: the same on CUDA (synchronised before and after each run)
  when ``device`` resolves to a CUDA device; NaN otherwise.
* ``test_accuracy``, ``test_loss``: on the given test set, on ``device``.

The compress step (:mod:`causalxai.compress.compress`) measures every model with it.
"""

from __future__ import annotations

import copy
import time
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from causalxai.runtime import eval_mode, model_device, resolve_device
from causalxai.tracer.model import evaluate_classifier

__all__ = ["predict", "count_flops", "size_mb", "time_forward", "model_metrics", "METRICS", "LATENCY_BATCH"]

#: test samples per timed forward pass (Table 1's per-sample latency)
LATENCY_BATCH = 1

#: the per-model numbers :func:`model_metrics` returns, in Table 1's order
METRICS = (
    "n_params", "size_mb", "flops", "macs", "latency_cpu_ms_mean", "latency_cpu_ms_std",
    "latency_gpu_ms_mean", "latency_gpu_ms_std", "test_accuracy", "test_loss",
)


def predict(model: nn.Module, x: torch.Tensor, *, batch_size: int = 1024) -> np.ndarray:
    """Predicted class of every input (argmax of the logits; eval mode, no grad, the model's device)."""
    dev = model_device(model)
    out = []
    with eval_mode(model), torch.no_grad():
        for i in range(0, len(x), batch_size):
            out.append(model(torch.as_tensor(x[i: i + batch_size], dtype=torch.float32).to(dev)).argmax(1).cpu())
    return torch.cat(out).numpy() if out else np.zeros(0, dtype=np.int64)


def count_flops(model: nn.Module, input_shape: Sequence[int]) -> int:
    """FLOPs of one sample's forward pass (eval mode, zero input), 2 per multiply-accumulate."""
    x = torch.zeros((1, *map(int, input_shape)), device=model_device(model))
    with eval_mode(model), FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    return int(counter.get_total_flops())


def size_mb(model: nn.Module) -> float:
    """Bytes of all parameters and buffers / 10⁶."""
    return float(sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()]) / 1e6)


def time_forward(model: nn.Module, x: torch.Tensor, *, repeats: int = 50, warmup: int = 10) -> tuple[float, float]:
    """Per-sample latency in ms (mean, std over ``repeats`` runs) of ``model(x)`` on ``x``'s
    device; ``len(x)`` samples per run. CUDA runs are synchronised before and after."""
    if repeats < 1 or warmup < 0:
        raise ValueError(f"time_forward: need repeats >= 1 and warmup >= 0, got {repeats}, {warmup}")
    cuda = x.device.type == "cuda"
    sync = (lambda: torch.cuda.synchronize(x.device)) if cuda else (lambda: None)
    times = np.empty(int(repeats))
    with eval_mode(model), torch.inference_mode():
        for _ in range(int(warmup)):
            model(x)
        sync()
        for r in range(int(repeats)):
            t0 = time.perf_counter()
            model(x)
            sync()
            times[r] = time.perf_counter() - t0
    per_sample = times * 1e3 / len(x)
    return float(per_sample.mean()), float(per_sample.std(ddof=1)) if repeats > 1 else 0.0


def model_metrics(
    model: nn.Module,
    input_shape: Sequence[int],
    *,
    x_test: torch.Tensor,
    y_test: torch.Tensor,
    device: str | torch.device = "auto",
    repeats: int = 50,
    warmup: int = 10,
    threads: int | None = None,
) -> dict[str, Any]:
    """Parameters, size, FLOPs, per-sample latency (CPU and, on a CUDA ``device``, GPU) and
    test accuracy of ``model`` (module docstring).

    Args:
        model: the classifier, measured on copies and left where it was.
        input_shape: one sample's shape.
        x_test, y_test: the test set (accuracy, loss; its first sample is timed).
        device: where the accuracy is measured, and the GPU latency on a CUDA device.
        repeats, warmup: timed and untimed forward passes.
        threads: CPU threads while timing (restored after; None: torch's current setting).

    Returns:
        ``{metric: value}`` for every :data:`METRICS` entry.
    """
    dev = resolve_device(device) if isinstance(device, str) else torch.device(device)
    x_test = torch.as_tensor(x_test, dtype=torch.float32)
    y_test = torch.as_tensor(y_test, dtype=torch.int64)
    if len(x_test) < 1:
        raise ValueError("model_metrics: the test set is empty")
    xb = x_test[:LATENCY_BATCH]
    cpu_model = copy.deepcopy(model).cpu().eval()
    out: dict[str, Any] = {
        "n_params": int(sum(p.numel() for p in model.parameters())),
        "size_mb": size_mb(model),
        "flops": count_flops(cpu_model, input_shape),
    }
    out["macs"] = out["flops"] // 2
    old_threads = torch.get_num_threads()
    try:
        if threads:
            torch.set_num_threads(int(threads))
        out["latency_cpu_ms_mean"], out["latency_cpu_ms_std"] = time_forward(cpu_model, xb, repeats=repeats,
                                                                             warmup=warmup)
    finally:
        torch.set_num_threads(old_threads)
    if dev.type == "cuda":
        gpu_model = copy.deepcopy(cpu_model).to(dev)
        out["latency_gpu_ms_mean"], out["latency_gpu_ms_std"] = time_forward(gpu_model, xb.to(dev), repeats=repeats,
                                                                              warmup=warmup)
        eval_model = gpu_model
    else:
        out["latency_gpu_ms_mean"] = out["latency_gpu_ms_std"] = float("nan")
        eval_model = cpu_model
    out["test_loss"], out["test_accuracy"] = evaluate_classifier(eval_model, x_test, y_test, device=dev)
    return {k: out[k] for k in METRICS}
