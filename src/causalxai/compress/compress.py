"""The compress step (rule ``compress``): compressed models from TRACER's global mechanisms,
retrained from scratch and measured next to the original (paper 004 §4.3, Tables 1-2).

:func:`compress_dataset` runs four steps, each a function of its own:

1. :func:`select_mechanisms`: which mechanisms become models. With ``levels=None`` (the
   default) every distinct mechanism, simplest first, up to ``max_models``: the paper's
   construction, whose C1, C2, C3 are its three mechanisms in order of complexity (coverages
   84.6 %, 98.8 %, 100 % on MNIST; App. E, Table 1), so the simplest mechanism always yields
   the most compressed model whatever share of samples it explains; ``level`` then records
   each one's cumulative coverage. With coverage ``levels``, for each level (sorted
   ascending; named ``C1``, ``C2``, … in that order, so C1 is the smallest coverage and
   usually the fewest nodes) the first mechanism reaching it
   (:func:`~causalxai.tracer.mechanisms.coverage_levels` with ``tol``).
2. :func:`build_model`: the mechanism's compressed model
   (:func:`~causalxai.compress.build.compress_model`), its initial weights drawn after
   ``torch.manual_seed(seed)``.
3. retraining from scratch with the target model's training loop
   (:func:`~causalxai.tracer.model.train_classifier`: Adam, ``lr``, ``epochs``,
   ``batch_size``, ``seed``) on the training set. Two levels that reach the same mechanism
   give the same model: it is trained once and the later one records ``duplicate_of``. The
   original model is measured as given (not retrained).
4. :func:`measure_models`: :func:`~causalxai.compress.measure.model_metrics`, the layer
   table (Table 2) and the compression plan of every model.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import xarray as xr
from torch import nn

from causalxai.compress.build import (
    compress_model,
    compression_plan,
    singleton_composition,
)
from causalxai.compress.measure import LATENCY_BATCH, METRICS, model_metrics
from causalxai.io import describe
from causalxai.progress import Progress
from causalxai.runtime import resolve_device
from causalxai.tracer.mechanisms import coverage_levels, parse_composition
from causalxai.tracer.model import layer_table, train_classifier
from causalxai.tracer.settings import ClassifierSettings, Settings, integer, number, setting

__all__ = ["CompressSettings", "build_model", "compress_dataset", "measure_models", "select_mechanisms"]


def _levels(value: Any) -> tuple[float, ...] | None:
    if value is None:
        return None
    if isinstance(value, str) or not len(value):
        raise ValueError("must be a non-empty list of coverage levels in (0, 1], or null (every mechanism)")
    out = tuple(number(0.0, 1.0)(v) for v in value)
    if min(out) <= 0.0:
        raise ValueError("must be a non-empty list of coverage levels in (0, 1], or null (every mechanism)")
    return out


@dataclass(frozen=True)
class CompressSettings(Settings):
    """The compress step's settings (module docstring; ``tracer.compress``).

    Attributes:
        levels: coverage levels in (0, 1], or None: every mechanism, simplest first.
        max_models: the most mechanisms compressed with ``levels=None``.
        tol: shortfall of coverage still accepted for a level.
        epochs, batch_size, lr: the retraining (Adam).
        seed: the initial weights' and the retraining's seed.
        latency_repeats, latency_warmup: timed and untimed forward passes per model.
    """

    SECTION: ClassVar[str] = "tracer.compress"
    CONFIG_KEYS: ClassVar[Mapping[str, str]] = {"seed": "seed"}

    levels: Sequence[float] | None = setting(None, _levels)
    max_models: int = setting(4, integer(1))
    tol: float = setting(0.005, number(0.0, 1.0))
    epochs: int = setting(10, integer(0))
    batch_size: int = setting(64, integer(1))
    lr: float = setting(1e-3, number(0.0))
    seed: int = setting(0, integer(0))
    latency_repeats: int = setting(50, integer(1))
    latency_warmup: int = setting(10, integer(0))

    @property
    def training(self) -> ClassifierSettings:
        """The retraining's :class:`~causalxai.tracer.settings.ClassifierSettings`."""
        return ClassifierSettings(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, seed=self.seed)



