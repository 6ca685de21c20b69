"""``zoo.source: checkpoints``: a user's own zoo, a folder of state dicts and a CSV of hyperparameters.

One CSV row per model: a column (``file_column``) names its state dict (a path relative
to ``dir``, saved with ``torch.save(model.state_dict(), path)``), one column per declared
hyperparameter (``hparams: {name: {type: categorical | numerical, markers, log}}``,
:func:`causalxai.zoo.hparams.check_hparam_specs`) and, optionally, the test accuracy
(``accuracy_column``). The architecture is ``architecture`` (``"package.module:function"``)
called with ``kwargs``; every state dict must fit it exactly (no missing, unexpected or
mis-shaped entry). Without an accuracy column, the accuracy and loss on the data set's test
split are computed here (the models' batched forward, :mod:`causalxai.zoo.forward`), on the
project's preprocessed images (``dataset.nc``: one channel, ``data.image_size``) reshaped to
``input_shape``; the models must take those inputs.

Everything is read and checked before anything is returned: a missing column, a row whose
file is missing, a file of another architecture or with non-finite weights, a value that is
not a number: a ``ValueError`` naming the table, the row and the file, and no ``zoo.nc``.

The result is a ``zoo.nc`` in the ``state_dict`` layout (:mod:`causalxai.zoo.forward`):
``weights(model, param)`` float32, the state dicts flattened in their order; the declared
hyperparameters as coordinates on ``model`` (strings or floats) and in the attribute
``hparams``; ``source_row`` the CSV row (0-based, header excluded).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
import xarray as xr
from torch import nn

from causalxai.runtime import state_dict_mismatch
from causalxai.zoo.dataset import METRICS, validate_zoo
from causalxai.zoo.forward import (
    STATE_DICT,
    build_module,
    flatten_state_dict,
    state_dict_layout,
    zoo_forward,
)
from causalxai.zoo.hparams import check_hparam_specs

__all__ = ["read_state_dict", "default_last_conv", "make_state_dict_zoo", "test_metrics", "load_checkpoints_zoo",
           "for_dataset", "check_checkpoints_config"]

log = logging.getLogger(__name__)


def read_state_dict(
    path: str | os.PathLike[str], own: Mapping[str, torch.Tensor], what: str
) -> dict[str, torch.Tensor]:
    """A state dict saved at ``path`` (``weights_only=True``; a dict ``{"state_dict": ...}`` is
    unwrapped), checked against the architecture's own state dict ``own``.

    Args:
        path: the file.
        own: the built module's ``state_dict()``.
        what: how errors name the file (e.g. ``"zoo.checkpoints row 3"``).

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a state dict of tensors; missing, unexpected or mis-shaped entries
            (named); non-finite values.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what}: the checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds for a bad file
        raise ValueError(f"{what}: {path} is not a readable state dict ({type(exc).__name__}: {exc})") from exc
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{what}: {path} holds a {type(state).__name__}, not a state dict of tensors "
                         "(save it with torch.save(model.state_dict(), path))")
    mismatch = state_dict_mismatch(state, own, limit=6)
    if mismatch:
        raise ValueError(f"{what}: {path} is not a checkpoint of the declared architecture ({mismatch})")
    bad = [k for k in own if state[k].is_floating_point() and not torch.isfinite(state[k]).all()]
    if bad:
        raise ValueError(f"{what}: {path} has non-finite values in {', '.join(bad[:6])}")
    return {k: state[k] for k in own}  # the module's order


def default_last_conv(module: nn.Module) -> str | None:
    """The Grad-CAM layer of an architecture by default: its last ``nn.Conv2d`` (None: it has none)."""
    names = [n for n, m in module.named_modules() if isinstance(m, nn.Conv2d)]
    return names[-1] if names else None


