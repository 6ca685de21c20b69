"""netCDF conventions shared by every step.

Every step writes one :class:`xarray.Dataset` per output file. Its attributes make the
file explain itself: ``step`` (the workflow step that made it), ``config`` (the config
values the step used, as JSON), ``seed``, and ``causalxai_version``. Writes are atomic:
the dataset goes to a temporary file in the destination folder, is flushed and then
renamed over the destination, so a killed process never leaves a readable but partial
file behind.

Consistency: every file also records ``path`` (where it was written, relative to the working
directory), ``inputs`` (JSON: each input's ``path`` and content ``id``; ``step`` for a netCDF
input, ``size`` for another file) and its own ``content_id``, a hash of its step, config,
seed, package version, the job's wildcards and its inputs' ids (so a file's id changes when
anything it was made from changes, and is the same wherever the same config runs). A netCDF
file's id is its ``content_id``; any other file's is the SHA-256 of its bytes.
:func:`begin_job` (called first by every workflow script) checks the job's inputs and records
them for the files the job writes; :func:`open` and :func:`open_lazy` check the same chain:
a file made from another version of an input is refused (:class:`ProvenanceError`), and a
file that cannot be read is reported as truncated or corrupt (:class:`CorruptFileError`), each
naming the files and the ``--forcerun`` that makes them again. Files without these attributes
(older versions, files written by other tools) are not checked.
"""

from __future__ import annotations

import builtins
import hashlib
import json
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import netCDF4
import numpy as np
import xarray as xr

from causalxai import __version__

__all__ = [
    "read_rows",
    "write_dataset",
    "write_streamed",
    "set_attr",
    "open",
    "open_lazy",
    "provenance",
    "atomic_path",
    "describe",
    "ProvenanceError",
    "CorruptFileError",
    "begin_job",
    "end_job",
    "check_inputs",
    "verify",
    "file_id",
    "content_id",
    "record_inputs",
]


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return value


def _attr_value(value: Any) -> Any:
    """netCDF attributes hold strings, numbers and 1-d numeric arrays only."""
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, (str, int, float, np.integer, np.floating)):
        return value
    return json.dumps(_jsonable(value), sort_keys=True)


