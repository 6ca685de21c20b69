"""The real Small CNN Zoo (Unterthiner et al. 2020, "Predicting Neural Network Accuracy
from Weights"), downloaded, extracted safely and read into the ``zoo.nc`` contract.

Facts of the format (DESIGN.md, "Small CNN Zoo format", from the zoo's public loader code):

* one archive per image set, ``{dataset}.tar.xz`` at :data:`ZOO_URL` (CC-BY 4.0, about
  30,000 runs per dataset), holding inside a folder (usually named after the dataset)
  ``weights.npy`` (rows × 4970 float32 for one input channel), ``metrics.csv.gz`` (one row
  per weights row, same order) and ``layout.csv`` (``varname,start_idx,end_idx,shape``);
* rows are checkpoints of runs at epochs 0, 1, 2, 3, 20, 40, 60, 80 and 86; the final model
  of a run is its row with ``step == 86`` (``laststep``);
* crashed runs have no final row or non-finite weights; they are dropped and counted
  (``n_dropped_nonfinite``).

The archives are several GB, ``weights.npy`` even more once decompressed. The archive is
therefore streamed once through the decompressor (no random access into the xz stream),
its three files are written into the cache next to it, and only the final-step rows are
read from ``weights.npy`` through a memory map. An extraction is reused as long as the
archive is unchanged: its SHA-256 is recorded next to the extracted files.
"""

from __future__ import annotations

import json
import logging
import lzma
import mmap
import os
import shutil
import tarfile
import tempfile
import zlib
from pathlib import Path, PurePosixPath
from typing import Any, Mapping

import numpy as np
import pandas as pd
import xarray as xr

from causalxai.data.download import (
    ChecksumError,
    fetch,
    file_digest,
    require_downloaded,
    unsafe_tar_member,
    verify,
)
from causalxai.io import atomic_path
from causalxai.zoo.dataset import make_zoo_dataset
from causalxai.zoo.hparams import CATEGORICAL, CONTINUOUS, HPARAMS
from causalxai.zoo.network import parse_layout

__all__ = [
    "ZOO_URL",
    "ZOO_DATASETS",
    "INPUT_SIZE",
    "ZOO_SHA256",
    "CHECKPOINT_STEPS",
    "ZOO_FILES",
    "ZooArchiveError",
    "zoo_url",
    "fetch_zoo_archive",
    "extract_zoo_archive",
    "read_zoo",
    "load_smallcnnzoo",
    "load_smallcnnzoo_archive",
]

log = logging.getLogger(__name__)

#: where the zoo's archives lie (``{dataset}`` is one of :data:`ZOO_DATASETS`)
ZOO_URL = "https://storage.googleapis.com/gresearch/smallcnnzoo-dataset/{dataset}.tar.xz"
#: the image sets the Small CNN Zoo trained on (tensorflow-datasets names)
ZOO_DATASETS = ("mnist", "fashion_mnist", "cifar10", "svhn_cropped")
#: native input size of each image set (inputs are grayscale, DESIGN.md "Inputs")
INPUT_SIZE = {"mnist": 28, "fashion_mnist": 28, "cifar10": 32, "svhn_cropped": 32}
#: published SHA-256 of each archive. The zoo publishes none, so these are unknown: a
#: download without one records the digest it saw (``<archive>.sha256``); pin it in the
#: config (``zoo.smallcnnzoo.sha256``) to verify later downloads.
ZOO_SHA256: dict[str, str | None] = {name: None for name in ZOO_DATASETS}
#: the epochs at which the zoo stored a checkpoint; 86 is the final one
CHECKPOINT_STEPS = (0, 1, 2, 3, 20, 40, 60, 80, 86)
#: file name in the archive -> key in the dict :func:`extract_zoo_archive` returns
ZOO_FILES = {"weights.npy": "weights", "metrics.csv.gz": "metrics", "layout.csv": "layout"}

#: the record of an extraction, written last (its presence means the extraction is whole)
STAMP = "extracted.json"
_CHUNK = 1 << 22  # bytes per copy while extracting
_MAP_BYTES = 8 << 20  # span of weights.npy whose rows are read at once from the memory map
_CSV_ROWS = 1 << 16  # metrics.csv.gz rows parsed at once


class ZooArchiveError(ValueError):
    """A Small CNN Zoo archive or one of its files is unsafe, damaged or inconsistent."""