def make_state_dict_zoo(
    weights: np.ndarray,
    layout: Sequence[Mapping[str, Any]],
    hparams: pd.DataFrame,
    specs: Mapping[str, Mapping[str, Any]],
    metrics: pd.DataFrame,
    *,
    architecture: str,
    kwargs: Mapping[str, Any],
    input_shape: Sequence[int],
    n_classes: int,
    last_conv: str | None,
    dataset: str,
    source: str,
    attrs: Mapping[str, Any] | None = None,
    groups: Sequence[str] | None = None,
) -> xr.Dataset:
    """Assemble and validate a ``zoo.nc`` in the ``state_dict`` layout (module docstring).

    Args:
        weights: flat rows ``(n_models, n_params)`` (:func:`causalxai.zoo.forward.flatten_state_dict`).
        layout: :func:`causalxai.zoo.forward.state_dict_layout` of the architecture.
        hparams: one column per name of ``specs`` (one row per model).
        specs: the declared hyperparameters (:func:`causalxai.zoo.hparams.check_hparam_specs`).
        metrics: any of :data:`causalxai.zoo.dataset.METRICS` (missing ones NaN) and ``source_row``.
        architecture, kwargs, input_shape, n_classes, last_conv: the attributes of
            :mod:`causalxai.zoo.forward`.
        dataset, source: the attributes of the same names.
        attrs: further attributes.
        groups: per model, the keyword arguments (JSON) it adds to ``kwargs`` (coordinate
            ``architecture_group``, :func:`causalxai.zoo.forward.chunk_groups`); None: none.
    """
    weights = np.asarray(weights, dtype=np.float32)
    n = weights.shape[0]
    coords: dict[str, Any] = {"model": np.arange(n), "param": np.arange(weights.shape[1])}
    for name, spec in specs.items():
        col = hparams[name].to_numpy()
        coords[name] = ("model", col.astype(str) if spec["type"] == "categorical" else col.astype(np.float64))
    rows = metrics["source_row"].to_numpy(dtype=np.int64) if "source_row" in metrics else np.arange(n)
    coords["source_row"] = ("model", rows)
    if groups is not None:
        coords["architecture_group"] = ("model", np.asarray(groups, dtype=str))
    data = {"weights": (("model", "param"), weights)}
    for name in METRICS:
        data[name] = ("model", metrics[name].to_numpy(dtype=np.float64) if name in metrics else np.full(n, np.nan))
    ds = xr.Dataset(data, coords=coords)
    ds.attrs.update({
        "weights_layout": STATE_DICT,
        "architecture": architecture,
        "architecture_kwargs": json.dumps(dict(kwargs)),
        "layout": json.dumps(list(layout)),
        "n_params": int(weights.shape[1]),
        "input_shape": json.dumps([int(s) for s in input_shape]),
        "n_classes": int(n_classes),
        "last_conv": last_conv or "",
        "hparams": json.dumps({k: dict(v) for k, v in specs.items()}),
        "dataset": dataset,
        "source": source,
    })
    ds.attrs.update(dict(attrs or {}))
    ds["weights"].attrs["description"] = "flat state dicts: entries in the architecture's order (attribute layout)"
    ds["test_accuracy"].attrs["description"] = "fraction of the test split classified correctly"
    validate_zoo(ds)
    return ds


def test_metrics(zoo: xr.Dataset, dataset: xr.Dataset, chunk: int = 64, batch: int = 1024) -> pd.DataFrame:
    """``test_accuracy`` and ``test_loss`` (mean cross-entropy) of every model of a ``state_dict``
    zoo on the test split of ``dataset.nc``, computed with the batched forward (CPU, float32).

    Raises:
        ValueError: the data set has no test split.
    """
    split = np.asarray(dataset["split"].values).astype(str)
    te = split == "test"
    if not te.any():
        raise ValueError("the data set has no test split: the zoo's test accuracy cannot be computed; give "
                         "zoo.checkpoints.accuracy_column")
    x = torch.tensor(np.asarray(dataset["image"].values)[te][:, None], dtype=torch.float32)
    y = torch.tensor(np.asarray(dataset["label"].values)[te].astype(np.int64))
    n = zoo.sizes["model"]
    correct, loss = np.zeros(n), np.zeros(n)
    for lo in range(0, n, chunk):
        sel = np.arange(lo, min(n, lo + chunk))
        forward = zoo_forward(zoo, sel, "logit")
        with torch.no_grad():
            for b in range(0, x.shape[0], batch):
                logits = forward(x[b:b + batch])  # (M, B, classes)
                yb = y[b:b + batch]
                correct[sel] += (logits.argmax(-1) == yb).sum(-1).numpy()
                lp = torch.log_softmax(logits, -1).gather(-1, yb.expand(sel.size, -1)[..., None])[..., 0]
                loss[sel] -= lp.sum(-1).numpy()
    return pd.DataFrame({"test_accuracy": correct / te.sum(), "test_loss": loss / te.sum()})


