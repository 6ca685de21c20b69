"""netCDF conventions shared by every step.

Every step writes one :class:`xarray.Dataset` per output file. Its attributes make the
file explain itself: ``step`` (the workflow step that made it), ``config`` (the config
values the step used, as JSON), ``seed``, and ``causalxai_version``. Writes are atomic:
the dataset goes to a temporary file in the destination folder, is flushed and then
renamed over the destination, so a killed process never leaves a readable but partial
file behind.
"""

from __future__ import annotations

import builtins
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping

import netCDF4
import numpy as np
import xarray as xr

from causalxai import __version__

__all__ = ["write_dataset", "write_streamed", "set_attr", "open", "open_lazy", "provenance", "atomic_path", "describe"]


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

    On an exception the temporary file is removed and ``path`` is left untouched.
    """

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)

    def __enter__(self) -> Path:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        os.close(fd)
        self.tmp = Path(tmp)
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.tmp.unlink(missing_ok=True)
            return
        with builtins.open(self.tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        # mkstemp creates 0600 files; give the result the usual permissions (umask applied)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(self.tmp, 0o666 & ~umask)
        os.replace(self.tmp, self.path)


def _prepared(
    ds: xr.Dataset,
    step: str,
    config: Mapping[str, Any] | None,
    seed: int | None,
    compress: bool,
    encoding: Mapping[str, Mapping[str, Any]] | None,
) -> tuple[xr.Dataset, dict[str, dict[str, Any]]]:
    """``ds`` with the provenance attributes and netCDF-safe attribute values, and its encoding."""
    ds = ds.copy()
    attrs = {k: _attr_value(v) for k, v in ds.attrs.items()}
    attrs["step"] = step
    attrs["causalxai_version"] = __version__
    attrs["config"] = json.dumps(_jsonable(dict(config or {})), sort_keys=True)
    if seed is not None:
        attrs["seed"] = int(seed)
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
    """
    ds, encoding_out = _prepared(ds, step, config, seed, compress, encoding)
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
        path, step, config, seed, encoding: as :func:`write_dataset`.
    """
    ds, encoding_out = _prepared(skeleton, step, config, seed, True, encoding)
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


def open(path: str | os.PathLike[str], variables: list[str] | None = None) -> xr.Dataset:  # noqa: A001
    """Load a result file into memory (the file is closed afterwards); mirrors xarray.open_dataset.

    Args:
        path: the netCDF file.
        variables: load only these data variables (those the file has; coordinates always),
            e.g. a map file's ``E`` without its raw ``attribution``.

    Raises:
        FileNotFoundError: naming the missing file and the step that makes it.
    """
    path = _existing(path)
    if variables is None:
        return xr.load_dataset(path, engine="netcdf4")
    with xr.open_dataset(path, engine="netcdf4") as ds:
        keep = [v for v in ds.data_vars if v in set(variables)]
        return ds[keep].load()


def open_lazy(
    path: str | os.PathLike[str], variables: list[str] | None = None, *, chunk_cache: int = LAZY_CHUNK_CACHE
) -> xr.Dataset:
    """Open a result file lazily: values are read from disk only when indexed (``.isel``,
    ``.values``), so a step can read one block of models at a time and its memory does not
    grow with the file. The caller closes it (``ds.close()`` or ``with open_lazy(p) as ds``).

    Args:
        path: the netCDF file.
        variables: keep only these data variables (those the file has; coordinates always).
        chunk_cache: the HDF5 chunk cache of each of its variables, in bytes (see
            :data:`LAZY_CHUNK_CACHE`).

    Raises:
        FileNotFoundError: naming the missing file and the step that makes it.
    """
    path = _existing(path)
    with _chunk_cache(chunk_cache):
        ds = xr.open_dataset(path, engine="netcdf4", cache=False)
    if variables is not None:
        whole = ds
        ds = ds[[v for v in ds.data_vars if v in set(variables)]]
        ds.set_close(whole.close)  # a subset does not inherit the file's close: closing it must close the file
    return ds


def provenance(ds: xr.Dataset) -> dict[str, Any]:
    """The provenance attributes of a result: step, config (parsed), seed, version."""
    out: dict[str, Any] = {
        "step": ds.attrs.get("step"),
        "causalxai_version": ds.attrs.get("causalxai_version"),
        "seed": ds.attrs.get("seed"),
    }
    raw = ds.attrs.get("config")
    out["config"] = json.loads(raw) if isinstance(raw, str) else {}
    return out


def describe(ds: xr.Dataset, descriptions: Mapping[str, str]) -> xr.Dataset:
    """Set the ``description`` attribute of each named variable of ``ds`` (in place); returns ``ds``."""
    for name, text in descriptions.items():
        ds[name].attrs["description"] = text
    return ds
