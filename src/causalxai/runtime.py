"""Torch plumbing every stage shares: the device a step runs on, evaluation mode, batched prediction.

These live on the package's lowest floor so that no stage imports another one for them (TRACER,
the GAN and compression never import the zoo). Nothing here is science.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import ctypes
import ctypes.util
import functools
import itertools
import logging
import multiprocessing
import pickle
import sys
from typing import Callable, Iterable, Iterator, Sequence, TypeVar

import torch
from torch import nn

__all__ = ["adam", "chunk_map", "process_map", "bounded_heap", "fast_heap", "seeded", "state_dict_mismatch",
           "eval_mode", "model_device", "predict", "resolve_device"]

T = TypeVar("T")
R = TypeVar("R")
_DONE = object()

#: glibc's ``mallopt`` parameter ``M_TRIM_THRESHOLD`` (``malloc.h``)
_M_TRIM_THRESHOLD = -1
#: glibc's ``mallopt`` parameter ``M_MMAP_THRESHOLD`` (``malloc.h``)
_M_MMAP_THRESHOLD = -3
#: the thresholds :func:`fast_heap` sets: 32 MiB (glibc's own ceiling of its dynamic mmap
#: threshold) and 128 MiB of free memory kept at the top of the heap
FAST_MMAP_THRESHOLD = 32 * 2**20
FAST_TRIM_THRESHOLD = 128 * 2**20
#: the trim threshold :func:`bounded_heap` sets: 64 KiB, dask's worker default (its
#: ``MALLOC_TRIM_THRESHOLD_``)
TRIM_THRESHOLD = 64 * 2**10


def bounded_heap(trim_threshold: int = TRIM_THRESHOLD) -> bool:
    """Make this process give freed memory back to the operating system at once (glibc only).

    glibc raises its ``mmap`` threshold each time a large block that it mapped is freed
    (its dynamic threshold, up to 32 MiB), after which blocks of that size come from the heap
    and, freed out of order, fragment it: a step that allocates and frees the same few
    megabytes per block of models then grows its resident memory block after block. The
    streaming gather peaked 40-60 MB higher at 600 models than at 300 that way, and the
    meta-model's peak at 30,000 models varied between 0.6 and 3.9 GB from run to run.
    Setting ``M_TRIM_THRESHOLD`` (what dask does for its workers with the environment
    variable ``MALLOC_TRIM_THRESHOLD_=65536``) switches the dynamic threshold off, so large
    blocks are mapped and unmapped again and the top of the heap is trimmed: the peak is
    what the step holds at once. It costs time, as every large block is faulted in afresh:
    the gather ran 45 % longer (600 models: 7.9 -> 11.5 s), the embedded default's effects
    step 1.7x longer (174 -> 298 s, for a peak of 0.67 instead of 1.04 GB) and zoo training
    2-3x longer. So the steps whose work per block is light (predictions, explain_gather,
    meta_model, the Small CNN Zoo loader) call it first
    (``workflow/scripts/common.start(bounded_heap=True)``), as ``benchmarks/scale.py`` does
    for them, and the others do not: their peaks are bounded by their blocks and cells, and
    the fragmentation adds a bounded ~25-400 MB on top. This is a setting of the process,
    not of a result; call it in your own process before a long streamed step.

    Args:
        trim_threshold: bytes of free memory at the top of the heap before it is trimmed.

    Returns:
        True where the setting took (glibc), False elsewhere (macOS, musl), where nothing changes.
    """
    mallopt = _mallopt()
    if mallopt is None:
        return False
    return mallopt(_M_TRIM_THRESHOLD, int(trim_threshold)) == 1


def _mallopt() -> Callable[[int, int], int] | None:
    """glibc's ``mallopt``, or None where there is none (macOS, musl, Windows)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):
        return None
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt


