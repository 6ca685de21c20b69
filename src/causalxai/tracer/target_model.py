"""The target model TRACER explains: build it from the config, train it, save and load it
(paper 004 §4, App. F, Table 2).

The architecture is named in the config: ``alexnet28`` (:func:`causalxai.tracer.model.alexnet28`,
the paper's MNIST network) or ``"package.module:function"``, any importable callable
``function(in_channels=..., n_classes=..., image_size=...)`` returning a classifier whose
forward runs its modules one after another (an ``nn.Sequential``, nested or not), so that
TRACER can observe its layers by name or type.

The weights file is a plain ``torch.save`` of a dict (architecture, its keyword arguments,
``state_dict``) and is read back with ``torch.load(weights_only=True)``: a weights file
from elsewhere can never run code when loaded.

Inputs are the dataset's images as the Small CNN Zoo preprocesses them (``x/255*2-1``):
TRACER's raw space, where an intervention sets pixels to the baseline "before
normalisation", is ``(x + 1) / 2`` in [0, 1] (:func:`causalxai.data.dataset.to_raw`,
:func:`causalxai.data.dataset.from_raw`).
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import xarray as xr
from torch import nn

from causalxai.checks import refuse
from causalxai.io import atomic_path
from causalxai.runtime import predict
from causalxai.tracer.model import alexnet28, layer_table, train_classifier
from causalxai.tracer.settings import ClassifierSettings

__all__ = [
    "BUILTIN",
    "build_classifier",
    "dataset_tensors",
    "train_target_model",
    "save_target_model",
    "load_target_model",
]

#: architectures known by name
BUILTIN: dict[str, Callable[..., nn.Module]] = {"alexnet28": alexnet28}


def _resolve(architecture: str) -> Callable[..., nn.Module]:
    if architecture in BUILTIN:
        return BUILTIN[architecture]
    if ":" not in architecture:
        raise ValueError(
            f"tracer.model.architecture {architecture!r} is unknown: use one of {sorted(BUILTIN)} "
            "or 'package.module:function' naming a callable that returns a torch classifier"
        )
    module_name, _, attr = architecture.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"tracer.model.architecture {architecture!r}: cannot import {module_name!r} ({exc})") from exc
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ValueError(f"tracer.model.architecture {architecture!r}: {module_name} has no callable {attr!r}")
    return fn


def build_classifier(architecture: str, **kwargs: Any) -> nn.Module:
    """The named architecture, built with ``kwargs`` (``in_channels``, ``n_classes``, ...)."""
    model = _resolve(architecture)(**kwargs)
    if not isinstance(model, nn.Module):
        raise ValueError(
            f"tracer.model.architecture {architecture!r} returned {type(model).__name__}, not a torch module"
        )
    return model


def dataset_tensors(dataset: xr.Dataset, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Images ``(N, 1, H, W)`` float32 and labels ``(N,)`` of one split of ``dataset.nc``."""
    sel = np.asarray(dataset["split"].values).astype(str) == split
    if not sel.any():
        raise ValueError(f"dataset {dataset.attrs.get('dataset', '')!r} has no {split!r} samples")
    x = torch.tensor(np.asarray(dataset["image"].values)[sel][:, None], dtype=torch.float32)
    y = torch.tensor(np.asarray(dataset["label"].values)[sel], dtype=torch.int64)
    return x, y


