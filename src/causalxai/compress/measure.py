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

:func:`compress_dataset` builds, retrains and measures the compressed models of the
coverage levels (paper: C1, C2, C3 at 84.6 %, 98.8 %, 100 % coverage) next to the original
model, which is evaluated as given (not retrained); the result is ``compress.nc``.
"""

from __future__ import annotations

import copy
import time
from typing import Any, Sequence

import numpy as np
import torch
import xarray as xr
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from causalxai.compress.build import compression_plan, compress_model, singleton_composition
from causalxai.tracer.mechanisms import coverage_levels, parse_composition
from causalxai.tracer.model import evaluate_classifier, layer_table, train_classifier
from causalxai.runtime import resolve_device

__all__ = ["count_flops", "size_mb", "time_forward", "model_metrics", "compress_dataset", "METRICS"]

#: the per-model numbers :func:`model_metrics` returns, in Table 1's order
METRICS = (
    "n_params", "size_mb", "flops", "macs", "latency_cpu_ms_mean", "latency_cpu_ms_std",
    "latency_gpu_ms_mean", "latency_gpu_ms_std", "test_accuracy", "test_loss",
)


def _device_of(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def count_flops(model: nn.Module, input_shape: Sequence[int]) -> int:
    """FLOPs of one sample's forward pass (eval mode, zero input), 2 per multiply-accumulate."""
    x = torch.zeros((1, *map(int, input_shape)), device=_device_of(model))
    was = model.training
    model.eval()
    try:
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(x)
    finally:
        model.train(was)
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
    was = model.training
    model.eval()
    times = np.empty(int(repeats))
    try:
        with torch.inference_mode():
            for _ in range(int(warmup)):
                model(x)
            sync()
            for r in range(int(repeats)):
                t0 = time.perf_counter()
                model(x)
                sync()
                times[r] = time.perf_counter() - t0
    finally:
        model.train(was)
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
    batch: int = 1,
    threads: int | None = None,
) -> dict[str, Any]:
    """Parameters, size, FLOPs, per-sample latency (CPU and, on a CUDA ``device``, GPU) and
    test accuracy of ``model`` (module docstring). The model is measured on copies and left
    where it was; ``threads`` (if given) is the CPU thread count while timing, restored after."""
    dev = resolve_device(device) if isinstance(device, str) else torch.device(device)
    x_test = torch.as_tensor(x_test, dtype=torch.float32)
    y_test = torch.as_tensor(y_test, dtype=torch.int64)
    if len(x_test) < 1:
        raise ValueError("model_metrics: the test set is empty")
    xb = x_test[: max(1, int(batch))]
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
        out["latency_cpu_ms_mean"], out["latency_cpu_ms_std"] = time_forward(cpu_model, xb, repeats=repeats, warmup=warmup)
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


# ---------------------------------------------------------------------------------------
# the compress step


def _table_strings(shape) -> str:
    return "x".join(str(int(v)) for v in shape) if shape else ""


