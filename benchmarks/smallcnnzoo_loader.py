"""Benchmark: the Small CNN Zoo loader at full size, peak memory of each step vs loading it whole.

Builds a synthetic zoo in the real archive format (``smallcnnzoo`` module docstring): a
folder ``mnist/`` with ``weights.npy`` (runs x 9 checkpoints rows of 4970 float32, written
block by block through a memory map, never held in memory), ``metrics.csv.gz`` (one row
per weights row, same order: the hyperparameter columns, ``step``, accuracies, losses)
and ``layout.csv``. A few runs crashed: some have no final (step 86) row, some have
non-finite final weights or a NaN test accuracy. The folder is packed as an uncompressed
``.tar`` (``extract_zoo_archive`` reads any tarfile compression; xz of 5.4 GB of random
floats would take most of an hour on two cores: ``--xz`` packs with preset 0 anyway).

Each step runs in a fresh child process (multiprocessing, spawn) and reports the kernel's
RSS high-water mark of that process (no sampling): ``VmHWM``, reset after the imports
(``/proc/self/clear_refs``), and the RSS then (the baseline). Not ``ru_maxrss``: Linux
carries the parent's RSS at the fork into the child's ``ru_maxrss`` across the exec, so
a child's figure could not fall below the parent's (it is the fallback off Linux).

* build: write the zoo's three files; pack: the tar (then the source folder is deleted);
* extract: ``extract_zoo_archive`` (streams the archive once, hashes it);
* read_zoo: the final models of the extracted folder (memory-mapped ``weights.npy``);
* naive: ``np.load(weights.npy)`` and ``pd.read_csv(metrics.csv.gz)`` whole, then index
  the final, finite rows.

    python benchmarks/smallcnnzoo_loader.py                 # 30,000 runs: 5.4 GB weights.npy
    python benchmarks/smallcnnzoo_loader.py --runs 2000 --workdir /scratch/zoo --keep
"""

from __future__ import annotations

import argparse
import gzip
import multiprocessing as mp
import resource
import shutil
import tarfile
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from causalxai.zoo.hparams import HPARAMS, sample_hparams
from causalxai.zoo.network import zoo_layout
from causalxai.zoo.smallcnnzoo import CHECKPOINT_STEPS, extract_zoo_archive, read_zoo

N_PARAMS = 4970
BLOCK_ROWS = 8192  # weight rows generated and written at once (163 MB)


def _status_mb(field: str) -> float | None:
    try:
        with open("/proc/self/status") as fh:
            return next(int(line.split()[1]) / 1024 for line in fh if line.startswith(field + ":"))
    except (OSError, StopIteration):
        return None


