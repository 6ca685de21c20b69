"""The ``zoo.nc`` data contract, shared by every zoo source.

``zoo.nc`` holds one row per model:

* ``weights(model, param)`` float32, in the Small CNN Zoo's flat layout
  (:mod:`causalxai.zoo.network`);
* ``train_accuracy``, ``test_accuracy``, ``train_loss``, ``test_loss`` ``(model)``;
* coordinates on ``model``: every hyperparameter of :data:`causalxai.zoo.hparams.HPARAMS`
  (strings for the categorical ones, floats for the continuous ones) and ``source_row``
  (the run's row in the source: the archive's ``metrics.csv`` or the training order);
* attributes: ``architecture`` and ``layout`` (JSON), ``n_params``, ``in_channels``,
  ``input_size``, ``dataset``, ``source`` and whatever the source adds (for example
  ``n_dropped_nonfinite``).
"""

from __future__ import annotations

import json
import os
from typing import Any, Mapping

import numpy as np
import pandas as pd
import torch
import xarray as xr

from causalxai.io import open as open_result
from causalxai.zoo.hparams import CATEGORICAL, HPARAMS, hparam_specs
from causalxai.zoo.network import (
    ARCHITECTURE,
    ZooCNN,
    layout_from_json,
    layout_to_json,
    n_params,
    parse_layout,
    unflatten,
)

__all__ = [
    "METRICS",
    "make_zoo_dataset",
    "validate_zoo",
    "zoo_layout_of",
    "model_from_zoo",
    "zoo_params",
    "zoo_rows",
    "open_hparams",
]

METRICS = ("train_accuracy", "test_accuracy", "train_loss", "test_loss")


def make_zoo_dataset(
    weights: np.ndarray,
    hparams: pd.DataFrame,
    metrics: pd.DataFrame,
    layout: pd.DataFrame,
    *,
    dataset: str,
    source: str,
    input_size: int,
    attrs: Mapping[str, Any] | None = None,
) -> xr.Dataset:
    """Assemble a ``zoo.nc`` dataset (see the module docstring) and validate it.

    Args:
        weights: flat zoo-layout weights ``(n_models, n_params)``.
        hparams: one row per model with every hyperparameter of :data:`causalxai.zoo.hparams.HPARAMS`.
        metrics: one row per model with any of :data:`METRICS` (missing ones are NaN) and,
            optionally, ``source_row``: the run's row in the source (default the row order).
        layout: the flat layout (``layout.csv``).
        dataset, source, input_size: the attributes of the same names.
        attrs: further attributes (the source's own).
    """
    weights = np.asarray(weights, dtype=np.float32)
    n = weights.shape[0]
    if len(hparams) != n or len(metrics) != n:
        raise ValueError(f"{n} weight rows but {len(hparams)} hyperparameter and {len(metrics)} metric rows")
    coords: dict[str, Any] = {"model": np.arange(n), "param": np.arange(weights.shape[1])}
    for name in HPARAMS:
        if name not in hparams:
            raise ValueError(f"hyperparameter column {name!r} is missing")
        col = hparams[name].to_numpy()
        coords[name] = ("model", col.astype(str) if name in CATEGORICAL else col.astype(np.float64))
    rows = metrics["source_row"].to_numpy(dtype=np.int64) if "source_row" in metrics else np.arange(n)
    coords["source_row"] = ("model", rows)
    data = {"weights": (("model", "param"), weights)}
    for name in METRICS:
        data[name] = ("model", metrics[name].to_numpy(dtype=np.float64) if name in metrics else np.full(n, np.nan))
    in_channels = next(e.shape[2] for e in parse_layout(layout) if e.kind == "kernel" and len(e.shape) == 4)
    ds = xr.Dataset(data, coords=coords)
    ds.attrs.update(
        {
            "architecture": json.dumps(ARCHITECTURE),
            "layout": layout_to_json(layout),
            "n_params": n_params(layout),
            "in_channels": in_channels,
            "input_size": int(input_size),
            "dataset": dataset,
            "source": source,
        }
    )
    ds.attrs.update(dict(attrs or {}))
    ds["weights"].attrs["description"] = "flat zoo layout: per layer bias then kernel (TF HWIO / (in, out))"
    ds["test_accuracy"].attrs["description"] = "fraction of the test split classified correctly"
    validate_zoo(ds)
    return ds


