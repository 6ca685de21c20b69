"""User data sets (``data.custom.<name>``) and the bundled tabular set ``breast_cancer``, as ``dataset.nc``.

A user data set is declared in the config under ``data.custom.<name>`` with exactly one of

* ``loader: "package.module:function"``: an importable function called with no arguments that
  returns the four arrays, either as a mapping with the keys ``x_train, y_train, x_test, y_test``
  or as the tuple ``(x_train, y_train, x_test, y_test)``;
* ``path: file.npz``: a NumPy archive (``np.savez``) holding the arrays under those four keys
  (relative to the working directory).

and optionally ``range: [lo, hi]`` (the values' raw range, below) and ``n_classes`` (labels
then lie in ``0..n_classes-1``; default: the largest label + 1).

**Arrays** (:func:`validate_arrays`): ``x`` numeric, finite, shaped ``(N, H, W)`` (one-channel
images), ``(N, C, H, W)`` (channel first; channel-last arrays are refused with the transpose to
use) or ``(N, F)`` (a tabular row of F features); ``x_train`` and ``x_test`` of the same shape
but ``N``; ``y`` one label per sample, integer valued in ``0..n_classes-1``, ``n_classes ≥ 2``.

**Preprocessing** (recorded in the ``preprocessing`` attribute of ``dataset.nc``). The package's
convention is an input ``x`` in [−1, 1] with ``raw = (x + 1)/2`` in [0, 1]
(:func:`causalxai.data.dataset.to_raw`), the space in which TRACER sets its occlusion baseline
"before normalisation" (raw 0 = black for the built-in images). Custom data are mapped into it
by an affine map per feature, so that raw 0 means the bottom of the feature's range:

* images: ``raw = (v − lo)/(hi − lo)`` with the declared ``range`` (default ``[0, 255]``, uint8
  pixels); a value outside the range is refused. Channels are kept (``C > 1`` adds a
  ``channel`` dimension to ``image``); the zoo study averages them, as the Small CNN Zoo does.
* tabular: min-max scaling fitted on the train split, per feature,
  ``raw = (v − min_train)/(max_train − min_train)`` (a constant feature gets raw 0), or the
  declared ``range`` for every feature. Test values outside the train range are kept (not
  clipped), so they fall outside [−1, 1]. The minima and maxima are recorded
  (``feature_min``, ``feature_max``: JSON lists). TRACER's default baseline (raw 0) thus sets a
  feature to its training minimum.

A tabular row is carried as a 1 × F image: ``image(sample, y, x)`` with ``y`` of length 1 and
``x`` the F features (attribute ``kind: tabular``, ``feature_names`` as JSON), so every TRACER
step takes it unchanged; its k×k patches become 1×k windows (paper 004 App. D,
:func:`causalxai.tracer.interventions.window_masks`).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

__all__ = [
    "TABULAR_SETS",
    "CustomDataError",
    "load_arrays",
    "validate_arrays",
    "scale_images",
    "fit_minmax",
    "apply_minmax",
    "assemble",
    "load_custom",
    "load_breast_cancer",
    "loader_source",
    "SPLITS",
]

#: the built-in tabular data sets (bundled with scikit-learn: offline)
TABULAR_SETS = ("breast_cancer",)
#: the four arrays a user data set provides
SPLITS = ("x_train", "y_train", "x_test", "y_test")


class CustomDataError(ValueError):
    """A user data set (``data.custom.<name>``) that cannot be read or does not fit the contract."""


def _fail(name: str, what: str, fix: str) -> CustomDataError:
    return CustomDataError(f"data.custom.{name}: {what}; {fix}")


def _import_loader(name: str, loader: str) -> Any:
    module_name, sep, attr = str(loader).partition(":")
    if not sep or not module_name or not attr:
        raise _fail(name, f"loader {loader!r} is not 'package.module:function'",
                    "name an importable module and a function in it, separated by a colon")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - an ImportError, or anything the module's own code raises
        raise _fail(name, f"loader {loader!r}: cannot import {module_name!r} ({type(exc).__name__}: {exc})",
                    "install the module or put its folder on PYTHONPATH") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise _fail(name, f"loader {loader!r}: module {module_name!r} has no function {attr!r}",
                    "name a function defined in that module")
    return fn


def loader_source(loader: str) -> str | None:
    """The source file of a loader's module (``package.module:function``), found without importing
    it; None when it has none (a built-in or compiled module) or cannot be found."""
    module_name = str(loader).partition(":")[0]
    try:
        spec = importlib.util.find_spec(module_name)
    except (ImportError, ValueError):
        return None
    origin = getattr(spec, "origin", None) if spec is not None else None
    return origin if origin and origin.endswith(".py") and os.path.isfile(origin) else None


def load_arrays(name: str, spec: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The four arrays of user data set ``name`` (``data.custom.<name>``: ``loader`` or ``path``).

    Args:
        name: the data set's name (for the errors).
        spec: ``{"loader": "package.module:function"}`` or ``{"path": "file.npz"}`` (module docstring).

    Returns:
        ``{x_train, y_train, x_test, y_test}`` as NumPy arrays (not yet validated: :func:`validate_arrays`).

    Raises:
        CustomDataError: naming the data set, the loader or file, the missing key and the fix.
    """
    has_loader, has_path = spec.get("loader") is not None, spec.get("path") is not None
    if has_loader == has_path:
        raise _fail(name, "give exactly one of loader and path", "loader: 'package.module:function' or path: file.npz")
    if has_path:
        path = Path(spec["path"])
        if not path.is_file():
            raise _fail(name, f"path {str(path)!r} does not exist (relative to {os.getcwd()})",
                        "give an .npz file written by np.savez(path, x_train=..., y_train=..., x_test=..., y_test=...)")
        try:
            with np.load(path, allow_pickle=False) as npz:
                missing = [k for k in SPLITS if k not in npz.files]
                if missing:
                    raise _fail(name, f"{path} lacks the arrays {missing} (it holds {sorted(npz.files)})",
                                "save all four: np.savez(path, x_train=..., y_train=..., x_test=..., y_test=...)")
                return {k: np.asarray(npz[k]) for k in SPLITS}
        except CustomDataError:
            raise
        except Exception as exc:  # noqa: BLE001 - zip, pickle and format errors of a bad file
            raise _fail(name, f"{path} is not a readable .npz archive of plain arrays ({type(exc).__name__}: {exc})",
                        "write it with np.savez (no object arrays)") from None
    fn = _import_loader(name, spec["loader"])
    out = fn()
    where = f"loader {spec['loader']!r}"
    if isinstance(out, Mapping):
        missing = [k for k in SPLITS if k not in out]
        if missing:
            raise _fail(name, f"{where} returned a mapping without {missing} (keys {sorted(map(str, out))})",
                        "return {'x_train': ..., 'y_train': ..., 'x_test': ..., 'y_test': ...}")
        arrays = [out[k] for k in SPLITS]
    elif isinstance(out, Sequence) and not isinstance(out, str) and len(out) == 4:
        arrays = list(out)
    else:
        raise _fail(name, f"{where} returned {type(out).__name__}, not the four arrays",
                    "return (x_train, y_train, x_test, y_test) or a dict with those keys")
    try:
        return {k: np.asarray(a) for k, a in zip(SPLITS, arrays)}
    except Exception as exc:  # noqa: BLE001 - ragged lists and the like
        raise _fail(name, f"{where} returned something that is not an array ({exc})", "return NumPy arrays") from None