def fast_heap(mmap_threshold: int = FAST_MMAP_THRESHOLD, trim_threshold: int = FAST_TRIM_THRESHOLD) -> bool:
    """Keep freed memory of medium-size tensors in this process for the next pass (glibc only):
    the compute-bound steps' setting, :func:`bounded_heap`'s opposite.

    A step that runs the same passes over and over (the zoo's saliency maps, its training, TRACER's
    interventions) allocates and frees the same few megabytes of activations per pass. glibc maps
    blocks above its ``mmap`` threshold (128 KiB at start, raised as mapped blocks are freed) and
    trims the top of the heap above its trim threshold, so until the dynamic thresholds have grown,
    and whenever a trim gives the pages back, every pass faults its tensors in afresh. Fixing the
    thresholds (``M_MMAP_THRESHOLD`` 32 MiB, the dynamic threshold's own ceiling; ``M_TRIM_THRESHOLD``
    128 MiB) removes those faults from the start: a SmoothGrad pass of 4 zoo models on 100 images
    took 1.4 ms instead of 2.6 ms per model (2 cores; as with ``MALLOC_MMAP_THRESHOLD_`` and
    ``MALLOC_TRIM_THRESHOLD_`` in the environment). At most ``trim_threshold`` bytes of free
    memory are kept on top of what the step holds; blocks above ``mmap_threshold`` are still mapped
    and returned at once. This is a setting of the process, not of a result.

    Args:
        mmap_threshold: blocks of at least this many bytes are mapped (and unmapped when freed).
        trim_threshold: bytes of free memory at the top of the heap before it is trimmed.

    Returns:
        True where the settings took (glibc), False elsewhere, where nothing changes.
    """
    mallopt = _mallopt()
    if mallopt is None:
        return False
    return mallopt(_M_MMAP_THRESHOLD, int(mmap_threshold)) == 1 and mallopt(_M_TRIM_THRESHOLD, int(trim_threshold)) == 1


def adam(params: Iterable[torch.Tensor] | Iterable[dict], lr: float) -> torch.optim.Adam:
    """``torch.optim.Adam(params, lr=lr)`` with its multi-tensor (``foreach``) update on every
    device: torch takes it by default on GPUs only, and on the CPU the per-tensor loop was 18 %
    of the compress step's training (small networks, a dozen parameter tensors each). The two
    implementations run the same element-wise operations in the same order: the weights are
    the same, bit for bit (``tests/test_runtime.py``)."""
    return torch.optim.Adam(params, lr=lr, foreach=True)