def _numbers(col: pd.Series, what: str) -> np.ndarray:
    values = pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise ValueError(f"{what}: row {int(bad[0])} holds {col.iloc[int(bad[0])]!r}, not a finite number "
                         f"({bad.size} such row(s))")
    return values


def load_checkpoints_zoo(
    cfg: Mapping[str, Any],
    dataset: xr.Dataset | None,
    *,
    dataset_name: str = "",
) -> xr.Dataset:
    """Read a checkpoints zoo (module docstring) into a ``zoo.nc`` dataset.

    Args:
        cfg: the config's ``zoo.checkpoints``: ``dir``, ``table``, ``file_column``,
            ``architecture``, ``kwargs``, ``hparams``, and optionally ``accuracy_column``,
            ``input_shape`` (default ``[1, H, W]`` of the data set's images), ``last_conv``
            (default the last ``nn.Conv2d``, ``none`` for no Grad-CAM layer).
        dataset: ``dataset.nc`` (the test split for the accuracy; its image shape for
            ``input_shape``); None only with ``accuracy_column`` and ``input_shape``.
        dataset_name: recorded in the attribute ``dataset``.

    Raises:
        FileNotFoundError: the table or a row's checkpoint is missing.
        ValueError: a missing column, a checkpoint of another architecture, a bad value
            (see the module docstring), each naming the table, the row and the file.
    """
    key = "zoo.checkpoints"
    table = Path(cfg["table"])
    if not table.is_file():
        raise FileNotFoundError(f"{key}.table: {table} does not exist")
    frame = pd.read_csv(table)
    specs = check_hparam_specs(cfg["hparams"], f"{key}.hparams")
    file_col, acc_col = cfg.get("file_column", "file"), cfg.get("accuracy_column")
    needed = [file_col, *specs, *([acc_col] if acc_col else [])]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise ValueError(f"{key}: the table {table} lacks the column(s) {missing} (it has {list(frame.columns)}); "
                         "every declared hyperparameter, file_column and accuracy_column must be a column")
    if len(frame) < 2:
        raise ValueError(f"{key}: the table {table} has {len(frame)} row(s); a zoo needs at least 2 models")
    module = build_module(cfg["architecture"], cfg.get("kwargs", {}))
    own = module.state_dict()
    layout = state_dict_layout(own)
    root = Path(cfg["dir"])
    weights = np.empty((len(frame), layout[-1]["end_idx"]), dtype=np.float32)
    for i, name in enumerate(frame[file_col].astype(str)):
        state = read_state_dict(root / name, own, f"{key} table {table} row {i} ({file_col} {name!r})")
        weights[i] = flatten_state_dict(state)
    hp = pd.DataFrame(index=frame.index)
    for name, spec in specs.items():
        hp[name] = (frame[name].astype(str) if spec["type"] == "categorical"
                    else _numbers(frame[name], f"{key}: column {name!r} of {table}"))
    if cfg.get("input_shape"):
        input_shape = [int(s) for s in cfg["input_shape"]]
    elif dataset is not None:
        input_shape = [1, *np.asarray(dataset["image"].shape[1:]).tolist()]
    else:
        raise ValueError(f"{key}.input_shape: give it, or the data set to take it from")
    try:
        with torch.no_grad():
            out = module(torch.zeros(2, *input_shape))
    except Exception as exc:  # noqa: BLE001 - any failure of the user's forward
        raise ValueError(f"{key}: the architecture {cfg['architecture']!r} does not run on inputs of shape "
                         f"{input_shape} ({type(exc).__name__}: {exc}); set {key}.input_shape or data.image_size"
                         ) from exc
    if out.dim() != 2:
        raise ValueError(f"{key}: the architecture's output is {tuple(out.shape)}, not (batch, classes)")
    last = cfg.get("last_conv")
    last_conv = None if last == "none" else (last or default_last_conv(module))
    if last_conv is not None and last_conv not in dict(module.named_modules()):
        raise ValueError(f"{key}.last_conv: the architecture has no module {last_conv!r}")
    metrics = pd.DataFrame({"source_row": np.arange(len(frame))})
    if acc_col:
        metrics["test_accuracy"] = _numbers(frame[acc_col], f"{key}: column {acc_col!r} of {table}")
    zoo = make_state_dict_zoo(
        weights, layout, hp, specs, metrics.assign(test_accuracy=metrics.get("test_accuracy", 0.0)),
        architecture=cfg["architecture"], kwargs=cfg.get("kwargs", {}), input_shape=input_shape,
        n_classes=int(out.shape[-1]), last_conv=last_conv, dataset=dataset_name, source="checkpoints",
        attrs={"table": str(table), "checkpoint_dir": str(root),
               "accuracy": f"column {acc_col}" if acc_col else "computed on the data set's test split"},
    )
    if not acc_col:
        if dataset is None:
            raise ValueError(f"{key}: without accuracy_column the test accuracy is computed on the data set")
        m = test_metrics(zoo, dataset)
        for name in ("test_accuracy", "test_loss"):
            zoo[name] = xr.DataArray(m[name].to_numpy(), dims="model", attrs=zoo[name].attrs)
        validate_zoo(zoo)
    log.info("checkpoints zoo: %d models of %s, %d parameters each", len(frame), cfg["architecture"], weights.shape[1])
    return zoo