class atomic_path:
    """Context manager yielding a temporary path that replaces ``path`` on success.

    The temporary file is ``NAME.tmp`` inside a hidden temporary folder beside the destination
    (``.NAME.XXXX.tmp/NAME.tmp``): its name holds no random part, so writers that store the
    file's name in the file (``torch.save`` names its archive folder after it) write the same
    bytes for the same result in every run (and the same ids, :func:`file_id`); and it does not
    end in the destination's suffix, so a search for ``*.nc`` never finds a partial file. On an
    exception the temporary folder is removed and ``path`` is left untouched.
    """

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)

    def __enter__(self) -> Path:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.folder = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent))
        self.tmp = self.folder / f"{self.path.name}.tmp"
        self.tmp.touch()
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            return
        try:
            with builtins.open(self.tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            # give the result the usual permissions (umask applied), as a plain open() would
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(self.tmp, 0o666 & ~umask)
            os.replace(self.tmp, self.path)
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# Consistency: content ids, recorded inputs and their checks
# ---------------------------------------------------------------------------------------------

#: hex digits of a netCDF file's ``content_id``
CONTENT_ID_LENGTH = 16

#: a non-netCDF file recorded as the input of an input (a ``.pt`` the job does not read itself, a
#: download) is hashed again only up to this size; a larger one is compared by size (its hash is
#: checked by the jobs that read it, :func:`begin_job`)
HASH_CHECK_LIMIT = 64 * 2**20

#: attributes this module sets on every file it writes
_PROVENANCE_ATTRS = ("step", "causalxai_version", "config", "seed", "path", "inputs", "content_id")


class ProvenanceError(ValueError):
    """A result file was made from another version of one of its inputs than the one on disk."""


class CorruptFileError(OSError):
    """A result file that cannot be read: truncated (a full disk, a killed copy) or corrupt."""


def _display(path: str | os.PathLike[str]) -> str:
    """``path`` as the user runs Snakemake: relative to the working directory when inside it, else absolute."""
    full = os.path.abspath(path)
    rel = os.path.relpath(full)
    return full if rel == os.pardir or rel.startswith(os.pardir + os.sep) else Path(rel).as_posix()


def forcerun_advice(path: str | os.PathLike[str]) -> str:
    """The command that makes ``path`` again, and every file made from it, with the current config."""
    return f"snakemake --cores N --forcerun {_display(path)} (with your usual --configfile and options)"


@dataclass(frozen=True)
class _Header:
    """The provenance attributes of a netCDF file (what :func:`verify` reads; no data)."""

    content_id: str | None
    step: str | None
    path: str | None
    inputs: dict[str, dict[str, Any]] = field(default_factory=dict)


_HEADERS: dict[tuple[str, int, int, int], _Header] = {}
_HASHES: dict[tuple[str, int, int, int], str] = {}


#: a file modified less than this many nanoseconds ago is not memoised: a rewrite within the
#: file system's timestamp granularity could keep its inode, size and mtime (as git's "racy" entries)
_RACY_NS = 2 * 10**9


def _stat_key(path: str | os.PathLike[str]) -> tuple[str, int, int, int]:
    """Identifies one version of a file (an atomic write replaces the inode): the memo key."""
    st = os.stat(path)
    return os.path.abspath(path), st.st_ino, st.st_size, st.st_mtime_ns


def _memoisable(key: tuple[str, int, int, int]) -> bool:
    return time.time_ns() - key[3] > _RACY_NS


def _is_netcdf(path: str | os.PathLike[str]) -> bool:
    return str(path).endswith(".nc")


def _corrupt(path: str | os.PathLike[str], err: BaseException) -> CorruptFileError:
    return CorruptFileError(
        f"{_display(path)} cannot be read: truncated or corrupt ({err}). "
        f"Make it again: {forcerun_advice(path)}"
    )


def _header(path: str | os.PathLike[str]) -> _Header:
    """The provenance attributes of the netCDF file ``path`` (memoised per file version).

    Raises:
        CorruptFileError: the file cannot be opened as netCDF.
    """
    key = _stat_key(path)
    if key in _HEADERS:
        return _HEADERS[key]
    try:
        with netCDF4.Dataset(path, "r") as nc:
            attrs = {name: nc.getncattr(name) for name in nc.ncattrs() if name in _PROVENANCE_ATTRS}
    except OSError as err:
        raise _corrupt(path, err) from None
    try:
        inputs = json.loads(attrs["inputs"]) if isinstance(attrs.get("inputs"), str) else {}
    except json.JSONDecodeError:
        inputs = {}
    header = _Header(
        content_id=attrs.get("content_id") if isinstance(attrs.get("content_id"), str) else None,
        step=attrs.get("step") if isinstance(attrs.get("step"), str) else None,
        path=attrs.get("path") if isinstance(attrs.get("path"), str) else None,
        inputs=inputs if isinstance(inputs, dict) else {},
    )
    if _memoisable(key):
        _HEADERS[key] = header
    return header


def _bytes_id(path: str | os.PathLike[str]) -> str:
    """SHA-256 of the file's bytes (read in blocks; memoised per file version)."""
    key = _stat_key(path)
    if key in _HASHES:
        return _HASHES[key]
    with builtins.open(path, "rb") as fh:
        value = hashlib.file_digest(fh, "sha256").hexdigest()
    if _memoisable(key):
        _HASHES[key] = value
    return value


def file_id(path: str | os.PathLike[str]) -> str | None:
    """The content id of a file: a netCDF file's ``content_id`` attribute (None for a file
    without one: written by an older version or another tool), any other file's SHA-256.

    Args:
        path: an existing file.

    Returns:
        The id, or None.

    Raises:
        CorruptFileError: a netCDF file that cannot be read.
    """
    return _header(path).content_id if _is_netcdf(path) else _bytes_id(path)


def record_inputs(
    inputs: Mapping[str, str | os.PathLike[str]], *, check: bool = True
) -> dict[str, dict[str, Any]]:
    """What a file made from ``inputs`` records of them (its ``inputs`` attribute).

    Args:
        inputs: input name -> existing file (a directory is left out).
        check: first check each netCDF input (:func:`verify`: readable, made from the
            inputs on disk).

    Returns:
        name -> ``{"path": ..., "id": ...}`` plus ``"step"`` for a netCDF input and ``"size"``
        (bytes) for another; ``path`` relative to the working directory when inside it.

    Raises:
        CorruptFileError, ProvenanceError: as :func:`verify`.
    """
    out: dict[str, dict[str, Any]] = {}
    for name, path in inputs.items():
        if os.path.isdir(path):
            continue
        entry: dict[str, Any] = {"path": _display(path)}
        if _is_netcdf(path):
            if check:
                verify(path)
            header = _header(path)
            entry.update(id=header.content_id, step=header.step)
        else:
            entry.update(id=_bytes_id(path), size=os.path.getsize(path))
        out[str(name)] = entry
    return out


def content_id(
    step: str,
    config: Mapping[str, Any] | None,
    seed: int | None,
    inputs: Mapping[str, Mapping[str, Any]] | None = None,
    wildcards: Mapping[str, Any] | None = None,
) -> str:
    """The content id of a result: a hash of what made it (not of its bytes, so it is cheap
    for any size and the same wherever the same config runs).

    Args:
        step: the step's name.
        config: the config values the step used.
        seed: the seed it used.
        inputs: its recorded inputs (:func:`record_inputs`); their ids enter the hash.
        wildcards: the job's wildcards (which data set, method, shard).

    Returns:
        :data:`CONTENT_ID_LENGTH` hex digits of a SHA-256.
    """
    what = {
        "step": step,
        "config": _jsonable(dict(config or {})),
        "seed": None if seed is None else int(seed),
        "causalxai_version": __version__,
        "wildcards": {str(k): str(v) for k, v in (wildcards or {}).items()},
        "inputs": {name: entry.get("id") for name, entry in sorted((inputs or {}).items())},
    }
    text = json.dumps(what, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:CONTENT_ID_LENGTH]


def _root(path: str | os.PathLike[str], recorded: str | None) -> Path | None:
    """The working directory ``path`` was written from: its absolute path less its recorded
    relative ``path`` attribute; None where that is unknown (a file written outside the working
    directory records an absolute path) or they disagree (a file copied elsewhere)."""
    if not recorded or Path(recorded).is_absolute():
        return None
    full = Path(os.path.abspath(path))
    rec = Path(recorded)
    if full.parts[-len(rec.parts):] != rec.parts:
        return None
    return Path(*full.parts[: -len(rec.parts)])


def _describe_id(entry_id: str | None, step: str | None) -> str:
    return f"{entry_id}" + (f" (step {step})" if step else "")


def verify(path: str | os.PathLike[str], *, deep: bool = True) -> None:
    """Check that the result file ``path`` can be read and was made from the inputs on disk.

    Reads attributes only. Each input ``path`` recorded (:func:`record_inputs`) that exists
    must have the recorded id: a netCDF input its ``content_id``; another file the SHA-256 of
    its bytes (one larger than :data:`HASH_CHECK_LIMIT`, not hashed yet by this process, only
    its size). Recorded paths are relative to the folder the file was written from (found from
    the file's own recorded ``path``); a file copied elsewhere is checked for readability only.
    Files without provenance attributes are not checked.

    Args:
        path: a netCDF file.
        deep: check the recorded netCDF inputs' own inputs too, up the whole chain.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        CorruptFileError: ``path`` (or a recorded input) cannot be read.
        ProvenanceError: a recorded input on disk has another id, naming both files, both ids
            and what to re-run.
    """
    seen: set[tuple[str, int, int, int]] = set()
    todo = [Path(_existing(path))]
    while todo:
        current = todo.pop()
        key = _stat_key(current)
        if key in seen:
            continue
        seen.add(key)
        header = _header(current)
        root = _root(current, header.path)
        for entry in header.inputs.values():
            recorded = entry.get("path") if isinstance(entry, dict) else None
            if not recorded or entry.get("id") is None:
                continue
            source = Path(recorded)
            if not source.is_absolute():
                if root is None:
                    continue
                source = root / source
            if not source.is_file():
                continue  # deleted (a temporary file, shards removed to save space): nothing to compare
            _compare(current, header, source, entry)
            if deep and _is_netcdf(source):
                todo.append(source)


def _compare(made: Path, made_header: _Header, source: Path, entry: Mapping[str, Any]) -> None:
    """Raise :class:`ProvenanceError` if ``source`` is not the version ``made`` recorded (``entry``)."""
    if _is_netcdf(source):
        header = _header(source)
        now, now_step = header.content_id, header.step
        if now is None:
            return  # no provenance: written by an older version or another tool
    else:
        size = entry.get("size")
        if isinstance(size, int) and os.path.getsize(source) != size:
            now, now_step = f"a file of {os.path.getsize(source)} bytes (recorded: {size})", None
        elif os.path.getsize(source) > HASH_CHECK_LIMIT and _stat_key(source) not in _HASHES:
            return
        else:
            now, now_step = _bytes_id(source), None
    if now == entry["id"]:
        return
    kind = "content id" if _is_netcdf(source) else "SHA-256"
    raise ProvenanceError(
        f"{_display(made)} (step {made_header.step}) was made from another {_display(source)}: "
        f"it recorded {kind} {_describe_id(entry['id'], entry.get('step'))}; the file there now has "
        f"{_describe_id(now, now_step)}. One of the two is stale (restored from a backup, copied in, "
        "or left by another config). Make it and every file made from it again with the current "
        f"config: {forcerun_advice(source)}; or, to keep this {_display(source)}, make again the files "
        f"made from the other one, starting with --forcerun {_display(made)}"
    )


def check_inputs(paths: Iterable[str | os.PathLike[str]]) -> None:
    """:func:`verify` each existing netCDF file of ``paths`` (other files and missing ones are skipped).

    Args:
        paths: a job's input files.

    Raises:
        CorruptFileError, ProvenanceError: as :func:`verify`.
    """
    for path in paths:
        if _is_netcdf(path) and os.path.isfile(path):
            verify(path)


@dataclass
class _Job:
    inputs: dict[str, dict[str, Any]]
    wildcards: dict[str, str]


_JOB: _Job | None = None


def begin_job(
    inputs: Mapping[str, str | os.PathLike[str]], wildcards: Mapping[str, Any] | None = None
) -> dict[str, dict[str, Any]]:
    """Check a job's inputs and record them for every file the job then writes
    (:func:`write_dataset`, :func:`write_streamed` called without ``inputs``).

    Args:
        inputs: input name -> file (leave out the code inputs: they are not results).
        wildcards: the job's wildcards (they enter the written files' content ids).

    Returns:
        The recorded inputs (:func:`record_inputs`).

    Raises:
        CorruptFileError, ProvenanceError: as :func:`verify`, before the job does any work.
    """
    global _JOB
    recorded = record_inputs(inputs)
    _JOB = _Job(inputs=recorded, wildcards={str(k): str(v) for k, v in (wildcards or {}).items()})
    return recorded


def end_job() -> None:
    """Forget the inputs :func:`begin_job` recorded (files written afterwards record none)."""
    global _JOB
    _JOB = None


def _prepared(
    ds: xr.Dataset,
    path: str | os.PathLike[str],
    step: str,
    config: Mapping[str, Any] | None,
    seed: int | None,
    compress: bool,
    encoding: Mapping[str, Mapping[str, Any]] | None,
    inputs: Mapping[str, Mapping[str, Any]] | None,
) -> tuple[xr.Dataset, dict[str, dict[str, Any]]]:
    """``ds`` with the provenance attributes and netCDF-safe attribute values, and its encoding."""
    ds = ds.copy()
    attrs = {k: _attr_value(v) for k, v in ds.attrs.items() if k not in _PROVENANCE_ATTRS}
    if inputs is None:
        inputs = _JOB.inputs if _JOB is not None else {}
    wildcards = _JOB.wildcards if _JOB is not None else {}
    attrs["step"] = step
    attrs["causalxai_version"] = __version__
    attrs["config"] = json.dumps(_jsonable(dict(config or {})), sort_keys=True)
    if seed is not None:
        attrs["seed"] = int(seed)
    attrs["path"] = _display(path)
    attrs["inputs"] = json.dumps(_jsonable(dict(inputs)), sort_keys=True)
    attrs["content_id"] = content_id(step, config, seed, inputs, wildcards)
    ds.attrs = attrs
    for name in list(ds.variables):
        var = ds[name]
        var.attrs = {k: _attr_value(v) for k, v in var.attrs.items()}
    encoding_out: dict[str, dict[str, Any]] = {}
    if compress:
        for name, var in ds.data_vars.items():
            if var.dtype.kind in "fiub" and var.ndim > 0:
                encoding_out[name] = {"zlib": True, "complevel": 4}
    for name, extra in (encoding or {}).items():
        encoding_out[name] = {**encoding_out.get(name, {}), **dict(extra)}
    return ds, encoding_out


def write_dataset(
    ds: xr.Dataset,
    path: str | os.PathLike[str],
    *,
    step: str,
    config: Mapping[str, Any] | None = None,
    seed: int | None = None,
    compress: bool = True,
    encoding: Mapping[str, Mapping[str, Any]] | None = None,
    inputs: Mapping[str, Mapping[str, Any]] | None = None,
) -> Path:
    """Write ``ds`` to ``path`` atomically with provenance attributes.

    Args:
        ds: the dataset to write.
        path: destination ``.nc`` file.
        step: the workflow step's name (stored as the ``step`` attribute).
        config: the config values the step used (stored as JSON in ``config``).
        seed: the seed the step used.
        compress: zlib-compress every numeric data variable.
        encoding: extra netCDF encoding per variable (e.g. ``chunksizes``), merged over
            the compression settings.
        inputs: the inputs it was made from (:func:`record_inputs`), stored as ``inputs``;
            default: those of the running job (:func:`begin_job`), else none. With them the
            file gets its ``path`` and ``content_id`` (:func:`content_id`).

    Returns:
        ``path``.
    """
    ds, encoding_out = _prepared(ds, path, step, config, seed, compress, encoding, inputs)
    with atomic_path(path) as tmp:
        ds.to_netcdf(tmp, engine="netcdf4", encoding=encoding_out)
    return Path(path)


#: HDF5 chunk cache (bytes per variable) of a file opened lazily or written block by block.
#: netCDF-C's default is 64 MiB per variable and open file, and a block-by-block read or write
#: fills it: a gather over 64 shards held 4 GB of cache, the predictions of 30,000 models
#: 320 MB. Blocks take whole chunks in order, so a small cache costs no speed.
LAZY_CHUNK_CACHE = 4 * 2**20


@contextmanager
def _chunk_cache(size: int) -> Iterator[None]:
    """netCDF-C's default chunk cache set to ``size`` bytes for the files opened inside (it is
    read when a file opens), restored afterwards."""
    default = netCDF4.get_chunk_cache()
    netCDF4.set_chunk_cache(int(size), default[1], default[2])
    try:
        yield
    finally:
        netCDF4.set_chunk_cache(*default)


@contextmanager
def write_streamed(
    skeleton: xr.Dataset,
    path: str | os.PathLike[str],
    *,
    step: str,
    config: Mapping[str, Any] | None = None,
    seed: int | None = None,
    encoding: Mapping[str, Mapping[str, Any]] | None = None,
    inputs: Mapping[str, Mapping[str, Any]] | None = None,
) -> Iterator[netCDF4.Dataset]:
    """Write a file too large for memory: ``skeleton`` (coordinates, small variables,
    attributes) is written as :func:`write_dataset` would, then the open
    :class:`netCDF4.Dataset` is yielded for the caller to add the large variables and fill
    them block by block (``nc.createVariable``, ``nc[name][start:stop] = block``). The file
    appears at ``path`` only when the block exits without an exception (atomic, as
    :func:`write_dataset`).

    Args:
        skeleton: the dataset's small part; its dimensions must already hold every
            dimension the large variables use (e.g. a coordinate ``model`` of full length).
        path, step, config, seed, encoding, inputs: as :func:`write_dataset`.
    """
    ds, encoding_out = _prepared(skeleton, path, step, config, seed, True, encoding, inputs)
    with atomic_path(path) as tmp:
        ds.to_netcdf(tmp, engine="netcdf4", encoding=encoding_out)
        # blocks are written in order: a small cache for the file and the variables created in it
        with _chunk_cache(LAZY_CHUNK_CACHE), netCDF4.Dataset(tmp, "a") as nc:
            yield nc


def set_attr(nc: netCDF4.Dataset | netCDF4.Variable, name: str, value: Any) -> None:
    """Set a netCDF attribute in this module's convention (mappings and lists as JSON)."""
    nc.setncattr(name, _attr_value(value))


def _existing(path: str | os.PathLike[str]) -> Path:
    """``path`` as a Path; :class:`FileNotFoundError` naming it and how to make it if it is not there."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"{path} does not exist: run the workflow step that makes it "
            f"(e.g. `snakemake --cores 2 {path}`)."
        )
    return path


def open(  # noqa: A001
    path: str | os.PathLike[str], variables: list[str] | None = None, *, verify: bool = True
) -> xr.Dataset:
    """Load a result file into memory (the file is closed afterwards); mirrors xarray.open_dataset.

    Args:
        path: the netCDF file.
        variables: load only these data variables (those the file has; coordinates always),
            e.g. a map file's ``E`` without its raw ``attribution``.
        verify: first check that it was made from the inputs on disk (:func:`verify`).

    Returns:
        The dataset, in memory.

    Raises:
        FileNotFoundError: naming the missing file and the step that makes it.
        CorruptFileError: the file cannot be read (truncated or corrupt), naming the ``--forcerun``.
        ProvenanceError: it was made from another version of an input (:func:`verify`).
    """
    path = _existing(path)
    _check(path, verify)
    try:
        if variables is None:
            return xr.load_dataset(path, engine="netcdf4")
        with xr.open_dataset(path, engine="netcdf4") as ds:
            keep = [v for v in ds.data_vars if v in set(variables)]
            return ds[keep].load()
    except (OSError, RuntimeError) as err:
        if isinstance(err, CorruptFileError):
            raise
        raise _corrupt(path, err) from None


def _check(path: Path, full: bool) -> None:
    """:func:`verify` ``path`` (``full``) or only that it can be read."""
    if full:
        verify(path)  # the module's function (open's keyword of that name does not reach here)
    else:
        _header(path)


def open_lazy(
    path: str | os.PathLike[str],
    variables: list[str] | None = None,
    *,
    chunk_cache: int = LAZY_CHUNK_CACHE,
    verify: bool = True,
) -> xr.Dataset:
    """Open a result file lazily: values are read from disk only when indexed (``.isel``,
    ``.values``), so a step can read one block of models at a time and its memory does not
    grow with the file. The caller closes it (``ds.close()`` or ``with open_lazy(p) as ds``).

    Args:
        path: the netCDF file.
        variables: keep only these data variables (those the file has; coordinates always).
        chunk_cache: the HDF5 chunk cache of each of its variables, in bytes (see
            :data:`LAZY_CHUNK_CACHE`).
        verify: first check that it was made from the inputs on disk (:func:`verify`).

    Returns:
        The lazily opened dataset.

    Raises:
        FileNotFoundError: naming the missing file and the step that makes it.
        CorruptFileError: the file cannot be read (truncated or corrupt), naming the ``--forcerun``.
        ProvenanceError: it was made from another version of an input (:func:`verify`).
    """
    path = _existing(path)
    _check(path, verify)
    try:
        with _chunk_cache(chunk_cache):
            ds = xr.open_dataset(path, engine="netcdf4", cache=False)
    except OSError as err:
        raise _corrupt(path, err) from None
    if variables is not None:
        whole = ds
        ds = ds[[v for v in ds.data_vars if v in set(variables)]]
        ds.set_close(whole.close)  # a subset does not inherit the file's close: closing it must close the file
    return ds


def read_rows(da: xr.DataArray, dim: str, rows: np.ndarray, block_bytes: int = 64 * 2**20) -> np.ndarray:
    """``da.isel({dim: rows}).values`` of a lazily opened variable (:func:`open_lazy`), read as
    contiguous blocks of ``dim`` (the file's chunks along it, else blocks of ``block_bytes``),
    only the blocks that hold rows, the rows picked from each block in memory. A variable
    chunked across many rows (the explanation shards: 150 models per chunk) read row by row
    with a small chunk cache decompressed a whole chunk once per row (a bucket's 120 models
    of maps: about 16 s instead of 0.6 s); a block reads every chunk once. Memory: one block
    and the result.

    Args:
        da: the variable, ``dim`` its first dimension.
        dim: the dimension the rows index.
        rows: positions along ``dim``, in any order (repeats allowed).
        block_bytes: the block of a variable stored without chunks.

    Returns:
        The rows in the order given, as :meth:`xarray.DataArray.isel` would return them.
    """
    rows = np.asarray(rows, dtype=np.int64)
    if da.dims[0] != dim:
        raise ValueError(f"read_rows: {dim!r} must be the first dimension of {da.name!r}, not {da.dims}")
    per_row = int(np.prod(da.shape[1:])) * da.dtype.itemsize
    out = np.empty((rows.size, *da.shape[1:]), dtype=da.dtype)
    if rows.size == 0:
        return out
    chunks = da.encoding.get("chunksizes")
    # blocks of whole chunks where the file has them (only the chunks that hold rows are read),
    # else of block_bytes
    step = int(chunks[0]) if chunks else max(1, int(block_bytes) // max(per_row, 1))
    lo, hi = int(rows.min()), int(rows.max()) + 1
    for start in range(lo - lo % step, hi, step):
        stop = min(start + step, hi)
        sel = np.flatnonzero((rows >= start) & (rows < stop))
        if sel.size:
            block = np.asarray(da.isel({dim: slice(start, stop)}).values)
            out[sel] = block[rows[sel] - start]
    return out


def provenance(ds: xr.Dataset) -> dict[str, Any]:
    """The provenance attributes of a result: step, config (parsed), seed, version, its content id
    and the inputs it was made from (parsed; None and {} for a file of an older version)."""
    out: dict[str, Any] = {
        "step": ds.attrs.get("step"),
        "causalxai_version": ds.attrs.get("causalxai_version"),
        "seed": ds.attrs.get("seed"),
        "content_id": ds.attrs.get("content_id"),
    }
    raw = ds.attrs.get("config")
    out["config"] = json.loads(raw) if isinstance(raw, str) else {}
    raw = ds.attrs.get("inputs")
    out["inputs"] = json.loads(raw) if isinstance(raw, str) else {}
    return out


def describe(ds: xr.Dataset, descriptions: Mapping[str, str]) -> xr.Dataset:
    """Set the ``description`` attribute of each named variable of ``ds`` (in place); returns ``ds``."""
    for name, text in descriptions.items():
        ds[name].attrs["description"] = text
    return ds
