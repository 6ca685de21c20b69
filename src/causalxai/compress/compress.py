"""The compress step (rule ``compress``): compressed models from TRACER's global mechanisms,
retrained from scratch over seeds and measured next to the original, matched controls and the
paper's own models (paper 004 §4.3, Tables 1-2; issue 16).

:func:`compress_dataset` runs these steps:

1. :func:`select_mechanisms`: which mechanisms become models. With coverage ``levels`` (the
   default: the paper's 0.85, 0.99, 1.0), for each level (sorted ascending; named ``C1``,
   ``C2``, … in that order) the first mechanism reaching it
   (:func:`~causalxai.tracer.mechanisms.coverage_levels` with ``tol``). With ``levels=None``
   every distinct mechanism, simplest first, up to ``max_models``; ``level`` then records each
   one's cumulative coverage.
2. :func:`build_model`: the mechanism's compressed model
   (:func:`~causalxai.compress.build.compress_model`), its initial weights drawn after
   ``torch.manual_seed(seed)``.
3. the controls of every distinct TRACER model (:mod:`causalxai.compress.controls`):
   ``random_partitions`` random contiguous partitions with the same number of nodes, not a
   mechanism TRACER found, parameters within ``±budget`` (``C1_rand1``, …), and the mechanism
   of a random-weight copy of the target with the same (or the nearest) node count
   (``C1_rw``; given as ``random_mechanisms``); then the paper's Table 2 models
   (:mod:`causalxai.compress.paper_table2`, ``paper_C1`` …) when ``paper_table2`` and the
   input is 1×28×28 with 10 classes.
4. retraining from scratch with the target model's training loop
   (:func:`~causalxai.tracer.model.train_classifier`: Adam, ``lr``, ``epochs``,
   ``batch_size``) once per seed ``seed, seed + 1, …, seed + seeds − 1`` (initial weights and
   batches). Two models of the same partition give the same weights: the partition is trained
   once and the later model records ``duplicate_of``. The original is measured as given.
5. statistics (:mod:`causalxai.compress.stats`): each model's accuracy mean ± std over the
   seeds, an exact McNemar test of each seed's model against the original on the test split,
   Welch's t of each TRACER model's seeds against each of its controls'.
6. the Theorem 1 check without retraining (:func:`~causalxai.compress.distill.distill_nodes`):
   each multi-layer node of a TRACER model fitted by distillation and swapped into the original.
7. :func:`measure_models`: :func:`~causalxai.compress.measure.model_metrics`, the layer
   table (Table 2) and the compression plan of seed 0's model.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
import xarray as xr
from torch import nn

from causalxai.checks import require_informative
from causalxai.compress.build import (
    compress_model,
    compression_plan,
    singleton_composition,
)
from causalxai.compress.controls import match_by_nodes, partition_params, random_partitions
from causalxai.compress.distill import distill_nodes
from causalxai.compress.measure import LATENCY_BATCH, METRICS, count_flops, model_metrics, predict
from causalxai.compress.paper_table2 import PAPER_TABLE2, applies, paper_table2_models
from causalxai.compress.stats import mcnemar_exact, welch_comparison
from causalxai.io import describe
from causalxai.progress import Progress
from causalxai.runtime import process_map, resolve_device
from causalxai.tracer.mechanisms import coverage_levels, parse_composition
from causalxai.tracer.model import layer_table, train_classifier
from causalxai.tracer.settings import ClassifierSettings, Settings, integer, number, setting

log = logging.getLogger(__name__)

__all__ = [
    "CompressSettings", "build_model", "compress_dataset", "compress_table", "measure_models", "select_mechanisms",
]


def _levels(value: Any) -> tuple[float, ...] | None:
    if value is None:
        return None
    if isinstance(value, str) or not len(value):
        raise ValueError("must be a non-empty list of coverage levels in (0, 1], or null (every mechanism)")
    out = tuple(number(0.0, 1.0)(v) for v in value)
    if min(out) <= 0.0:
        raise ValueError("must be a non-empty list of coverage levels in (0, 1], or null (every mechanism)")
    return out


def _flag(value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"must be true or false, got {value!r}")
    return bool(value)


@dataclass(frozen=True)
class CompressSettings(Settings):
    """The compress step's settings (module docstring; ``tracer.compress``).

    Attributes:
        levels: coverage levels in (0, 1] (default the paper's 0.85, 0.99, 1.0), or None:
            every mechanism, simplest first.
        max_models: the most mechanisms compressed with ``levels=None``.
        tol: shortfall of coverage still accepted for a level.
        epochs, batch_size, lr: the retraining (Adam).
        seed: the initial weights' and the retraining's seed (seed ``s`` of ``seeds`` is ``seed + s``).
        latency_repeats, latency_warmup: timed and untimed forward passes per model.
        seeds: retrainings of every model (TRACER's, controls, the paper's), seeds ``seed … seed + seeds − 1``.
        random_partitions: random contiguous partitions per TRACER model (0: none).
        budget: a random partition's parameters within ``±budget`` of the TRACER model's.
        random_weights: add the matched mechanism of a random-weight copy of the target.
        random_weights_samples: samples the random-weight copy is analysed on (the first of TRACER's).
        paper_table2: add the paper's Table 2 models C1-C3 (1×28×28 inputs, 10 classes only).
        distill_epochs, distill_lr: the distillation check of Theorem 1 (Adam; 0 epochs: unfitted layers).
    """

    SECTION: ClassVar[str] = "tracer.compress"
    CONFIG_KEYS: ClassVar[Mapping[str, str]] = {"seed": "seed"}

    levels: Sequence[float] | None = setting((0.85, 0.99, 1.0), _levels)
    max_models: int = setting(4, integer(1))
    tol: float = setting(0.005, number(0.0, 1.0))
    epochs: int = setting(10, integer(0))
    batch_size: int = setting(64, integer(1))
    lr: float = setting(1e-3, number(0.0))
    seed: int = setting(0, integer(0))
    latency_repeats: int = setting(50, integer(1))
    latency_warmup: int = setting(10, integer(0))
    seeds: int = setting(3, integer(1))
    random_partitions: int = setting(1, integer(0))
    budget: float = setting(0.25, number(0.0))
    random_weights: bool = setting(True, _flag)
    random_weights_samples: int = setting(20, integer(1))
    paper_table2: bool = setting(True, _flag)
    distill_epochs: int = setting(5, integer(0))
    distill_lr: float = setting(1e-3, number(0.0))

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
        compositions: each model's composition (the plan's node layout; ``""``: no plan).
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
            "plan": (compression_plan(original, compositions[name], input_shape) if compositions[name]
                     else pd.DataFrame({c: [] for c in _PLAN_COLUMNS})),
        }
    return out


_PLAN_COLUMNS = ("node", "layers", "n_layers", "kept", "original_modules", "replacement", "in_shape", "out_shape",
                 "params_before", "params_after")


def _table_strings(shape) -> str:
    return "x".join(str(int(v)) for v in shape) if shape else ""


@dataclass
class _Entry:
    """One model of the table: how to build it, what it is, and (after training) its results."""

    name: str
    kind: str  # original | tracer | random_partition | random_weights | paper_table2
    composition: str = ""
    control_of: str = ""
    mechanism: int = -1
    level: float = float("nan")
    coverage: float = float("nan")
    duplicate_of: str = ""
    build: Any = None  # seed -> nn.Module
    accuracies: list[float] = field(default_factory=list)
    correct: list[np.ndarray] = field(default_factory=list)
    curve: list[float] = field(default_factory=list)
    train_seconds: float = float("nan")
    model: nn.Module | None = None


def _paper_model(n_classes: int, dropout: float, name: str) -> nn.Module:
    """The paper's Table 2 model ``name`` (a picklable build, unlike a lambda)."""
    return paper_table2_models(n_classes, dropout)[name]


def _train_seed(data: tuple, task: tuple) -> tuple[nn.Module | None, np.ndarray, list[float], float]:
    """Build one model of the table with the seed's draws, train it with that seed and predict the
    test set (a :func:`~causalxai.runtime.process_map` worker: the global random generator, which
    the build and dropout use, is the worker's own; ``data`` = training and test set, sent to each
    worker once). Returns the trained model (seed 0 only, else None), its correct test
    predictions, its test accuracy per epoch and the seconds it took."""
    x_train, y_train, test = data
    build, training, seed, keep, device, name = task
    t0 = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        model = build()
    model, hist = train_classifier(model, x_train, y_train, test[0], test[1], dataclasses.replace(training, seed=seed),
                                   device=device, progress=name)
    model = model.cpu().eval()
    correct = predict(model, test[0]) == test[1].numpy()
    return (model if keep else None), correct, list(hist["test_accuracy"]), time.perf_counter() - t0


def _train_entries(entries: list[_Entry], x_train, y_train, test, settings: CompressSettings, *, device,
                   progress: Progress) -> None:
    """Retrain every entry over ``settings.seeds`` seeds (``seed``, ``seed + 1``, …; seed 0's model
    is kept): all (entry, seed) trainings at once on the CPU, one process and intra-op thread each
    (:func:`~causalxai.runtime.process_map`), so the numbers do not depend on the thread count; the
    dearest models (forward FLOPs) start first."""
    dev = resolve_device(device) if isinstance(device, str) else torch.device(device)
    jobs = [(e, s) for e in entries for s in range(settings.seeds)]
    tasks = [(e.build, settings.training, settings.seed + s, s == 0, str(dev),
              f"compress {e.name} seed {settings.seed + s}" if progress.enabled else None) for e, s in jobs]
    flops = {}
    for e in entries:
        with torch.random.fork_rng(devices=[]):
            flops[e.name] = count_flops(e.build(), tuple(x_train.shape[1:]))
    seconds: dict[str, float] = {}
    results = process_map(_train_seed, tasks, dev, shared=(x_train, y_train, test),
                          cost=[flops[e.name] for e, _ in jobs])
    for (e, s), (model, correct, curve, took) in zip(jobs, results):
        e.correct.append(correct)
        e.accuracies.append(float(correct.mean()))
        seconds[e.name] = seconds.get(e.name, 0.0) + took
        if s == 0:
            e.model, e.curve = model, curve
        if s == settings.seeds - 1:
            e.train_seconds = seconds[e.name] / max(settings.seeds, 1)
            progress.update(note=f"{e.name} ({e.kind}: {e.composition or 'paper Table 2'})")


def _controls(entries: list[_Entry], original: nn.Module, layers: list[str], input_shape, excluded: list[str],
              random_mechanisms: xr.Dataset | None, settings: CompressSettings, notes: list[str]) -> list[_Entry]:
    """The matched controls of every distinct TRACER model (module docstring, step 3)."""
    out: list[_Entry] = []
    tracer = [e for e in entries if e.kind == "tracer" and not e.duplicate_of]
    for k, e in enumerate(tracer):
        n_nodes = len(parse_composition(e.composition))
        target = partition_params(original, [e.composition], input_shape)[0]
        comps = random_partitions(original, layers, input_shape, n_nodes=n_nodes, target_params=target,
                                  exclude=excluded, n_draws=settings.random_partitions, budget=settings.budget,
                                  seed=settings.seed + k)
        if len(comps) < settings.random_partitions:
            notes.append(f"{e.name}: {len(comps)} of {settings.random_partitions} random contiguous partitions of "
                         f"{n_nodes} nodes within ±{settings.budget:.0%} of {target:,} parameters exist")
        for j, comp in enumerate(comps, start=1):
            out.append(_Entry(f"{e.name}_rand{j}", "random_partition", comp, control_of=e.name,
                              build=functools.partial(compress_model, original, comp, input_shape)))
        if random_mechanisms is not None:
            m = match_by_nodes(n_nodes, random_mechanisms)
            comp = str(random_mechanisms["composition"].values[m])
            got = len(parse_composition(comp))
            if got != n_nodes:
                notes.append(f"{e.name}: the random-weight copy has no mechanism of {n_nodes} nodes; matched its "
                             f"mechanism {m} of {got} nodes")
            out.append(_Entry(f"{e.name}_rw", "random_weights", comp, control_of=e.name, mechanism=m,
                              coverage=float(random_mechanisms["coverage"].values[m]),
                              build=functools.partial(compress_model, original, comp, input_shape)))
    return out


def compress_dataset(
    original_model: nn.Module,
    mechanisms_ds: xr.Dataset,
    train: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
    settings: CompressSettings,
    *,
    random_mechanisms: xr.Dataset | None = None,
    dropout: float = 0.5,
    device: str | torch.device = "auto",
    threads: int | None = None,
    progress: bool = False,
) -> tuple[xr.Dataset, dict[str, nn.Module]]:
    """Select, build, retrain over seeds and measure the compressed models of the mechanisms,
    their matched controls and the paper's Table 2 models (module docstring).

    Args:
        original_model: the target model (measured as given).
        mechanisms_ds: ``mechanisms.nc``.
        train: ``(x_train, y_train)`` of the retraining.
        test: ``(x_test, y_test)`` of the measurements.
        settings: :class:`CompressSettings`.
        random_mechanisms: the mechanisms of a random-weight copy of the target
            (:func:`~causalxai.compress.controls.random_weight_mechanisms`); None: no such control.
        dropout: the Dropout of the paper's Table 2 models (the target model's).
        device: where to retrain and measure.
        threads: CPU threads while timing.
        progress: log the models retrained at a steady rate.

    Returns ``compress.nc`` and seed 0's models by name (``original``, ``C1``, …, controls
    ``C1_rand1``, ``C1_rw``, and ``paper_C1`` …; eval mode, CPU).
    The dataset has dim ``model`` with ``kind`` (original, tracer, random_partition,
    random_weights, paper_table2), ``control_of`` (the TRACER model a control is matched to,
    else ``""``), ``level``, ``mechanism`` (index among TRACER's mechanisms, or among the
    random-weight copy's for ``random_weights``; −1 otherwise), ``composition`` (``""`` for
    the paper's models), ``n_nodes``, ``coverage`` (NaN where none), ``duplicate_of``
    (``""`` if none), every :data:`~causalxai.compress.measure.METRICS` entry of seed 0's
    model, ``compression`` (share of the original's parameters removed), ``train_seconds``
    (per seed); dim ``seed``: ``seed_accuracy (model, seed)``, ``mcnemar_b``, ``mcnemar_c``,
    ``mcnemar_p (model, seed)`` against the original (the original: its accuracy at seed 0
    only, b = c = 0, p = 1); ``accuracy_mean``, ``accuracy_std`` (ddof 1; 0 for one seed),
    ``n_seeds``; for controls ``tracer_minus_control`` and ``welch_t``, ``welch_df``,
    ``welch_p`` (the TRACER model's seeds against the control's);
    ``test_accuracy_curve (model, epoch)`` (seed 0; NaN for the original); the distillation
    check (:func:`~causalxai.compress.distill.distill_nodes`, TRACER models only, else NaN):
    ``distill_mse``, ``distill_r2``, ``distill_accuracy (model, node)`` and
    ``distill_accuracy_all (model)``; the layer table of each model (paper Table 2) on
    ``(model, layer_index)``: ``layer_name``, ``layer_type``, ``layer_output_shape``
    (``"32x26x26"``), ``layer_params`` (padded with ``""`` and −1), ``n_layers (model)``; and
    the compression plan on ``(model, node)``: ``node_layers``, ``node_modules``,
    ``node_replacement``, ``node_in_shape``, ``node_out_shape``, ``node_params_before``,
    ``node_params_after`` (the original's plan is every observed layer its own node; the
    paper's models have none). ``attrs["notes"]`` lists the controls that could not be matched
    as asked.

    Raises:
        causalxai.checks.DegenerateResultError: ``seed_accuracy`` is NaN for every model and
            seed (nothing measured: an empty test split). A result where every TRACER model
            keeps all of the original's parameters (``compression`` 0: every causal node a
            single layer) is flagged: a warning and ``attrs["degenerate"]``.
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
    notes: list[str] = []

    orig_correct = predict(original, test[0]) == test[1].numpy()
    entries = [_Entry("original", "original", singleton_composition(layers), model=original,
                      accuracies=[float(orig_correct.mean())], correct=[orig_correct])]
    first_of: dict[int, str] = {}
    for i, (level, m) in enumerate(zip(levels, picks), start=1):
        e = _Entry(f"C{i}", "tracer", comps[m], mechanism=int(m), level=float(level), coverage=float(cov[m]),
                   duplicate_of=first_of.get(m, ""),
                   build=functools.partial(compress_model, original, comps[m], input_shape))
        first_of.setdefault(m, e.name)
        entries.append(e)
    entries += _controls(entries, original, layers, input_shape, comps, random_mechanisms, settings, notes)
    if settings.paper_table2:
        n_classes = int(original(torch.zeros((1, *input_shape))).shape[1])
        if applies(input_shape, n_classes):
            for name in PAPER_TABLE2:
                entries.append(_Entry(f"paper_{name}", "paper_table2",
                                      build=functools.partial(_paper_model, n_classes, dropout, name)))
        else:
            notes.append(f"paper_table2 skipped: its models take 1x28x28 inputs and 10 classes, not "
                         f"{'x'.join(map(str, input_shape))} and {n_classes}")

    trained: dict[tuple[str, str], _Entry] = {}
    copies: list[tuple[_Entry, _Entry]] = []
    for e in (e for e in entries if e.kind != "original"):
        key = (e.kind == "paper_table2" and e.name or "", e.composition)
        if key in trained:  # the same partition again: the same seeds give the same models
            copies.append((e, trained[key]))
        else:
            trained[key] = e
    counter = Progress(len(trained), "compress", "models retrained", interval=0.0, enabled=progress)
    _train_entries(list(trained.values()), x_train, y_train, test, settings, device=device, progress=counter)
    for e, src in copies:
        e.duplicate_of = e.duplicate_of or src.name
        e.model = copy.deepcopy(src.model)
        e.accuracies, e.correct, e.curve = src.accuracies, src.correct, src.curve
        e.train_seconds = src.train_seconds

    distilled: dict[str, dict[str, Any]] = {}
    for e in entries:
        if e.kind == "tracer" and not e.duplicate_of:
            distilled[e.name] = distill_nodes(original, e.composition, x_train, test[0], test[1],
                                              epochs=settings.distill_epochs, batch_size=settings.batch_size,
                                              lr=settings.distill_lr, seed=settings.seed, device=device)
        elif e.kind == "tracer":
            distilled[e.name] = distilled[e.duplicate_of]

    models = {e.name: e.model for e in entries}
    measured = measure_models(models, {e.name: e.composition if e.kind != "paper_table2" else "" for e in entries},
                              original, test, settings, device=device, threads=threads)
    ds = _compress_ds(entries, measured, distilled, levels=levels, layers=layers, input_shape=input_shape,
                      n_train=len(y_train), n_test=len(test[1]), settings=settings, threads=threads, device=device)
    ds.attrs["notes"] = list(notes) if notes else [""]
    _check_compressed(ds)
    return ds, models


def _check_compressed(ds: xr.Dataset) -> None:
    """The checks of :func:`compress_dataset`'s Raises."""
    require_informative(
        ds["seed_accuracy"], "seed_accuracy (every model and seed)", "compress",
        causes=f"no test sample to measure on ({ds.attrs.get('n_test', '?')} test samples)",
        fix="give the data set a test split (data.test_fraction)", constant=False,
    )
    tracer = np.asarray(ds["kind"].values) == "tracer"
    if tracer.any() and bool((np.asarray(ds["compression"].values)[tracer] <= 0).all()):
        text = ("compress: every TRACER model keeps all of the original's parameters (compression 0): every causal "
                "node of the chosen mechanisms is a single layer, so nothing was compressed. Likely causes: "
                "tracer.cka.eps too small, or tracer.layers that observe too few layers")
        log.warning("%s", text)
        ds.attrs["degenerate"] = text


def _compress_ds(entries, measured, distilled, *, levels, layers, input_shape, n_train, n_test, settings, threads,
                 device) -> xr.Dataset:
    names = [e.name for e in entries]
    metrics = {n: measured[n]["metrics"] for n in names}
    tables = {n: measured[n]["table"] for n in names}
    plans = {n: measured[n]["plan"] for n in names}
    n_epochs = max((len(e.curve) for e in entries), default=0)
    curve = np.full((len(names), n_epochs), np.nan)
    for i, e in enumerate(entries):
        curve[i, : len(e.curve)] = e.curve
    n_seed = max(settings.seeds, 1)
    acc = np.full((len(names), n_seed), np.nan)
    mb = np.zeros((len(names), n_seed), dtype=np.int64)
    mc = np.zeros((len(names), n_seed), dtype=np.int64)
    mp = np.full((len(names), n_seed), np.nan)
    orig_correct = entries[0].correct[0]
    for i, e in enumerate(entries):
        acc[i, : len(e.accuracies)] = e.accuracies
        b, c, p = mcnemar_exact(orig_correct, np.stack(e.correct))
        mb[i, : len(b)], mc[i, : len(c)], mp[i, : len(p)] = b, c, p
    by_name = {e.name: e for e in entries}
    welch = np.full((len(names), 4), np.nan)
    for i, e in enumerate(entries):
        if e.control_of:
            w = welch_comparison(by_name[e.control_of].accuracies, e.accuracies)
            welch[i] = [w["diff"], w["t"], w["df"], w["p"]]
    n_layer = max(len(t) for t in tables.values())
    n_node = max(len(p) for p in plans.values())

    def padded(frames, column, fill, width, fn=lambda v: v):
        out = []
        for n in names:
            vals = [fn(v) for v in frames[n][column].tolist()]
            out.append(vals + [fill] * (width - len(vals)))
        return np.asarray(out, dtype=type(fill) if not isinstance(fill, str) else str)

    n_orig = metrics["original"]["n_params"]
    n_node_d = max((len(d["node"]) for d in distilled.values()), default=0)
    n_node = max(n_node, max((max(d["node"], default=0) for d in distilled.values()), default=0))
    dist = {k: np.full((len(names), n_node), np.nan) for k in ("mse", "r2", "accuracy")}
    dist_all = np.full(len(names), np.nan)
    for i, n in enumerate(names):
        if n in distilled:
            d = distilled[n]
            for k in dist:
                dist[k][i, np.asarray(d["node"], dtype=int) - 1] = d[k]
            dist_all[i] = d["accuracy_all"]
    del n_node_d
    n_seeds = np.asarray([len(e.accuracies) for e in entries], dtype=np.int64)
    data: dict[str, tuple] = {
        "kind": ("model", np.asarray([e.kind for e in entries], dtype=str)),
        "control_of": ("model", np.asarray([e.control_of for e in entries], dtype=str)),
        "level": ("model", np.asarray([e.level for e in entries], dtype=float)),
        "mechanism": ("model", np.asarray([e.mechanism for e in entries], dtype=np.int64)),
        "composition": ("model", np.asarray([e.composition for e in entries], dtype=str)),
        "n_nodes": ("model", np.asarray([len(parse_composition(e.composition)) if e.composition else -1
                                         for e in entries], dtype=np.int64)),
        "coverage": ("model", np.asarray([e.coverage for e in entries], dtype=float)),
        "duplicate_of": ("model", np.asarray([e.duplicate_of for e in entries], dtype=str)),
        "train_seconds": ("model", np.asarray([e.train_seconds for e in entries], dtype=float)),
        "seed_accuracy": (("model", "seed"), acc),
        "n_seeds": ("model", n_seeds),
        "accuracy_mean": ("model", np.nanmean(acc, axis=1)),
        "accuracy_std": ("model", np.asarray([np.std(a, ddof=1) if len(a) > 1 else 0.0
                                              for a in (e.accuracies for e in entries)], dtype=float)),
        "mcnemar_b": (("model", "seed"), mb),
        "mcnemar_c": (("model", "seed"), mc),
        "mcnemar_p": (("model", "seed"), mp),
        "tracer_minus_control": ("model", welch[:, 0]),
        "welch_t": ("model", welch[:, 1]),
        "welch_df": ("model", welch[:, 2]),
        "welch_p": ("model", welch[:, 3]),
        "distill_mse": (("model", "node"), dist["mse"]),
        "distill_r2": (("model", "node"), dist["r2"]),
        "distill_accuracy": (("model", "node"), dist["accuracy"]),
        "distill_accuracy_all": ("model", dist_all),
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
                "seed": np.arange(settings.seed, settings.seed + n_seed, dtype=np.int64),
                "layer_index": np.arange(n_layer, dtype=np.int64), "node": np.arange(1, n_node + 1, dtype=np.int64)},
        attrs={
            "description": "the original classifier, its TRACER-compressed versions C1, C2, … (one per coverage "
                           "level, paper 004 §4.3, Tables 1-2), their matched controls (random contiguous "
                           "partitions, the mechanism of a random-weight copy) and the paper's Table 2 models, each "
                           "retrained over seeds: cost, accuracy, McNemar tests, layer tables",
            "levels": list(levels), "tol": float(settings.tol), "epochs": int(settings.epochs),
            "batch_size": int(settings.batch_size), "lr": float(settings.lr), "observed_layers": list(layers),
            "seeds": int(settings.seeds), "random_partitions": int(settings.random_partitions),
            "budget": float(settings.budget), "random_weights": int(bool(settings.random_weights)),
            "random_weights_samples": int(settings.random_weights_samples),
            "paper_table2": int(bool(settings.paper_table2)), "distill_epochs": int(settings.distill_epochs),
            "distill_lr": float(settings.distill_lr),
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
        "kind": "original | tracer | random_partition (a contiguous partition TRACER did not find, same node count, "
                "parameters within the budget) | random_weights (a mechanism of a random-weight copy) | paper_table2",
        "control_of": "the TRACER model a control is matched to ('' otherwise)",
        "mechanism": "index among TRACER's mechanisms (tracer), among the random-weight copy's "
                     "(random_weights); -1 else",
        "seed_accuracy": "test accuracy of the model retrained with this seed (the original: seed 0 only)",
        "accuracy_mean": "mean test accuracy over the seeds",
        "accuracy_std": "standard deviation (ddof 1) of the test accuracy over the seeds (0 for one seed)",
        "n_seeds": "seeds the model was retrained with (1 for the original)",
        "mcnemar_b": "test samples the original classifies correctly and this seed's model does not",
        "mcnemar_c": "test samples this seed's model classifies correctly and the original does not",
        "mcnemar_p": "exact two-sided McNemar p-value against the original: min(1, 2 BinomCDF(min(b, c); b + c, 1/2))",
        "tracer_minus_control": "mean accuracy of the matched TRACER model minus this control's (controls only)",
        "welch_t": "Welch's t of the TRACER model's seeds against this control's",
        "welch_df": "Welch-Satterthwaite degrees of freedom",
        "welch_p": "two-sided p-value of welch_t (3 seeds: little power)",
        "distill_mse": "test MSE of the node's output with its single-layer replacement fitted by distillation",
        "distill_r2": "1 - distill_mse / variance of the node's output (test images)",
        "distill_accuracy": "test accuracy of the original with this node's distilled replacement swapped in",
        "distill_accuracy_all": "test accuracy of the original with every multi-layer node's distilled replacement",
        "node_params_after": "parameters of the node's modules in this model (-1: padding)",
    }
    return describe(ds, descr)


TABLE_COLUMNS = ("kind", "control_of", "composition", "n_nodes", "coverage", "accuracy_mean", "accuracy_std", "n_seeds",
                 "mcnemar_b0", "mcnemar_c0", "mcnemar_p0", "tracer_minus_control", "welch_p", "distill_accuracy_all",
                 *METRICS, "compression", "duplicate_of")


def compress_table(ds: xr.Dataset) -> pd.DataFrame:
    """``tables/compress_models.csv``: one row per model of ``compress.nc`` (TRACER's, the controls, the
    paper's Table 2 rows and the original), its accuracy over seeds, the McNemar test against the
    original at the first seed (``mcnemar_b0``, ``mcnemar_c0``, ``mcnemar_p0``), the comparison with
    its TRACER model, the distillation check and the cost metrics (paper 004 Tables 1-2).

    Args:
        ds: ``compress.nc`` (:func:`compress_dataset`).

    Returns:
        The table, indexed by ``model``, columns :data:`TABLE_COLUMNS`.
    """
    first = {f"{v}0": ds[v].isel(seed=0, drop=True) for v in ("mcnemar_b", "mcnemar_c", "mcnemar_p")}
    return ds.assign(first)[list(TABLE_COLUMNS)].to_dataframe()