def validate_arrays(name: str, arrays: Mapping[str, np.ndarray], n_classes: int | None = None) -> tuple[str, int]:
    """Check the four arrays of user data set ``name`` against the contract (module docstring).

    Args:
        name: the data set (named in the errors).
        arrays: ``x_train, y_train, x_test, y_test``.
        n_classes: the declared number of classes, or None (the largest label + 1).

    Returns:
        ``(kind, n_classes)``: ``"image"`` or ``"tabular"`` and the number of classes.

    Raises:
        CustomDataError: the first array that breaks the contract, its shape or values and the fix.
    """
    for k in SPLITS:
        a = arrays[k]
        if a.dtype == bool or not np.issubdtype(a.dtype, np.number) or np.iscomplexobj(a):
            raise _fail(name, f"{k} has dtype {a.dtype}, not a real number type", f"convert {k} to float or int")
    xtr, xte = arrays["x_train"], arrays["x_test"]
    if xtr.ndim not in (2, 3, 4):
        raise _fail(name, f"x_train has shape {xtr.shape}",
                    "give images (N, H, W) or (N, C, H, W), or tabular rows (N, F)")
    if xte.shape[1:] != xtr.shape[1:] or xte.ndim != xtr.ndim:
        raise _fail(name, f"x_test has shape {xte.shape} but x_train {xtr.shape}",
                    "give train and test samples of the same shape (only N may differ)")
    if xtr.ndim == 4 and xtr.shape[-1] in (1, 3, 4) and xtr.shape[1] not in (1, 3, 4):
        raise _fail(name, f"x_train {xtr.shape} looks channel-last (N, H, W, C)",
                    "give channel-first images: x.transpose(0, 3, 1, 2)")
    if 0 in xtr.shape[1:]:
        raise _fail(name, f"x_train has shape {xtr.shape}, an empty sample", "give samples of at least one value")
    for x, y in (("x_train", "y_train"), ("x_test", "y_test")):
        if arrays[x].shape[0] == 0:
            raise _fail(name, f"{x} holds no samples", f"give at least one sample per class in {x}")
        if arrays[y].ndim != 1 or arrays[y].shape[0] != arrays[x].shape[0]:
            raise _fail(name, f"{y} has shape {arrays[y].shape} for {x} of {arrays[x].shape[0]} samples",
                        f"give one label per sample, shape ({arrays[x].shape[0]},)")
        bad = ~np.isfinite(arrays[x])
        if bad.any():
            first = tuple(int(i) for i in np.argwhere(bad)[0])
            raise _fail(name, f"{x} holds {int(bad.sum())} NaN or infinite values (the first at {first})",
                        "impute or drop them before loading")
    labels = np.concatenate([arrays["y_train"].ravel(), arrays["y_test"].ravel()])
    if not np.isfinite(labels).all() or not np.array_equal(labels, np.round(labels)):
        raise _fail(name, "y_train/y_test hold labels that are not whole numbers", "give integer class labels 0..K-1")
    k = int(labels.max()) + 1 if n_classes is None else int(n_classes)
    if labels.min() < 0 or labels.max() >= k:
        declared = f"the declared n_classes {k}" if n_classes is not None else f"{k} classes"
        raise _fail(name, f"labels {sorted(set(np.unique(labels).astype(int).tolist()))[:20]} lie outside 0..{k - 1} "
                    f"({declared})", "map the classes to 0..K-1 (e.g. np.unique(y, return_inverse=True)) or raise "
                    "data.custom.<name>.n_classes")
    if k < 2:
        raise _fail(name, f"{k} class", "a classifier needs labels of at least two classes")
    return ("tabular" if xtr.ndim == 2 else "image"), k


