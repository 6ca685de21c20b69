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
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import xarray as xr

from causalxai import __version__

__all__ = ["write_dataset", "open", "provenance", "atomic_path", "describe"]


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
    with atomic_path(path) as tmp:
        ds.to_netcdf(tmp, engine="netcdf4", encoding=encoding_out)
    return Path(path)


def open(path: str | os.PathLike[str], variables: list[str] | None = None) -> xr.Dataset:  # noqa: A001
    """Load a result file into memory (the file is closed afterwards); mirrors xarray.open_dataset.

    Args:
        path: the netCDF file.
        variables: load only these data variables (those the file has; coordinates always),
            e.g. a map file's ``E`` without its raw ``attribution``.

    Raises:
        FileNotFoundError: naming the missing file and the step that makes it.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"{path} does not exist: run the workflow step that makes it "
            f"(e.g. `snakemake --cores 2 {path}`)."
        )
    if variables is None:
        return xr.load_dataset(path, engine="netcdf4")
    with xr.open_dataset(path, engine="netcdf4") as ds:
        keep = [v for v in ds.data_vars if v in set(variables)]
        return ds[keep].load()


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