def _check_dataset(dataset: str) -> None:
    if dataset not in ZOO_DATASETS:
        raise ValueError(f"unknown Small CNN Zoo dataset {dataset!r}: choose one of {list(ZOO_DATASETS)}")


def zoo_url(dataset: str, url: str | None = None) -> str:
    """The archive URL of ``dataset``: ``url`` (a template may contain ``{dataset}``) or
    :data:`ZOO_URL`."""
    _check_dataset(dataset)
    template = ZOO_URL if url is None else url
    return template.format(dataset=dataset) if "{dataset}" in template else template


def fetch_zoo_archive(
    dataset: str,
    cache_dir: str | os.PathLike[str],
    *,
    url: str | None = None,
    sha256: str | None = None,
    progress: bool = True,
) -> Path:
    """Download ``{dataset}.tar.xz`` into ``cache_dir`` (resumable, verified) and return it.

    Args:
        dataset: one of :data:`ZOO_DATASETS`.
        cache_dir: folder the archive is kept in (``<cache_dir>/<dataset>.tar.xz``).
        url: where to download from (``http(s)://`` or ``file://``; may contain
            ``{dataset}``); default :data:`ZOO_URL`.
        sha256: expected SHA-256 of the archive (default :data:`ZOO_SHA256`, unknown). Without
            one the download is not verified: a warning is issued and the digest seen is
            recorded in ``<archive>.sha256`` so it can be pinned in the config.
        progress: log the download's progress.

    Raises:
        ValueError: unknown ``dataset``.
        causalxai.data.download.ChecksumError: the archive's digest is not ``sha256``;
            nothing is left in the cache.
        causalxai.data.download.DownloadError: the download failed.
    """
    source = zoo_url(dataset, url)
    cache = Path(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    dest = cache / f"{dataset}.tar.xz"
    expected = sha256 or ZOO_SHA256.get(dataset)
    try:
        return Path(fetch(source, dest, sha256=expected.lower() if expected else None, progress=progress))
    except ChecksumError:
        # a partial download of the wrong bytes is useless, also for resuming
        dest.with_name(dest.name + ".part").unlink(missing_ok=True)
        raise


# --------------------------------------------------------------------------- extraction


def _stat_key(path: Path) -> dict[str, int]:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "inode": st.st_ino}