@contextlib.contextmanager
def _one_intra_op_thread(n_items: int) -> Iterator[int]:
    """Torch on one intra-op thread inside; yields the workers the job's threads allow for
    ``n_items`` items; the thread count is restored on exit."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield min(before, n_items)
    finally:
        torch.set_num_threads(before)


def chunk_map(fn: Callable[[T], R], items: Sequence[T], device: torch.device | str = "cpu", *,
              parallel: bool = True) -> Iterator[R]:
    """``fn`` over ``items`` (a step's independent chunks of models), results in order.

    On the CPU each chunk runs on one intra-op thread, and the job's torch threads
    (``torch.get_num_threads()``, the rule's ``threads``) work on that many chunks at once, in
    threads of this process (torch releases the GIL inside its operations). Small chunks use
    one core well and several poorly (a zoo chunk's grouped convolutions on 2 threads ran at
    1.0-1.6x one thread), and every chunk's arithmetic is then the one-thread arithmetic:
    the results do not depend on the thread count or on which chunks run together. The
    torch thread count is restored on return. On a GPU the chunks run one after another.

    Args:
        fn: computes one chunk; must not share mutable state with the others (a chunk's own
            generators, its own rows of the output).
        items: the chunks.
        device: where the chunks run.
        parallel: ``False`` runs the chunks one after another on the job's threads, untouched
            (code that may not run in threads: a user's method, a global random generator).

    Yields:
        ``fn(item)`` for each item, in the order of ``items``.
    """
    items = list(items)
    if torch.device(device).type != "cpu" or not parallel:
        yield from map(fn, items)
        return
    with _one_intra_op_thread(len(items)) as workers:
        if workers <= 1:
            yield from map(fn, items)
            return
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            pending: collections.deque = collections.deque()
            it = iter(items)
            for item in itertools.islice(it, 2 * workers):  # a bounded number in flight: memory stays flat
                pending.append(pool.submit(fn, item))
            while pending:
                result = pending.popleft().result()
                nxt = next(it, _DONE)
                if nxt is not _DONE:
                    pending.append(pool.submit(fn, nxt))
                yield result


#: a :func:`process_map` worker's ``shared`` argument, set once per worker by its initializer
_SHARED: object = None


def _one_thread_worker(shared: object = None) -> None:
    """A :func:`process_map` worker: one intra-op thread, the compute jobs' heap, the map's shared data."""
    global _SHARED
    torch.set_num_threads(1)
    fast_heap()
    _SHARED = shared


def _with_shared(fn: Callable, item: object) -> object:
    """``fn(shared, item)`` in a worker (:func:`process_map` with ``shared``)."""
    return fn(_SHARED, item)


@contextlib.contextmanager
def _main_script_hidden() -> Iterator[None]:
    """A spawned worker runs the parent's main script again (as ``__mp_main__``) unless its code
    sits under ``if __name__ == "__main__"``, which a workflow script's does not: the script's
    path is hidden from :mod:`multiprocessing` while the workers start and run (they need
    nothing from it: :func:`process_map` sends module-level functions, found by name)."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if main is None or path is None or getattr(main, "__spec__", None) is not None:
        yield
        return
    del main.__file__
    try:
        yield
    finally:
        main.__file__ = path


def process_map(fn: Callable[..., R], items: Sequence[T], device: torch.device | str = "cpu", *,
                shared: object = None, cost: Sequence[float] | None = None) -> Iterator[R]:
    """``fn`` over ``items`` in worker processes, results in order: :func:`chunk_map` for work
    that uses torch's global random generator (dropout while training), which threads of one
    process would share. On the CPU with ``n = torch.get_num_threads() > 1``, ``n`` fresh
    (spawned) processes with one intra-op thread each; otherwise, or when ``fn``, ``shared`` or
    the first item cannot be pickled (a model of a class defined in a script), here on one
    intra-op thread, which gives the same numbers. On a GPU: here, one after another, the job's
    threads untouched.

    Args:
        fn: a module-level function (it is pickled by reference); called ``fn(item)``, or
            ``fn(shared, item)`` when ``shared`` is given.
        items: its arguments, one per call (pickled to the workers).
        device: where the work runs.
        shared: data every call reads (a training set): sent to each worker once, not with
            every item.
        cost: each item's expected cost (any unit): the workers take the dearest first, so
            the last of a long map do not leave a core idle (longest-processing-time
            scheduling); the results still come in the order of ``items``.

    Yields:
        ``fn(item)`` (``fn(shared, item)``) for each item, in the order of ``items``.
    """
    items = list(items)
    call = fn if shared is None else functools.partial(fn, shared)
    if torch.device(device).type != "cpu":
        yield from map(call, items)
        return
    with _one_intra_op_thread(len(items)) as workers:
        if workers > 1:
            try:  # the function, the shared data and one item: items are alike
                pickle.dumps((fn, shared, items[0]))
            except Exception as err:  # noqa: BLE001 - any pickling failure: run here instead
                logging.getLogger(__name__).warning("process_map: %s cannot be sent to worker processes (%s); "
                                                    "running here on one thread", getattr(fn, "__name__", fn), err)
                workers = 1
        if workers <= 1:
            yield from map(call, items)
            return
        order = range(len(items)) if cost is None else sorted(range(len(items)), key=lambda i: -float(cost[i]))
        ctx = multiprocessing.get_context("spawn")
        with _main_script_hidden(), concurrent.futures.ProcessPoolExecutor(
                workers, mp_context=ctx, initializer=_one_thread_worker, initargs=(shared,)) as pool:
            futures: dict[int, concurrent.futures.Future] = {}
            for i in order:
                futures[i] = (pool.submit(fn, items[i]) if shared is None else
                              pool.submit(_with_shared, fn, items[i]))
            for i in range(len(items)):
                yield futures.pop(i).result()


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
        raise ValueError(f"device: {str(device)!r} was asked for but no CUDA device is present (torch "
                         f"{torch.__version__}, CUDA build {torch.version.cuda or 'none'}); use 'auto' or 'cpu'")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        n = torch.cuda.device_count()
        raise ValueError(f"device: {str(device)!r} was asked for but this machine has {n} CUDA device(s) "
                         f"(cuda:0 to cuda:{n - 1}); use 'cuda', 'auto' or one of those")
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


@contextlib.contextmanager
def seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Within the block, torch's global RNG (and ``device``'s, a GPU) is seeded with ``seed``; the
    caller's RNG state is restored on leaving it."""
    devs = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devs):
        torch.manual_seed(int(seed))
        yield


def state_dict_mismatch(state: dict, own: dict, limit: int = 8) -> str | None:
    """How a loaded state dict ``state`` fails the module's own ``own``: its missing, unexpected and
    mis-shaped entries (at most ``limit`` named of each), or None when it fits."""
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} (needs {tuple(own[k].shape)})"
              for k in own if k in state and state[k].shape != own[k].shape]
    found = (("missing", missing), ("unexpected", unexpected), ("other shapes", shapes))
    parts = [f"{name}: {', '.join(items[:limit])}{' …' if len(items) > limit else ''}"
             for name, items in found if items]
    return "; ".join(parts) or None