def validate_zoo(ds: xr.Dataset) -> None:
    """Check a zoo dataset: finite weights and accuracies, all hyperparameters present (those of
    :data:`~causalxai.zoo.hparams.HPARAMS`, or those a zoo of any architecture declares in its
    attribute ``hparams``)."""
    specs = hparam_specs(ds.attrs)
    missing = [n for n in (*specs, *METRICS, "weights") if n not in ds.variables]
    if missing:
        raise ValueError(f"zoo dataset lacks {missing}")
    w = ds["weights"]
    # checked 4,096 rows at a time: a whole-zoo mask would be one byte per weight (149 MB at 30k)
    bad = np.concatenate([~np.isfinite(w.isel(model=slice(i, i + 4096)).values).all(axis=1)
                          for i in range(0, max(w.sizes["model"], 1), 4096)])
    if bad.any():
        raise ValueError(
            f"zoo dataset has {int(bad.sum())} model(s) with non-finite weights, e.g. model {int(np.argmax(bad))}"
        )
    acc = ds["test_accuracy"].values
    if not np.isfinite(acc).all():
        raise ValueError("zoo dataset has non-finite test accuracies")
    for name in (n for n, spec in specs.items() if spec["type"] == "numerical"):
        if not np.isfinite(np.asarray(ds[name].values, dtype=np.float64)).all():
            raise ValueError(f"zoo dataset has non-finite values of hyperparameter {name}")


def zoo_layout_of(ds: xr.Dataset) -> pd.DataFrame:
    return layout_from_json(ds.attrs["layout"])


def zoo_params(
    ds: xr.Dataset, models: slice | np.ndarray | None = None, device: str | torch.device = "cpu"
) -> dict[str, torch.Tensor]:
    """Torch-ordered parameters (leading model dim) of the selected models of a zoo.

    Only the rows between the smallest and the largest selected position are read, so on a
    zoo opened lazily (:func:`causalxai.io.open_lazy`) memory follows the selection (a block
    of neighbouring models), not the zoo.

    Args:
        ds: ``zoo.nc``, in memory or lazy.
        models: positions (not labels) of the models on ``model``; all by default.
        device: where the tensors live.

    Returns:
        ``{parameter name: tensor (len(models), ...)}`` in torch's layout.
    """
    return unflatten(torch.tensor(_weight_rows(ds, models), device=device), zoo_layout_of(ds))


def zoo_rows(ds: xr.Dataset, start: int, stop: int) -> xr.Dataset:
    """The weights (with the zoo's attributes) of the models at positions ``start:stop``,
    read into memory at once: a block or a shard of a lazily opened zoo is read once, and
    :func:`zoo_params` then takes its chunks from memory (positions relative to ``start``)."""
    return ds[["weights"]].isel(model=slice(int(start), int(stop))).load()


def open_hparams(path: str | os.PathLike[str]) -> xr.Dataset:
    """``zoo.nc`` without its weights: the hyperparameters (coordinates), :data:`METRICS` and
    the attributes, for the steps that need no weights (memory O(models), not O(models × parameters))."""
    return open_result(path, variables=list(METRICS))


def _weight_rows(ds: xr.Dataset, models: slice | np.ndarray | int | None) -> np.ndarray:
    """float32 ``weights`` rows at positions ``models``, reading their bounding range only."""
    w = ds["weights"]
    if models is None or isinstance(models, slice):
        return np.asarray(w.isel(model=models if models is not None else slice(None)).values, dtype=np.float32)
    idx = np.asarray(models, dtype=np.int64)
    if idx.ndim == 0:
        return np.asarray(w.isel(model=int(idx)).values, dtype=np.float32)
    if idx.size == 0:
        return np.zeros((0, w.sizes["param"]), dtype=np.float32)
    lo, hi = int(idx.min()), int(idx.max()) + 1
    return np.asarray(w.isel(model=slice(lo, hi)).values, dtype=np.float32)[idx - lo]


def model_from_zoo(ds: xr.Dataset, model: int) -> ZooCNN:
    """Rebuild one model of a zoo as a :class:`ZooCNN` (eval mode).

    Args:
        ds: ``zoo.nc`` (in memory or :func:`causalxai.io.open_lazy`), or a selection of it.
        model: the model's **label** (its ``model`` coordinate), not its position: after
            ``zoo.isel(model=[3, 5])``, ``model_from_zoo(sub, 5)`` is the zoo's model 5, as
            ``ds.sel(model=5)`` would be (for the i-th model of a selection pass
            ``int(sub["model"][i])``).

    Returns:
        The model, eval mode, CPU.

    Raises:
        KeyError: no model of that label in ``ds`` (the message gives the labels it holds).
    """
    labels = np.asarray(ds["model"].values)
    found = np.flatnonzero(labels == model)
    if found.size != 1:
        shown = ", ".join(str(v) for v in labels[:5]) + (", ..." if labels.size > 5 else "")
        raise KeyError(
            f"model_from_zoo: no model labelled {model!r} in this zoo ({labels.size} models: {shown}); it takes "
            "the 'model' label, not a position: for the i-th model pass int(ds['model'][i])"
        )
    i = int(found[0])
    return ZooCNN.from_flat(_weight_rows(ds, i), zoo_layout_of(ds), str(ds["activation"].values[i]))