def _read_stamp(dest_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((dest_dir / STAMP).read_text())
    except (OSError, ValueError):
        return None


def _extraction_intact(stamp: Mapping[str, Any], dest_dir: Path) -> bool:
    files = stamp.get("files", {})
    if set(files) != set(ZOO_FILES):
        return False
    for name, size in files.items():
        path = dest_dir / name
        if not path.is_file() or path.stat().st_size != size:
            return False
    return True


def _result(dest_dir: Path) -> dict[str, Path]:
    return {key: dest_dir / name for name, key in ZOO_FILES.items()}


def _corrupt(archive: Path, exc: BaseException) -> ZooArchiveError:
    return ZooArchiveError(
        f"{archive} is truncated or corrupt ({type(exc).__name__}: {exc}); delete it "
        f"(`rm {archive}`) and download it again"
    )


def extract_zoo_archive(archive: Path, dest_dir: Path) -> dict[str, Path]:
    """Extract ``weights.npy``, ``metrics.csv.gz`` and ``layout.csv`` of a zoo archive.

    The members may lie in any folder of the archive (``mnist/weights.npy``); they are
    written flat into ``dest_dir``. The archive is read in one streaming pass, each file
    goes to a temporary folder inside ``dest_dir`` first and is moved into place with
    :func:`os.replace` once all three are whole; the record ``extracted.json`` (the
    archive's SHA-256, size and the files' sizes) is written last. A later call with an
    unchanged archive returns the existing files without extracting again (the archive
    is re-hashed only when its size, mtime or inode changed).

    Returns:
        ``{"weights": ..., "metrics": ..., "layout": ...}``, paths in ``dest_dir``.

    Raises:
        ZooArchiveError (a ValueError): an unsafe member (absolute path, ``..``, link,
            device), naming it; a truncated or corrupt archive; a missing or duplicate
            member. Nothing extracted is left behind.
        FileNotFoundError: ``archive`` does not exist.
    """
    archive, dest_dir = Path(archive), Path(dest_dir)
    if not archive.is_file():
        raise FileNotFoundError(f"zoo archive {archive} does not exist: download it first (fetch_zoo_archive)")
    key = _stat_key(archive)
    stamp = _read_stamp(dest_dir)
    if stamp is not None and _extraction_intact(stamp, dest_dir):
        if all(stamp.get(k) == v for k, v in key.items()):
            return _result(dest_dir)
        digest = file_digest(archive, "sha256")
        if stamp.get("sha256") == digest:  # touched or copied, same bytes
            stamp.update(key)
            _write_stamp(dest_dir, stamp)
            return _result(dest_dir)
    else:
        digest = file_digest(archive, "sha256")

    created = not dest_dir.exists()
    dest_dir.mkdir(parents=True, exist_ok=True)
    # invalidate the old extraction before touching anything
    (dest_dir / STAMP).unlink(missing_ok=True)
    for name in ZOO_FILES:
        (dest_dir / name).unlink(missing_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=dest_dir))
    try:
        found = _stream_members(archive, tmp)
        missing = [name for name in ZOO_FILES if name not in found]
        if missing:
            raise ZooArchiveError(
                f"{archive} lacks {missing} (a Small CNN Zoo archive holds {list(ZOO_FILES)}, in any "
                f"folder); it is not a zoo archive or is incomplete: delete it and download it again"
            )
        for name in ZOO_FILES:
            os.replace(tmp / name, dest_dir / name)
        _write_stamp(
            dest_dir,
            {
                "archive": archive.name,
                "sha256": digest,
                **key,
                "members": found,
                "files": {name: (dest_dir / name).stat().st_size for name in ZOO_FILES},
            },
        )
    except BaseException:
        for name in ZOO_FILES:
            (dest_dir / name).unlink(missing_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        if created:
            try:
                dest_dir.rmdir()
            except OSError:
                pass
        raise
    shutil.rmtree(tmp, ignore_errors=True)
    log.info("extracted %s into %s", archive, dest_dir)
    return _result(dest_dir)


def _write_stamp(dest_dir: Path, stamp: Mapping[str, Any]) -> None:
    with atomic_path(dest_dir / STAMP) as tmp:
        tmp.write_text(json.dumps(stamp, indent=1, sort_keys=True))


def _stream_members(archive: Path, out_dir: Path) -> dict[str, str]:
    """One pass over the archive: check every member, copy the wanted ones to ``out_dir``.

    Returns the member name each wanted file came from.
    """
    found: dict[str, str] = {}
    try:
        with tarfile.open(archive, mode="r|*") as tar:
            for member in tar:
                reason = unsafe_tar_member(member)
                if reason is not None:
                    raise ZooArchiveError(
                        f"{archive}: refusing to extract member {member.name!r}, which {reason}; "
                        f"a Small CNN Zoo archive holds only plain files and folders"
                    )
                base = PurePosixPath(member.name).name
                if not member.isfile() or base not in ZOO_FILES:
                    continue
                if base in found:
                    raise ZooArchiveError(
                        f"{archive} holds {base} twice ({found[base]!r} and {member.name!r}); "
                        f"it is not a Small CNN Zoo archive"
                    )
                src = tar.extractfile(member)
                assert src is not None  # a regular file
                written = 0
                with open(out_dir / base, "wb") as dst:
                    while block := src.read(_CHUNK):
                        dst.write(block)
                        written += len(block)
                if written != member.size:
                    raise EOFError(f"{member.name}: {written} of {member.size} bytes")
                found[base] = member.name
    except (tarfile.TarError, EOFError, lzma.LZMAError, zlib.error) as exc:
        raise _corrupt(archive, exc) from exc
    return found


# --------------------------------------------------------------------------- reading


def _load_weights(path: Path) -> np.ndarray:
    """``weights.npy`` as a read-only memory map (nothing read yet), checked to be a 2-D float array."""
    try:
        weights = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise ZooArchiveError(
            f"{path} is not a readable .npy array ({exc}); delete it and its archive and download again"
        ) from exc
    if weights.ndim != 2 or weights.dtype.kind != "f":
        raise ZooArchiveError(
            f"{path} holds a {weights.dtype} array of shape {weights.shape}; the zoo stores one "
            f"float row per checkpoint (rows × n_params)"
        )
    return weights


def _row_groups(weights: np.ndarray, rows: np.ndarray):
    """Slices of ``rows`` (ascending) whose rows lie within :data:`_MAP_BYTES` of the file."""
    span = max(1, _MAP_BYTES // max(1, abs(weights.strides[0])))
    i = 0
    while i < rows.size:
        j = max(i + 1, int(np.searchsorted(rows, rows[i] + span)))
        yield slice(i, j)
        i = j


def _unmap(weights: np.ndarray) -> None:
    """Drop the pages of ``weights``' memory map from this process (the page cache keeps them).

    The kernel maps a file's pages in large folios, not only those a read touches: without
    this, reading every 9th row of ``weights.npy`` puts the whole file (5.4 GB) into the
    process's resident memory, which is what a job's memory limit and ``ru_maxrss`` count.
    """
    mm = getattr(weights, "_mmap", None)  # np.memmap's mapping (absent for an in-memory array)
    if mm is not None and hasattr(mmap, "MADV_DONTNEED"):
        try:
            mm.madvise(mmap.MADV_DONTNEED)
        except (OSError, ValueError):  # a closed map or a platform without it: the pages just stay
            pass


def _finite_rows(weights: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Whether each of ``weights[rows]`` (``rows`` ascending) is all finite, reading the rows
    of :data:`_MAP_BYTES` of the file at a time and unmapping them before the next."""
    ok = np.empty(len(rows), dtype=bool)
    for group in _row_groups(weights, rows):
        ok[group] = np.isfinite(weights[rows[group]]).all(axis=1)
        _unmap(weights)
    return ok


def _read_final_metrics(path: Path, final_step: int, wanted: list[str], required: list[str]):
    """The rows of ``metrics.csv.gz`` with ``step == final_step``, only the ``wanted`` columns.

    Parsed :data:`_CSV_ROWS` rows at a time, so that memory grows with the final rows, not
    with all checkpoints. Returns the table of those rows, their row numbers, the number of
    rows of the file and the steps present (sorted).
    """
    want = set(wanted)
    parts, rows, steps, n, lacking = [], [], set(), 0, []
    try:
        reader = pd.read_csv(path, usecols=lambda c: c in want, chunksize=_CSV_ROWS)
        with reader:
            for chunk in reader:
                lacking = [c for c in required if c not in chunk.columns]
                if lacking:
                    break
                step = pd.to_numeric(chunk["step"], errors="coerce").to_numpy(dtype=np.float64)
                steps.update(np.unique(step[np.isfinite(step)]).tolist())
                hit = np.flatnonzero(step == final_step)
                rows.append(hit + n)
                parts.append(chunk.iloc[hit])
                n += len(chunk)
    except (ValueError, OSError, EOFError, zlib.error) as exc:
        raise ZooArchiveError(f"{path} is not a readable (gzip) CSV: {exc}") from exc
    if lacking:
        raise ZooArchiveError(f"{path} lacks the column(s) {lacking}")
    final = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=wanted)
    rows_arr = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
    return final, rows_arr, n, sorted(int(s) for s in steps)


def read_zoo(
    files: Mapping[str, Path],
    dataset: str,
    *,
    final_step: int = 86,
    max_models: int | None = None,
    seed: int = 0,
) -> xr.Dataset:
    """Read the final models of an extracted zoo into the ``zoo.nc`` contract.

    Keeps the rows with ``step == final_step`` (the zoo's last checkpoint, epoch 86),
    drops those whose weights or train/test accuracy are not finite (crashed runs) and
    those with a missing hyperparameter, and optionally keeps a seeded random subset of
    ``max_models`` of the rest (in their original order).

    Memory grows with the models returned, not with the checkpoints: ``metrics.csv.gz`` is
    parsed in blocks that keep only the final rows, and the final rows of ``weights.npy`` are
    read from its memory map :data:`_MAP_BYTES` of the file at a time, each span unmapped
    before the next (:func:`_unmap`). For the full zoo (270,000 rows x 4970 float32, 5.4 GB;
    ``benchmarks/smallcnnzoo_loader.py``) the peak above the interpreter's baseline is the
    returned weights (29,910 x 4970 float32, 567 MiB), 30 MiB more, and the bool per weight of
    :func:`~causalxai.zoo.dataset.validate_zoo`'s finiteness check (142 MiB): 730 MiB in all,
    against 5.8 GiB when the rows were read from the memory map without unmapping it.

    Args:
        files: ``{"weights", "metrics", "layout"}`` paths, as :func:`extract_zoo_archive`
            returns.
        dataset: one of :data:`ZOO_DATASETS`.
        final_step: the checkpoint to keep.
        max_models: keep at most this many models (``None``: all).
        seed: seed of the subsample.

    Returns:
        The zoo dataset (:func:`causalxai.zoo.dataset.make_zoo_dataset`) with ``source_row``
        the row in ``weights.npy`` and attributes ``n_runs_final_step``,
        ``n_dropped_nonfinite``, ``n_dropped_missing_hparams``, ``final_step``,
        ``max_models`` (-1: all), ``subsample_seed``, ``archive_sha256`` (from the extraction record)
        and ``url`` (empty here; :func:`load_smallcnnzoo` fills it).

    Raises:
        ZooArchiveError (a ValueError): ``layout.csv`` does not describe ``weights.npy``'s
            columns, ``metrics.csv.gz`` does not have one row per weights row or lacks
            columns, no row has ``step == final_step``, or no model is left.
    """
    _check_dataset(dataset)
    if max_models is not None and max_models < 1:
        raise ValueError(f"max_models must be at least 1 or None, got {max_models}")
    missing = [k for k in ZOO_FILES.values() if k not in files]
    if missing:
        raise ValueError(f"read_zoo needs the paths {sorted(ZOO_FILES.values())}; missing {missing}")
    paths = {k: Path(files[k]) for k in ZOO_FILES.values()}
    weights = _load_weights(paths["weights"])

    layout = pd.read_csv(paths["layout"])
    try:
        entries = parse_layout(layout)
    except ValueError as exc:
        raise ZooArchiveError(f"{paths['layout']}: {exc}") from exc
    if entries[-1].end != weights.shape[1]:
        raise ZooArchiveError(
            f"{paths['layout']} describes {entries[-1].end} parameters but {paths['weights']} has "
            f"{weights.shape[1]} columns: the two files do not belong together; delete the "
            f"extraction and its archive and download again"
        )

    hp_cols = {f"config.{name}": name for name in HPARAMS}
    needed = ["step", "test_accuracy", "train_accuracy", *hp_cols]
    wanted = [*needed, "train_loss", "test_loss", "config.dataset"]
    final, rows, n_metrics, present = _read_final_metrics(paths["metrics"], final_step, wanted, needed)
    if n_metrics != weights.shape[0]:
        raise ZooArchiveError(
            f"{paths['metrics']} has {n_metrics} rows but {paths['weights']} has {weights.shape[0]}: "
            f"the zoo has one metrics row per weights row; delete the extraction and its archive "
            f"and download again"
        )
    if rows.size == 0:
        raise ZooArchiveError(
            f"{paths['metrics']} has no row with step == {final_step} (steps present: {present}); "
            f"set zoo.smallcnnzoo.final_step to one of them"
        )
    n_final = int(rows.size)

    if "config.dataset" in final:
        names = set(final["config.dataset"].dropna().astype(str))
        if names and names != {dataset}:
            log.warning("%s: config.dataset is %s, but the zoo was loaded as %r", paths["metrics"], sorted(names),
                        dataset)

    acc_ok = np.ones(n_final, dtype=bool)
    for col in ("test_accuracy", "train_accuracy"):
        acc_ok &= np.isfinite(pd.to_numeric(final[col], errors="coerce").to_numpy(dtype=np.float64))
    finite = _finite_rows(weights, rows) & acc_ok
    hp_ok = np.ones(n_final, dtype=bool)
    for col, name in hp_cols.items():
        if name in CONTINUOUS:
            hp_ok &= np.isfinite(pd.to_numeric(final[col], errors="coerce").to_numpy(dtype=np.float64))
        else:
            hp_ok &= final[col].notna().to_numpy()
    keep = finite & hp_ok
    n_nonfinite = int((~finite).sum())
    n_no_hparams = int((finite & ~hp_ok).sum())
    log.info(
        "%s: %d runs reached step %d; dropped %d with non-finite weights or accuracies%s",
        paths["weights"], n_final, final_step, n_nonfinite,
        f" and {n_no_hparams} with a missing hyperparameter" if n_no_hparams else "",
    )
    kept = np.flatnonzero(keep)
    if kept.size == 0:
        raise ZooArchiveError(
            f"{paths['weights']}: none of the {n_final} runs at step {final_step} has finite weights, "
            f"accuracies and hyperparameters"
        )
    if max_models is not None and max_models < kept.size:
        rng = np.random.default_rng(seed)
        kept = np.sort(rng.choice(kept, size=max_models, replace=False))

    source_row = rows[kept]
    w = np.empty((source_row.size, weights.shape[1]), dtype=np.float32)
    for group in _row_groups(weights, source_row):
        w[group] = weights[source_row[group]]
        _unmap(weights)
    sel = final.iloc[kept].reset_index(drop=True)
    hparams = pd.DataFrame(
        {
            name: (
                sel[col].astype(str).str.strip()
                if name in CATEGORICAL
                else pd.to_numeric(sel[col], errors="coerce").astype(np.float64)
            )
            for col, name in hp_cols.items()
        }
    )
    metric_df = pd.DataFrame(
        {
            c: pd.to_numeric(sel[c], errors="coerce").astype(np.float64)
            for c in ("train_accuracy", "test_accuracy", "train_loss", "test_loss")
            if c in sel
        }
    )
    stamp = _read_stamp(paths["weights"].parent) or {}
    metric_df["source_row"] = source_row
    return make_zoo_dataset(
        w,
        hparams,
        metric_df,
        layout,
        dataset=dataset,
        source="smallcnnzoo",
        input_size=INPUT_SIZE[dataset],
        attrs={
            "n_runs_final_step": n_final,
            "n_dropped_nonfinite": n_nonfinite,
            "n_dropped_missing_hparams": n_no_hparams,
            "final_step": int(final_step),
            "max_models": -1 if max_models is None else int(max_models),
            "subsample_seed": int(seed),
            "archive_sha256": str(stamp.get("sha256", "")),
            "url": "",
        },
    )


def load_smallcnnzoo(
    dataset: str,
    cache_dir: str | os.PathLike[str],
    *,
    url: str | None = None,
    sha256: str | None = None,
    final_step: int = 86,
    max_models: int | None = None,
    seed: int = 0,
    progress: bool = True,
) -> xr.Dataset:
    """Download (once), extract (once) and read the Small CNN Zoo of ``dataset``.

    The archive lies at ``<cache_dir>/<dataset>.tar.xz``, its files in
    ``<cache_dir>/<dataset>/``: :func:`fetch_zoo_archive`, then
    :func:`load_smallcnnzoo_archive` (the workflow runs the two as separate rules,
    ``download_zoo`` and ``zoo_smallcnnzoo``, so that only the first touches the network).
    See :func:`fetch_zoo_archive`, :func:`extract_zoo_archive` and :func:`read_zoo` for the
    arguments and errors.
    """
    _check_dataset(dataset)
    source = zoo_url(dataset, url)
    archive = fetch_zoo_archive(dataset, cache_dir, url=source, sha256=sha256, progress=progress)
    return load_smallcnnzoo_archive(archive, dataset, url=source, final_step=final_step, max_models=max_models,
                                    seed=seed)


def load_smallcnnzoo_archive(
    archive: str | os.PathLike[str],
    dataset: str,
    *,
    url: str | None = None,
    sha256: str | None = None,
    final_step: int = 86,
    max_models: int | None = None,
    seed: int = 0,
) -> xr.Dataset:
    """Extract (once) and read a Small CNN Zoo archive that is already here: never downloads.

    Its files go to ``<archive's folder>/<dataset>/`` (:func:`extract_zoo_archive`), as
    :func:`load_smallcnnzoo` puts them.

    Args:
        archive: the local ``{dataset}.tar.xz`` (:func:`fetch_zoo_archive` downloads it).
        dataset: one of :data:`ZOO_DATASETS`.
        url: where the archive came from, recorded in the ``url`` attribute (default
            :data:`ZOO_URL`); nothing is fetched from it.
        sha256: expected SHA-256 of the archive, checked against the digest the extraction
            records (no second pass over the archive).
        final_step, max_models, seed: see :func:`read_zoo`.

    Raises:
        causalxai.data.download.MissingDownloadError: ``archive`` is not there.
        causalxai.data.download.ChecksumError: the archive's SHA-256 is not ``sha256``.
        ZooArchiveError: see :func:`extract_zoo_archive` and :func:`read_zoo`.
    """
    _check_dataset(dataset)
    source = zoo_url(dataset, url)
    archive = require_downloaded(
        archive,
        "fetch_zoo_archive (the workflow's rule download_zoo: `snakemake --cores 1 --until download_zoo`)",
    )
    dest = archive.parent / dataset
    files = extract_zoo_archive(archive, dest)
    if sha256:  # against the digest the extraction recorded: no second pass over the archive
        verify(archive, sha256=sha256, known={"sha256": str((_read_stamp(dest) or {}).get("sha256", ""))})
    ds = read_zoo(files, dataset, final_step=final_step, max_models=max_models, seed=seed)
    ds.attrs["url"] = source
    return ds