def compress_dataset(
    original_model: nn.Module,
    mechanisms_ds: xr.Dataset,
    *,
    levels: Sequence[float] | None = None,
    max_models: int = 4,
    tol: float = 0.005,
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    x_test: torch.Tensor,
    y_test: torch.Tensor,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    device: str | torch.device = "auto",
    input_shape: Sequence[int] | None = None,
    latency_repeats: int = 50,
    latency_warmup: int = 10,
    threads: int | None = None,
    progress: bool = False,
) -> tuple[xr.Dataset, dict[str, nn.Module]]:
    """Build, retrain and measure the compressed models of the mechanisms.

    Which mechanisms: with ``levels=None`` (the default) every distinct mechanism, simplest
    first, up to ``max_models``: the paper's construction, whose C1, C2, C3 are its three
    mechanisms in order of complexity (coverages 84.6 %, 98.8 %, 100 % on MNIST; App. E,
    Table 1), so the simplest mechanism always yields the most compressed model whatever
    share of samples it explains; ``level`` then records each one's cumulative coverage.
    With coverage ``levels``, for each level (sorted ascending; named ``C1``, ``C2``, … in that order, so C1 is the
    smallest coverage and usually the fewest nodes) the first mechanism of
    ``mechanisms_ds`` reaching it (:func:`~causalxai.tracer.mechanisms.coverage_levels`
    with ``tol``) is compressed (:func:`~causalxai.compress.build.compress_model`), its
    initial weights drawn after ``torch.manual_seed(seed)``, and trained from scratch with
    :func:`~causalxai.tracer.model.train_classifier` (Adam, ``lr``, ``epochs``,
    ``batch_size``, ``seed``) on the training set. Two levels that reach the same mechanism
    give the same model: it is trained once and the later one records ``duplicate_of``.
    The original model is measured as given.

    Returns ``compress.nc`` and the models by name (``original``, ``C1``, …; eval mode, CPU).
    The dataset has dim ``model`` with ``level``, ``mechanism`` (−1 for the original),
    ``composition``, ``n_nodes``, ``coverage`` (NaN for the original), ``duplicate_of``
    (``""`` if none), every :data:`METRICS` entry, ``compression`` (share of the original's
    parameters removed), ``train_seconds``; ``test_accuracy_curve (model, epoch)`` (NaN for
    the original); the layer table of each model (paper Table 2) on ``(model,
    layer_index)``: ``layer_name``, ``layer_type``, ``layer_output_shape`` (``"32x26x26"``),
    ``layer_params`` (padded with ``""`` and −1), ``n_layers (model)``; and the
    compression plan on ``(model, node)``: ``node_layers``, ``node_modules``,
    ``node_replacement``, ``node_in_shape``, ``node_out_shape``, ``node_params_before``,
    ``node_params_after`` (the original's plan is every observed layer its own node).
    """
    for name in ("composition", "coverage"):
        if name not in mechanisms_ds:
            raise ValueError(f"compress: the mechanisms dataset lacks {name!r}; is it mechanisms.nc?")
    if epochs < 0 or batch_size < 1:
        raise ValueError(f"compress: need epochs >= 0 and batch_size >= 1, got {epochs}, {batch_size}")
    x_train = torch.as_tensor(x_train, dtype=torch.float32)
    x_test = torch.as_tensor(x_test, dtype=torch.float32)
    y_train = torch.as_tensor(y_train, dtype=torch.int64)
    y_test = torch.as_tensor(y_test, dtype=torch.int64)
    input_shape = tuple(int(v) for v in (input_shape if input_shape is not None else x_train.shape[1:]))
    comps = [str(v) for v in np.asarray(mechanisms_ds["composition"].values).tolist()]
    cov = np.asarray(mechanisms_ds["coverage"].values, dtype=float)
    if levels is None:
        if max_models < 1:
            raise ValueError(f"tracer.compress.max_models must be at least 1, got {max_models}")
        picks = list(range(min(len(comps), int(max_models))))
        levels = [float(cov[m]) for m in picks]
    else:
        levels = sorted(float(v) for v in levels)
        if not levels:
            raise ValueError("tracer.compress.levels is empty: give coverage levels or null (every mechanism)")
        picks = coverage_levels(mechanisms_ds, levels, tol=float(tol))
    layers = [n for g in parse_composition(comps[0]) for n in g]
    original = copy.deepcopy(original_model).cpu().eval()

    names = ["original", *[f"C{i}" for i in range(1, len(levels) + 1)]]
    rows: dict[str, dict[str, Any]] = {
        "original": {"level": np.nan, "mechanism": -1, "composition": singleton_composition(layers),
                     "n_nodes": len(layers), "coverage": np.nan, "duplicate_of": "", "train_seconds": np.nan,
                     "curve": []},
    }
    models: dict[str, nn.Module] = {"original": original}
    first_of: dict[int, str] = {}
    measure = dict(x_test=x_test, y_test=y_test, device=device, repeats=latency_repeats, warmup=latency_warmup,
                   threads=threads)
    for name, level, m in zip(names[1:], levels, picks):
        comp = comps[m]
        row = {"level": level, "mechanism": int(m), "composition": comp, "n_nodes": len(parse_composition(comp)),
               "coverage": float(cov[m]), "duplicate_of": first_of.get(m, "")}
        if m in first_of:
            src = first_of[m]
            models[name] = copy.deepcopy(models[src])
            row.update(train_seconds=rows[src]["train_seconds"], curve=list(rows[src]["curve"]))
        else:
            first_of[m] = name
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(seed))
                model = compress_model(original, comp, input_shape)
            t0 = time.perf_counter()
            model, hist = train_classifier(model, x_train, y_train, x_test, y_test, epochs=int(epochs),
                                           batch_size=int(batch_size), seed=int(seed), lr=float(lr), device=device,
                                           progress=progress)
            row.update(train_seconds=time.perf_counter() - t0, curve=list(hist["test_accuracy"]))
            models[name] = model.cpu().eval()
        rows[name] = row

    metrics = {n: model_metrics(models[n], input_shape, **measure) for n in names}
    tables = {n: layer_table(models[n], input_shape) for n in names}
    plans = {n: compression_plan(original, rows[n]["composition"], input_shape) for n in names}

    n_epochs = max((len(r["curve"]) for r in rows.values()), default=0)
    curve = np.full((len(names), n_epochs), np.nan)
    for i, n in enumerate(names):
        curve[i, : len(rows[n]["curve"])] = rows[n]["curve"]
    n_layer = max(len(t) for t in tables.values())
    n_node = max(len(p) for p in plans.values())

    def padded(frames, column, fill, width, fn=lambda v: v):
        out = []
        for n in names:
            vals = [fn(v) for v in frames[n][column].tolist()]
            out.append(vals + [fill] * (width - len(vals)))
        return np.asarray(out, dtype=type(fill) if not isinstance(fill, str) else str)

    n_orig = metrics["original"]["n_params"]
    data: dict[str, tuple] = {
        "level": ("model", np.asarray([rows[n]["level"] for n in names], dtype=float)),
        "mechanism": ("model", np.asarray([rows[n]["mechanism"] for n in names], dtype=np.int64)),
        "composition": ("model", np.asarray([rows[n]["composition"] for n in names], dtype=str)),
        "n_nodes": ("model", np.asarray([rows[n]["n_nodes"] for n in names], dtype=np.int64)),
        "coverage": ("model", np.asarray([rows[n]["coverage"] for n in names], dtype=float)),
        "duplicate_of": ("model", np.asarray([rows[n]["duplicate_of"] for n in names], dtype=str)),
        "train_seconds": ("model", np.asarray([rows[n]["train_seconds"] for n in names], dtype=float)),
    }
    for k in METRICS:
        dtype = np.int64 if k in ("n_params", "flops", "macs") else float
        data[k] = ("model", np.asarray([metrics[n][k] for n in names], dtype=dtype))
    data["compression"] = ("model", 1.0 - data["n_params"][1] / n_orig)
    data["test_accuracy_curve"] = (("model", "epoch"), curve)
    data["n_layers"] = ("model", np.asarray([len(tables[n]) for n in names], dtype=np.int64))
    data["layer_name"] = (("model", "layer_index"), padded(tables, "name", "", n_layer, str))
    data["layer_type"] = (("model", "layer_index"), padded(tables, "type", "", n_layer, str))
    data["layer_output_shape"] = (("model", "layer_index"), padded(tables, "output_shape", "", n_layer, _table_strings))
    data["layer_params"] = (("model", "layer_index"), padded(tables, "params", np.int64(-1), n_layer, int))
    for col, var in [("layers", "node_layers"), ("original_modules", "node_modules"), ("replacement", "node_replacement"),
                     ("in_shape", "node_in_shape"), ("out_shape", "node_out_shape")]:
        data[var] = (("model", "node"), padded(plans, col, "", n_node, str))
    for col in ("params_before", "params_after"):
        data[f"node_{col}"] = (("model", "node"), padded(plans, col, np.int64(-1), n_node, int))

    ds = xr.Dataset(
        data,
        coords={"model": names, "epoch": np.arange(1, n_epochs + 1, dtype=np.int64),
                "layer_index": np.arange(n_layer, dtype=np.int64), "node": np.arange(1, n_node + 1, dtype=np.int64)},
        attrs={
            "description": "the original classifier and its TRACER-compressed versions C1, C2, … (one per coverage "
                           "level, paper 004 §4.3, Tables 1-2): cost, accuracy, layer tables",
            "levels": list(levels), "tol": float(tol), "epochs": int(epochs), "batch_size": int(batch_size),
            "lr": float(lr), "observed_layers": list(layers), "input_shape": list(input_shape),
            "n_train": int(len(y_train)), "n_test": int(len(y_test)), "latency_repeats": int(latency_repeats),
            "latency_warmup": int(latency_warmup), "latency_batch": 1,
            "threads": int(threads) if threads else torch.get_num_threads(),
            "device": str(resolve_device(device) if isinstance(device, str) else device),
        },
    )
    descr = {
        "n_params": "parameters (θ)",
        "size_mb": "bytes of parameters and buffers / 1e6",
        "flops": "FLOPs of one sample's forward (torch FlopCounterMode: 2 per multiply-accumulate, conv and matmul only)",
        "macs": "multiply-accumulates of one sample's forward (flops / 2; paper Table 1's 'FLOPs')",
        "latency_cpu_ms_mean": "per-sample forward latency on the CPU, batch 1, ms (mean over repeats)",
        "latency_gpu_ms_mean": "per-sample forward latency on CUDA, batch 1, ms (NaN without a CUDA device)",
        "test_accuracy": "share of the test split classified correctly",
        "compression": "share of the original model's parameters removed",
        "coverage": "cumulative share of samples explained up to this mechanism",
        "duplicate_of": "the earlier model with the same mechanism (then this one is a copy of it), else ''",
        "layer_params": "parameters of the layer (-1: padding)",
        "node_params_after": "parameters of the node's modules in this model (-1: padding)",
    }
    for k, v in descr.items():
        ds[k].attrs["description"] = v
    return ds, models