def reset_peak() -> float:
    """Reset this process's RSS high-water mark to its current RSS (Linux); that RSS in MB."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass
    return _status_mb("VmRSS") or peak_mb()


def peak_mb() -> float:
    """The kernel's RSS high-water mark of this process: VmHWM, else ru_maxrss."""
    return _status_mb("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _child(fn: Callable[..., dict[str, Any]], args: tuple) -> dict[str, Any]:
    base = reset_peak()
    t0 = time.perf_counter()
    out = fn(*args)
    return {"seconds": time.perf_counter() - t0, "peak_mb": peak_mb(), "base_mb": base, **out}


def measured(fn: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    """Run ``fn(*args)`` in a fresh spawned process; its seconds, peak and baseline RSS."""
    with ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as pool:
        return pool.submit(_child, fn, args).result()


# ----------------------------------------------------------------------------- the zoo


def plan(runs: int, seed: int) -> dict[str, np.ndarray]:
    """Which row is which run and step; the crashed runs."""
    rng = np.random.default_rng(seed)
    n_ck = len(CHECKPOINT_STEPS)
    run = np.repeat(np.arange(runs), n_ck)
    step = np.tile(np.asarray(CHECKPOINT_STEPS), runs)
    crashed = rng.choice(runs, size=max(1, runs // 1000), replace=False)  # no final row
    keep = ~((step == CHECKPOINT_STEPS[-1]) & np.isin(run, crashed))
    run, step = run[keep], step[keep]
    final = np.flatnonzero(step == CHECKPOINT_STEPS[-1])
    bad = rng.choice(final, size=max(2, runs // 500), replace=False)
    nan_w, nan_acc = np.sort(bad[: bad.size // 2]), np.sort(bad[bad.size // 2 :])
    return {"run": run, "step": step, "nan_weights": nan_w, "nan_accuracy": nan_acc}


def build(folder: Path, runs: int, seed: int) -> dict[str, Any]:
    """Write ``weights.npy``, ``metrics.csv.gz`` and ``layout.csv`` of a synthetic zoo."""
    p = plan(runs, seed)
    n_rows = p["run"].size
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "weights.npy"
    w = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n_rows, N_PARAMS))
    del w  # header written, file sized (sparse until filled)
    rng = np.random.default_rng(seed)
    for a in range(0, n_rows, BLOCK_ROWS):
        b = min(a + BLOCK_ROWS, n_rows)
        block = rng.standard_normal((b - a, N_PARAMS), dtype=np.float32)
        block *= 0.1
        bad = p["nan_weights"][(p["nan_weights"] >= a) & (p["nan_weights"] < b)] - a
        block[bad, 17] = np.nan
        block[bad[::2], 4000] = np.inf
        # a fresh map per block: only this block's pages are ever in this process
        w = np.load(path, mmap_mode="r+")
        w[a:b] = block
        w.flush()
        del w

    hp = sample_hparams(runs, {}, seed).iloc[p["run"]].reset_index(drop=True)
    progress = np.searchsorted(np.asarray(CHECKPOINT_STEPS), p["step"]) / (len(CHECKPOINT_STEPS) - 1)
    acc = 0.1 + 0.85 * progress * rng.uniform(0.5, 1.0, n_rows)
    acc[p["nan_accuracy"]] = np.nan
    metrics = pd.DataFrame({f"config.{name}": hp[name].to_numpy() for name in HPARAMS})
    metrics["config.dataset"] = "mnist"
    metrics["config.epochs"] = CHECKPOINT_STEPS[-1]
    metrics["config.batch_size"] = 32
    metrics["modeldir"] = np.char.add("/runs/", p["run"].astype(str))
    metrics["step"] = p["step"]
    metrics["test_accuracy"] = acc
    metrics["test_loss"] = 2.3 * (1 - acc) + rng.uniform(0, 0.1, n_rows)
    metrics["train_accuracy"] = np.minimum(1.0, acc + rng.uniform(0, 0.05, n_rows))
    metrics["train_loss"] = 2.3 * (1 - acc)
    metrics["laststep"] = p["step"] == CHECKPOINT_STEPS[-1]
    metrics = metrics[sorted(metrics.columns)]  # the real table lists its columns alphabetically
    with gzip.open(folder / "metrics.csv.gz", "wt", compresslevel=1) as fh:
        metrics.to_csv(fh, index=False)
    zoo_layout(1).to_csv(folder / "layout.csv", index=False)
    n_final = int((p["step"] == CHECKPOINT_STEPS[-1]).sum())
    return {"rows": n_rows, "final": n_final, "kept": n_final - p["nan_weights"].size - p["nan_accuracy"].size}


def pack(folder: Path, archive: Path, xz: bool) -> dict[str, Any]:
    with tarfile.open(archive, mode="w:xz" if xz else "w", **({"preset": 0} if xz else {})) as tar:
        tar.add(folder, arcname=folder.name)
    return {"bytes": archive.stat().st_size}


def extract(archive: Path, dest: Path) -> dict[str, Any]:
    files = extract_zoo_archive(archive, dest)
    return {"bytes": files["weights"].stat().st_size}


def files_of(dest: Path) -> dict[str, Path]:
    return {"weights": dest / "weights.npy", "metrics": dest / "metrics.csv.gz", "layout": dest / "layout.csv"}


def streamed(dest: Path) -> dict[str, Any]:
    zoo = read_zoo(files_of(dest), "mnist")
    return {"models": zoo.sizes["model"], "out_mb": zoo["weights"].nbytes / 2**20,
            "dropped": zoo.attrs["n_dropped_nonfinite"]}


def naive(dest: Path) -> dict[str, Any]:
    """What a user would write: everything into memory, then index."""
    f = files_of(dest)
    weights = np.load(f["weights"])
    metrics = pd.read_csv(f["metrics"])
    rows = np.flatnonzero(metrics["step"].to_numpy() == CHECKPOINT_STEPS[-1])
    final = weights[rows]
    ok = np.isfinite(final).all(axis=1) & np.isfinite(metrics["test_accuracy"].to_numpy()[rows])
    final = final[ok]
    return {"models": final.shape[0], "out_mb": final.nbytes / 2**20}


# ----------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=30000, help="runs of 9 checkpoints (30000: 5.4 GB weights.npy)")
    ap.add_argument("--workdir", type=Path, default=None, help="folder for the zoo (default a temporary one)")
    ap.add_argument("--keep", action="store_true", help="keep the extracted zoo in --workdir (default: delete it)")
    ap.add_argument("--reuse", action="store_true", help="read the extraction already in --workdir (no build)")
    ap.add_argument("--xz", action="store_true", help="pack as .tar.xz (preset 0) instead of an uncompressed .tar")
    ap.add_argument("--no-naive", action="store_true", help="skip the naive whole-file load")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.reuse and args.workdir is None:
        ap.error("--reuse needs --workdir (the folder a run with --keep left)")
    work = args.workdir or Path(tempfile.mkdtemp(prefix="zoo-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    src, dest = work / "src" / "mnist", work / "extracted"
    archive = work / ("mnist.tar.xz" if args.xz else "mnist.tar")
    table: list[tuple[str, int, dict[str, Any]]] = []
    try:
        if not args.reuse:
            built = measured(build, src, args.runs, args.seed)
            table.append(("build (3 files)", built["rows"], built))
            table.append(("pack (" + archive.name + ")", built["rows"], measured(pack, src, archive, args.xz)))
            shutil.rmtree(work / "src")
            table.append(("extract_zoo_archive", built["rows"], measured(extract, archive, dest)))
            archive.unlink()
        rows = int(np.load(dest / "weights.npy", mmap_mode="r").shape[0])
        read = measured(streamed, dest)
        table.append(("read_zoo (final rows)", rows, read))
        if not args.no_naive:
            table.append(("naive np.load + read_csv", rows, measured(naive, dest)))
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
        elif not (args.keep or args.reuse):
            for path in (work / "src", dest):
                shutil.rmtree(path, ignore_errors=True)
            archive.unlink(missing_ok=True)

    gb = rows * N_PARAMS * 4 / 1e9
    print(f"Small CNN Zoo loader: {rows} checkpoint rows x {N_PARAMS} float32 ({gb:.2f} GB weights.npy), "
          f"{read['models']} final models kept ({read['out_mb']:.0f} MiB of weights out, "
          f"{read['dropped']} crashed runs dropped); numpy {np.__version__}, pandas {pd.__version__}")
    print(f"{'step':<28}{'rows':>9}{'time s':>9}{'peak RSS MB':>13}{'above base MB':>15}")
    for name, n, r in table:
        print(f"{name:<28}{n:>9}{r['seconds']:>9.1f}{r['peak_mb']:>13.0f}{r['peak_mb'] - r['base_mb']:>15.0f}")
    if not args.no_naive:
        nv = table[-1][2]
        print(f"peak RSS naive / read_zoo: {nv['peak_mb'] / read['peak_mb']:.1f}x "
              f"({(nv['peak_mb'] - nv['base_mb']) / (read['peak_mb'] - read['base_mb']):.1f}x above the baseline "
              f"of ~{read['base_mb']:.0f} MB after the imports); time {nv['seconds'] / read['seconds']:.1f}x")
    print("(MB = 2**20 bytes; peak RSS: the kernel's high-water mark (VmHWM) of each step's own process, reset "
          "after its imports; the zoo's files on local disk, mostly in the page cache)")


if __name__ == "__main__":
    main()