def train_target_model(
    dataset: xr.Dataset, settings: ClassifierSettings, *, device: str = "auto", progress: bool = False
) -> tuple[nn.Module, dict[str, Any], xr.Dataset]:
    """Train the target classifier on the dataset's train split (paper 004 App. F: Adam,
    lr 1e-3) and describe it.

    Args:
        dataset: ``dataset.nc``.
        settings: ``architecture``, ``dropout`` (the built-in architecture's) and the training
            loop's ``epochs``, ``batch_size``, ``lr``, ``seed``
            (:func:`~causalxai.tracer.model.train_classifier`).
        device: where to train.
        progress: log the epochs at a steady rate.

    Returns the model (eval mode, on CPU), the keyword arguments it was built with, and
    ``target_model.nc``: ``test_accuracy``, ``train_accuracy``, ``n_params`` (attributes and
    variables), the training curves ``train_loss(epoch)``, ``test_loss(epoch)``,
    ``train_accuracy_curve(epoch)``, ``test_accuracy_curve(epoch)`` and the layer table
    (Table 2) on dim ``layer``: ``layer_type``, ``output_shape`` (e.g. ``"32x26x26"``),
    ``n_outputs``, ``n_params_layer``.

    Raises:
        causalxai.checks.DegenerateResultError: the training diverged (the last epoch's
            training loss is not finite): every TRACER step would analyse a model of NaN
            weights.
    """
    x_train, y_train = dataset_tensors(dataset, "train")
    x_test, y_test = dataset_tensors(dataset, "test")
    architecture = settings.architecture
    kwargs = {"in_channels": int(x_train.shape[1]), "n_classes": int(dataset.attrs.get("n_classes", 10))}
    if architecture == "alexnet28":
        kwargs.update(dropout=settings.dropout, image_size=int(x_train.shape[-1]))
    torch.manual_seed(settings.seed)  # the initial weights
    model = build_classifier(architecture, **kwargs)
    model, hist = train_classifier(model, x_train, y_train, x_test, y_test, settings, device=device,
                                   progress="target model" if progress else None)
    model = model.cpu().eval()
    if hist["train_loss"] and not np.isfinite(hist["train_loss"][-1]):
        refuse("target_model", f"the training loss of {architecture}",
               f"not finite at the last epoch ({hist['train_loss'][-1]}; the training diverged and the weights are "
               "NaN)", causes=f"a learning rate too high (tracer.model.lr: {settings.lr})",
               fix="lower tracer.model.lr (e.g. by 10x)")
    table = layer_table(model, tuple(x_train.shape[1:]))
    train_acc = float(np.mean(predict(model, x_train, batch_size=1024, output="label").numpy() == y_train.numpy()))
    n_params = int(table.attrs["total_params"])
    ds = xr.Dataset(
        {
            "test_accuracy": ((), float(hist["final_test_accuracy"])),
            "train_accuracy": ((), train_acc),
            "n_params": ((), n_params),
            "train_loss": ("epoch", np.asarray(hist["train_loss"], dtype=float)),
            "test_loss": ("epoch", np.asarray(hist["test_loss"], dtype=float)),
            "train_accuracy_curve": ("epoch", np.asarray(hist["train_accuracy"], dtype=float)),
            "test_accuracy_curve": ("epoch", np.asarray(hist["test_accuracy"], dtype=float)),
            "layer_type": ("layer", table["type"].astype(str).to_numpy()),
            "output_shape": ("layer", np.array(["x".join(map(str, s)) if s else "" for s in table["output_shape"]])),
            "n_outputs": ("layer", table["n_outputs"].fillna(0).astype(np.int64).to_numpy()),
            "n_params_layer": ("layer", table["params"].astype(np.int64).to_numpy()),
        },
        coords={"epoch": np.asarray(hist["epoch"], dtype=np.int64), "layer": table["name"].astype(str).to_numpy()},
        attrs={
            "architecture": architecture,
            "dataset": str(dataset.attrs.get("dataset", "")),
            "n_train": int(len(y_train)),
            "n_test": int(len(y_test)),
            "initial_test_accuracy": float(hist["initial_test_accuracy"]),
        },
    )
    ds["test_accuracy"].attrs["description"] = "share of the test split classified correctly"
    ds["n_params"].attrs["description"] = "trainable and frozen parameters of the whole model (paper 004 Table 2)"
    return model, kwargs, ds


def save_target_model(
    model: nn.Module, architecture: str, kwargs: dict[str, Any], path: str | os.PathLike[str]
) -> None:
    """Write the weights file atomically (architecture, kwargs, state_dict)."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        torch.save({"architecture": architecture, "kwargs": dict(kwargs), "state_dict": state}, tmp)


def load_checkpoint(path: str | os.PathLike[str], keys: Sequence[str], what: str, rule: str) -> dict[str, Any]:
    """A ``torch.save``d dict with at least ``keys``, loaded with ``weights_only=True`` on the CPU.

    Args:
        path: the file.
        keys: the entries it must hold.
        what: what the file is, for the errors (e.g. ``"target-model checkpoint"``).
        rule: the rule that writes it (named in the fix).

    Returns:
        The dict. An unreadable file or one without ``keys`` raises :class:`ValueError` naming it.
    """
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds for a bad file
        raise ValueError(f"{path}: not a readable {what} ({exc}); delete it and re-run {rule}") from exc
    if not isinstance(ckpt, dict) or not set(keys) <= set(ckpt):
        raise ValueError(f"{path}: not a {what} (needs {', '.join(keys)})")
    return ckpt


def load_target_model(path: str | os.PathLike[str]) -> nn.Module:
    """Rebuild the classifier from its weights file, in eval mode on the CPU.

    Loaded with ``weights_only=True``; a file that is not such a checkpoint gives an error
    naming it.
    """
    path = Path(path)
    ckpt = load_checkpoint(path, ("architecture", "kwargs", "state_dict"), "target-model checkpoint", "target_model")
    model = build_classifier(str(ckpt["architecture"]), **dict(ckpt["kwargs"]))
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as exc:
        raise ValueError(f"{path}: the weights do not fit architecture {ckpt['architecture']!r}: {exc}") from exc
    return model.eval()