def select_mechanisms(mechanisms_ds: xr.Dataset, settings: CompressSettings) -> tuple[list[float], list[int]]:
    """Step 1 (module docstring): the levels and the mechanism index of each model ``C1, C2, …``.

    Args:
        mechanisms_ds: ``mechanisms.nc`` (needs ``composition`` and ``coverage``).
        settings: ``levels``, ``max_models`` and ``tol``.

    Returns:
        ``(levels, picks)``: the coverage level of each model (sorted ascending; with
        ``levels=None`` each mechanism's own coverage) and the mechanism it compresses.
    """
    for name in ("composition", "coverage"):
        if name not in mechanisms_ds:
            raise ValueError(f"compress: the mechanisms dataset lacks {name!r}; is it mechanisms.nc?")
    cov = np.asarray(mechanisms_ds["coverage"].values, dtype=float)
    if settings.levels is None:
        picks = list(range(min(len(cov), settings.max_models)))
        return [float(cov[m]) for m in picks], picks
    levels = sorted(settings.levels)
    return levels, coverage_levels(mechanisms_ds, levels, tol=settings.tol)


def build_model(original: nn.Module, composition: str, input_shape: Sequence[int], seed: int) -> nn.Module:
    """Step 2: the compressed model of ``composition``, its initial weights drawn after
    ``torch.manual_seed(seed)`` inside a forked RNG (the caller's RNG is left alone)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return compress_model(original, composition, input_shape)


def measure_models(
    models: Mapping[str, nn.Module],
    compositions: Mapping[str, str],
    original: nn.Module,
    test: tuple[torch.Tensor, torch.Tensor],
    settings: CompressSettings,
    *,
    device: str | torch.device = "auto",
    threads: int | None = None,
) -> dict[str, dict[str, Any]]:
    """Step 4: per model its :func:`~causalxai.compress.measure.model_metrics` (``metrics``),
    layer table (``table``, paper Table 2) and compression plan of ``original`` (``plan``).

    Args:
        models: the models by name.
        compositions: each model's composition (the plan's node layout).
        original: the model the plans refer to.
        test: ``(x_test, y_test)``.
        settings: ``latency_repeats`` and ``latency_warmup``.
        device, threads: of :func:`~causalxai.compress.measure.model_metrics`.

    Returns:
        ``{name: {"metrics": dict, "table": DataFrame, "plan": DataFrame}}``.
    """
    input_shape = tuple(int(v) for v in test[0].shape[1:])
    out = {}
    for name, model in models.items():
        out[name] = {
            "metrics": model_metrics(model, input_shape, x_test=test[0], y_test=test[1], device=device,
                                     repeats=settings.latency_repeats, warmup=settings.latency_warmup, threads=threads),
            "table": layer_table(model, input_shape),
            "plan": compression_plan(original, compositions[name], input_shape),
        }
    return out


def _table_strings(shape) -> str:
    return "x".join(str(int(v)) for v in shape) if shape else ""


def compress_dataset(
    original_model: nn.Module,
    mechanisms_ds: xr.Dataset,
    train: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
    settings: CompressSettings,
    *,
    device: str | torch.device = "auto",
    threads: int | None = None,
    progress: bool = False,
) -> tuple[xr.Dataset, dict[str, nn.Module]]:
    """Select, build, retrain and measure the compressed models of the mechanisms (module docstring).

    Args:
        original_model: the target model (measured as given).
        mechanisms_ds: ``mechanisms.nc``.
        train: ``(x_train, y_train)`` of the retraining.
        test: ``(x_test, y_test)`` of the measurements.
        settings: :class:`CompressSettings`.
        device: where to retrain and measure.
        threads: CPU threads while timing.
        progress: log the models retrained at a steady rate.

    Returns ``compress.nc`` and the models by name (``original``, ``C1``, …; eval mode, CPU).
    The dataset has dim ``model`` with ``level``, ``mechanism`` (−1 for the original),
    ``composition``, ``n_nodes``, ``coverage`` (NaN for the original), ``duplicate_of``
    (``""`` if none), every :data:`~causalxai.compress.measure.METRICS` entry,
    ``compression`` (share of the original's parameters removed), ``train_seconds``;
    ``test_accuracy_curve (model, epoch)`` (NaN for the original); the layer table of each
    model (paper Table 2) on ``(model, layer_index)``: ``layer_name``, ``layer_type``,
    ``layer_output_shape`` (``"32x26x26"``), ``layer_params`` (padded with ``""`` and −1),
    ``n_layers (model)``; and the compression plan on ``(model, node)``: ``node_layers``,
    ``node_modules``, ``node_replacement``, ``node_in_shape``, ``node_out_shape``,
    ``node_params_before``, ``node_params_after`` (the original's plan is every observed layer
    its own node).
    """
    levels, picks = select_mechanisms(mechanisms_ds, settings)
    x_train = torch.as_tensor(train[0], dtype=torch.float32)
    y_train = torch.as_tensor(train[1], dtype=torch.int64)
    test = (torch.as_tensor(test[0], dtype=torch.float32), torch.as_tensor(test[1], dtype=torch.int64))
    input_shape = tuple(int(v) for v in x_train.shape[1:])
    comps = [str(v) for v in np.asarray(mechanisms_ds["composition"].values).tolist()]
    cov = np.asarray(mechanisms_ds["coverage"].values, dtype=float)
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
    counter = Progress(len(levels), "compress", "models retrained", interval=0.0, enabled=progress)
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
            model = build_model(original, comp, input_shape, settings.seed)
            t0 = time.perf_counter()
            model, hist = train_classifier(model, x_train, y_train, test[0], test[1], settings.training, device=device,
                                           progress=f"compress {name}" if progress else None)
            row.update(train_seconds=time.perf_counter() - t0, curve=list(hist["test_accuracy"]))
            models[name] = model.cpu().eval()
        rows[name] = row
        counter.update(note=f"{name} ({comp})")

    measured = measure_models(models, {n: rows[n]["composition"] for n in names}, original, test, settings,
                              device=device, threads=threads)
    ds = _compress_ds(names, rows, measured, levels=levels, layers=layers, input_shape=input_shape,
                      n_train=len(y_train), n_test=len(test[1]), settings=settings, threads=threads, device=device)
    return ds, models


def _compress_ds(names, rows, measured, *, levels, layers, input_shape, n_train, n_test, settings, threads,
                 device) -> xr.Dataset:
    metrics = {n: measured[n]["metrics"] for n in names}
    tables = {n: measured[n]["table"] for n in names}
    plans = {n: measured[n]["plan"] for n in names}
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
    for col, var in [("layers", "node_layers"), ("original_modules", "node_modules"),
                     ("replacement", "node_replacement"), ("in_shape", "node_in_shape"),
                     ("out_shape", "node_out_shape")]:
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
            "levels": list(levels), "tol": float(settings.tol), "epochs": int(settings.epochs),
            "batch_size": int(settings.batch_size), "lr": float(settings.lr), "observed_layers": list(layers),
            "input_shape": list(input_shape), "n_train": int(n_train), "n_test": int(n_test),
            "latency_repeats": int(settings.latency_repeats), "latency_warmup": int(settings.latency_warmup),
            "latency_batch": LATENCY_BATCH,
            "threads": int(threads) if threads else torch.get_num_threads(),
            "device": str(resolve_device(device) if isinstance(device, str) else device),
        },
    )
    descr = {
        "n_params": "parameters (θ)",
        "size_mb": "bytes of parameters and buffers / 1e6",
        "flops": "FLOPs of one sample's forward (torch FlopCounterMode: 2 per multiply-accumulate, "
                 "conv and matmul only)",
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
    return describe(ds, descr)