def scale_images(x: np.ndarray, lo: float, hi: float, *, name: str = "", key: str = "x") -> np.ndarray:
    """Images of raw range ``[lo, hi]`` to the package's [−1, 1]: ``2·(v − lo)/(hi − lo) − 1`` (float32).

    Raises:
        CustomDataError: a value outside ``[lo, hi]`` or ``hi <= lo``.
    """
    if not hi > lo:
        raise _fail(name, f"range [{lo}, {hi}] is empty", "give range: [lo, hi] with lo < hi")
    x = np.asarray(x, dtype=np.float64)
    if x.size and (x.min() < lo or x.max() > hi):
        raise _fail(name, f"{key} has values in [{x.min():g}, {x.max():g}], outside range [{lo:g}, {hi:g}]",
                    "declare the data's range: data.custom.<name>.range: [lo, hi]")
    return (2.0 * (x - lo) / (hi - lo) - 1.0).astype(np.float32)


def fit_minmax(x_train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature minimum and maximum of the training rows ``(N, F)`` (float64)."""
    x = np.asarray(x_train, dtype=np.float64)
    return x.min(axis=0), x.max(axis=0)


def apply_minmax(x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Rows ``(N, F)`` to ``2·raw − 1`` with ``raw = (v − lo)/(hi − lo)`` per feature (raw 0 where
    ``hi == lo``); float32, not clipped."""
    x = np.asarray(x, dtype=np.float64)
    span = np.asarray(hi, dtype=np.float64) - np.asarray(lo, dtype=np.float64)
    raw = np.divide(x - lo, span, out=np.zeros_like(x), where=span > 0)
    return (2.0 * raw - 1.0).astype(np.float32)


def assemble(
    name: str,
    arrays: Mapping[str, np.ndarray],
    *,
    n_classes: int,
    kind: str,
    value_range: Sequence[float] | None = None,
    feature_names: Sequence[str] | None = None,
    attrs: Mapping[str, Any] | None = None,
) -> xr.Dataset:
    """``dataset.nc`` of validated arrays (:func:`validate_arrays`), preprocessed (module docstring).

    Returns:
        The ``dataset.nc`` contract of :mod:`causalxai.data.dataset`: ``image(sample, y, x)`` (one
        channel; tabular rows as ``y`` of length 1) or ``image(sample, channel, y, x)`` (C > 1),
        ``label``, ``split``, ``source_index``; attributes ``kind``, ``n_classes``, ``channels``,
        ``height``, ``width``, ``preprocessing`` and, for tabular data, ``feature_min``,
        ``feature_max`` and ``feature_names``.
    """
    from causalxai.data.dataset import _assemble

    extra: dict[str, Any] = {"kind": kind, **(attrs or {})}
    if kind == "tabular":
        f = arrays["x_train"].shape[1]
        if value_range is None:
            lo, hi = fit_minmax(arrays["x_train"])
            how = "min-max scaling per feature fitted on the train split"
        else:
            lo, hi = np.full(f, float(value_range[0])), np.full(f, float(value_range[1]))
            how = f"the declared range [{value_range[0]:g}, {value_range[1]:g}] for every feature"
        xtr, xte = (apply_minmax(arrays[k], lo, hi)[:, None, None, :] for k in ("x_train", "x_test"))
        names = [str(n) for n in feature_names] if feature_names is not None else [f"f{i}" for i in range(f)]
        extra.update(
            preprocessing=f"tabular rows: raw = (v - lo)/(hi - lo) by {how} (raw 0 where hi == lo), then 2*raw - 1 "
            "(train rows in [-1, 1], test rows not clipped); carried as 1 x F images",
            feature_min=json.dumps(lo.tolist()), feature_max=json.dumps(hi.tolist()),
            feature_names=json.dumps(names),
        )
    else:
        lo, hi = (0.0, 255.0) if value_range is None else (float(value_range[0]), float(value_range[1]))
        xtr, xte = (scale_images(arrays[k] if arrays[k].ndim == 4 else arrays[k][:, None], lo, hi, name=name, key=k)
                    for k in ("x_train", "x_test"))
        extra.update(preprocessing=f"images of raw range [{lo:g}, {hi:g}] mapped to 2*(v - lo)/(hi - lo) - 1 "
                     "(range [-1, 1]), channels kept", value_range=json.dumps([lo, hi]))
    ytr, yte = (np.asarray(arrays[k]).astype(np.int64) for k in ("y_train", "y_test"))
    return _assemble(name, (xtr, ytr, np.arange(len(ytr))), (xte, yte, np.arange(len(yte))), extra,
                     n_classes=n_classes)


def load_custom(name: str, spec: Mapping[str, Any]) -> xr.Dataset:
    """User data set ``name`` (``data.custom.<name>``) loaded, validated and preprocessed.

    Args:
        name: the data set's name.
        spec: ``loader`` or ``path``, optional ``range`` and ``n_classes`` (module docstring).

    Returns:
        ``dataset.nc`` (:func:`assemble`), with ``source`` the loader or file.

    Raises:
        CustomDataError: the loader or file cannot be read, or an array breaks the contract.
    """
    arrays = load_arrays(name, spec)
    kind, k = validate_arrays(name, arrays, spec.get("n_classes"))
    source = f"loader {spec['loader']}" if spec.get("loader") else f"file {spec['path']}"
    return assemble(name, arrays, n_classes=k, kind=kind, value_range=spec.get("range"), attrs={"source": source})


def load_breast_cancer(test_fraction: float = 0.2, seed: int = 0) -> xr.Dataset:
    """scikit-learn's bundled breast-cancer data (569 rows, 30 features, 2 classes; offline) as a
    tabular ``dataset.nc``: a seeded, stratified train/test split
    (:func:`sklearn.model_selection.train_test_split`), then min-max scaling fitted on the train split.

    Args:
        test_fraction: share of rows held out for testing, in (0, 1).
        seed: seed of the split.
    """
    from sklearn.datasets import load_breast_cancer as sk_load
    from sklearn.model_selection import train_test_split

    if not 0.0 < float(test_fraction) < 1.0:
        raise ValueError(f"load_breast_cancer: test_fraction must be in (0, 1), got {test_fraction}")
    data = sk_load()
    x, y = data.data.astype(np.float64), data.target.astype(np.int64)
    itr, ite = train_test_split(np.arange(y.size), test_size=float(test_fraction), random_state=int(seed), stratify=y)
    itr, ite = np.sort(itr), np.sort(ite)
    ds = assemble("breast_cancer", {"x_train": x[itr], "y_train": y[itr], "x_test": x[ite], "y_test": y[ite]},
                  n_classes=2, kind="tabular", feature_names=list(data.feature_names),
                  attrs={"source": "sklearn.datasets.load_breast_cancer", "test_fraction": float(test_fraction),
                         "split_seed": int(seed), "class_names": json.dumps([str(c) for c in data.target_names])})
    ds["source_index"].values[:] = np.concatenate([itr, ite])
    return ds