def for_dataset(cfg: Mapping[str, Any], dataset: str, keys: Sequence[str] = ("dir", "table", "path")) -> dict[str, Any]:
    """``cfg`` with ``{dataset}`` filled in its paths (``keys``): one zoo per data set."""
    return {k: (v.replace("{dataset}", dataset) if k in keys and isinstance(v, str) else v) for k, v in cfg.items()}


def check_checkpoints_config(cfg: Mapping[str, Any], datasets: Sequence[str]) -> None:
    """The parse-time check of ``zoo.checkpoints`` (before any job): the keys given, the table
    readable with every declared column, every row's file present, the architecture built and
    the first checkpoint of each data set fitting it. The rule reads and checks every file again.

    Raises:
        ValueError: naming the key, the table, the row or the file.
    """
    key = "zoo.checkpoints"
    for k in ("dir", "table", "architecture"):
        if not cfg.get(k):
            raise ValueError(f"{key}.{k} is required with zoo.source: checkpoints")
    specs = check_hparam_specs(cfg.get("hparams") or {}, f"{key}.hparams")
    module = build_module(cfg["architecture"], cfg.get("kwargs", {}))
    for d in datasets:
        c = for_dataset(cfg, d)
        table = Path(c["table"])
        if not table.is_file():
            raise ValueError(f"{key}.table: {table} does not exist")
        frame = pd.read_csv(table)
        file_col, acc_col = c.get("file_column", "file"), c.get("accuracy_column")
        missing = [col for col in (file_col, *specs, *([acc_col] if acc_col else [])) if col not in frame.columns]
        if missing:
            raise ValueError(f"{key}: the table {table} lacks the column(s) {missing} (it has {list(frame.columns)})")
        for i, name in enumerate(frame[file_col].astype(str)):
            if not (Path(c["dir"]) / name).is_file():
                raise FileNotFoundError(f"{key}: table {table} row {i} names {name!r}, but {Path(c['dir']) / name} "
                                        "does not exist")
        if len(frame):
            read_state_dict(Path(c["dir"]) / str(frame[file_col].iloc[0]), module.state_dict(),
                            f"{key} table {table} row 0")
