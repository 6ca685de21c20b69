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
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
import xarray as xr
from torch import nn

from causalxai.checks import refuse
from causalxai.data.dataset import model_inputs
from causalxai.io import atomic_path
from causalxai.runtime import eval_mode, predict, state_dict_mismatch
from causalxai.tracer.mlp import mlp
from causalxai.tracer.model import alexnet28, layer_table, resnet_small, train_classifier
from causalxai.tracer.settings import ClassifierSettings

__all__ = [
    "BUILTIN",
    "build_classifier",
    "is_torchscript",
    "ScriptedLayer",
    "ScriptedChain",
    "unscript",
    "load_torchscript_target",
    "load_pretrained_target",
    "target_checkpoint",
    "dataset_tensors",
    "architecture_kwargs",
    "classifier_kwargs",
    "train_target_model",
    "load_trained_target",
    "describe_target_model",
    "save_target_model",
    "load_target_model",
]

#: architectures known by name
BUILTIN: dict[str, Callable[..., nn.Module]] = {"alexnet28": alexnet28, "resnet_small": resnet_small, "mlp": mlp}


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
    """Images ``(N, C, H, W)`` float32 (:func:`~causalxai.data.dataset.model_inputs`: one channel, or
    ``dataset.nc``'s ``channel`` dimension; tabular rows ``(N, 1, 1, F)``) and labels ``(N,)`` of one split."""
    sel = np.asarray(dataset["split"].values).astype(str) == split
    if not sel.any():
        raise ValueError(f"dataset {dataset.attrs.get('dataset', '')!r} has no {split!r} samples")
    x = torch.tensor(model_inputs(dataset)[sel], dtype=torch.float32)
    y = torch.tensor(np.asarray(dataset["label"].values)[sel], dtype=torch.int64)
    return x, y


def architecture_kwargs(
    architecture: str, input_shape: Sequence[int], n_classes: int, dropout: float
) -> dict[str, Any]:
    """The keyword arguments the target's architecture is built with: ``in_channels`` and
    ``n_classes``; for the built-in ``alexnet28`` also ``dropout`` and ``image_size``, for ``mlp``
    ``n_inputs`` (``C·H·W``).

    Args:
        architecture: ``tracer.model.architecture``.
        input_shape: one input's ``(channels, height, width)``.
        n_classes: the classes of the data set.
        dropout: ``tracer.model.dropout`` (the built-in architecture's).
    """
    kwargs: dict[str, Any] = {"in_channels": int(input_shape[0]), "n_classes": int(n_classes)}
    if architecture == "alexnet28":
        kwargs.update(dropout=float(dropout), image_size=int(input_shape[-1]))
    elif architecture == "mlp":  # tabular rows (1 x 1 x F) or any input, flattened
        kwargs.update(n_inputs=int(np.prod(input_shape)))
    return kwargs


def classifier_kwargs(dataset: xr.Dataset, settings: ClassifierSettings) -> dict[str, Any]:
    """:func:`architecture_kwargs` for ``dataset`` (its inputs' shape and classes)."""
    x = dataset_tensors(dataset, "test")[0]
    return architecture_kwargs(settings.architecture, tuple(x.shape[1:]), int(dataset.attrs.get("n_classes", 10)),
                               settings.dropout)


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
    ``target_model.nc`` (:func:`describe_target_model`).

    Raises:
        causalxai.checks.DegenerateResultError: the training diverged (the last epoch's
            training loss is not finite): every TRACER step would analyse a model of NaN
            weights.
    """
    x_train, y_train = dataset_tensors(dataset, "train")
    x_test, y_test = dataset_tensors(dataset, "test")
    architecture = settings.architecture
    kwargs = classifier_kwargs(dataset, settings)
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
    ds = describe_target_model(model, dataset, architecture, hist)
    ds.attrs["initial_test_accuracy"] = float(hist["initial_test_accuracy"])
    return model, kwargs, ds


def load_trained_target(
    dataset: xr.Dataset, settings: ClassifierSettings, weights: str | os.PathLike[str]
) -> tuple[nn.Module, dict[str, Any], xr.Dataset]:
    """The target classifier with the user's trained weights: ``settings.architecture`` built
    as :func:`train_target_model` builds it, and a state dict loaded into it (no training).

    ``weights`` is a file written by ``torch.save(model.state_dict(), path)`` (or a dict
    holding it under ``state_dict``, as this step's own ``target_model.pt``); it is read with
    ``weights_only=True`` (tensors only: no code runs), on the CPU, strictly (every parameter
    and buffer of the architecture, nothing else, each of the same shape).

    Args:
        dataset: ``dataset.nc`` (the architecture's input shape and classes; the accuracies).
        settings: ``architecture`` and ``dropout`` (the training keys are not used).
        weights: the state dict's file.

    Returns:
        As :func:`train_target_model`; ``target_model.nc`` has no training curves (its
        ``epoch`` dimension is empty) and records the file in the ``weights`` attribute.

    Raises:
        FileNotFoundError: naming ``tracer.model.weights`` and the file.
        ValueError: the file is not a state dict, or it does not fit the architecture (the
            missing, unexpected and mis-shaped entries named).
    """
    path = Path(weights)
    if not path.is_file():
        raise FileNotFoundError(f"tracer.model.weights: {path} does not exist; give the path of a saved state dict "
                                "(torch.save(model.state_dict(), path))")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds for a bad file
        raise ValueError(f"tracer.model.weights: {path} is not a readable state dict ({type(exc).__name__}: {exc}); "
                         "save it with torch.save(model.state_dict(), path)") from exc
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"tracer.model.weights: {path} holds a {type(state).__name__}, not a state dict of tensors; "
                         "save it with torch.save(model.state_dict(), path)")
    kwargs = classifier_kwargs(dataset, settings)
    model = build_classifier(settings.architecture, **kwargs)
    mismatch = state_dict_mismatch(state, model.state_dict())
    if mismatch:
        raise ValueError(f"tracer.model.weights: {path} does not fit tracer.model.architecture "
                         f"{settings.architecture!r} built with {kwargs} ({mismatch}); give the weights of "
                         "that architecture, or name the architecture the weights were trained with")
    model.load_state_dict(state)
    model = model.eval()
    ds = describe_target_model(model, dataset, settings.architecture, None)
    ds.attrs["weights"] = str(path)
    return model, kwargs, ds


def is_torchscript(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a TorchScript archive (``torch.jit.save``: a zip file with a
    ``code/`` folder), as opposed to a ``torch.save`` file (a zip without one) or anything else."""
    try:
        with zipfile.ZipFile(path) as archive:
            return any("/code/" in f"/{name}" for name in archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


class ScriptedLayer(nn.Module):
    """One submodule of a TorchScript model as an eager module, so that forward hooks (which
    torch refuses on ScriptModules) can observe its output. The scripted module is held but not
    registered as a child (the wrapper is a leaf named as the scripted submodule); its
    parameters are this module's (the same tensors), ``train``/``eval`` and ``to`` reach it."""

    def __init__(self, scripted: Any):
        super().__init__()
        object.__setattr__(self, "scripted", scripted)
        self._share_parameters()
        self.kind = str(getattr(scripted, "original_name", type(scripted).__name__))

    def _share_parameters(self) -> None:
        self._parameters.clear()
        for name, param in self.scripted.named_parameters():
            self._parameters[name.replace(".", "_")] = param

    def forward(self, *args: Any) -> Any:
        return self.scripted(*args)

    def _apply(self, fn: Callable, recurse: bool = True) -> "ScriptedLayer":
        self.scripted._apply(fn)  # its parameters and buffers (a move to another device makes new tensors)
        self._share_parameters()
        return self

    def train(self, mode: bool = True) -> "ScriptedLayer":
        super().train(mode)
        self.scripted.train(mode)
        return self

    def extra_repr(self) -> str:
        return f"scripted {self.kind}"


class ScriptedChain(nn.Sequential):
    """A TorchScript ``nn.Sequential`` (nested ones too) rebuilt from its scripted children
    (:func:`unscript`); ``scripted`` is the original, written back by :func:`save_target_model`."""

    def train(self, mode: bool = True) -> "ScriptedChain":
        super().train(mode)
        scripted = self.__dict__.get("scripted")
        if scripted is not None:
            scripted.train(mode)
        return self


def unscript(scripted: Any, example_input: torch.Tensor | None = None, *, source: str = "the TorchScript model"
             ) -> ScriptedChain:
    """A TorchScript model whose forward runs its children one after another (a scripted
    ``nn.Sequential``, nested or not) as an eager ``nn.Sequential`` of :class:`ScriptedLayer`
    with the same module names, so TRACER's forward hooks can record every layer.

    Args:
        scripted: ``torch.jit.load``'s module.
        example_input: a batch it takes; when given, the rebuilt chain's output must equal the
            scripted model's (exactly), else the model is refused.
        source: the file, for the errors.

    Raises:
        ValueError: the model is not a scripted ``nn.Sequential`` (its forward is code TRACER
            cannot hook: give a state dict or a factory instead), it cannot take
            ``example_input``, or the chain differs from it.
    """
    how = ("torch refuses forward hooks inside TorchScript, so TRACER observes a TorchScript model only when it is "
           "a scripted nn.Sequential (nested or not); otherwise give its state dict (tracer.model.weights with "
           "tracer.model.architecture) or a factory (tracer.model.pretrained: true)")
    if str(getattr(scripted, "original_name", "")) != "Sequential":
        raise ValueError(f"tracer.model.weights: {source} is a TorchScript {getattr(scripted, 'original_name', '?')}, "
                         f"not a scripted nn.Sequential; {how}")

    def rebuild(module: Any) -> nn.Module:
        if str(getattr(module, "original_name", "")) == "Sequential":
            return ScriptedChain(OrderedDict((n, rebuild(c)) for n, c in module.named_children()))
        return ScriptedLayer(module)

    chain = rebuild(scripted)
    assert isinstance(chain, ScriptedChain)
    object.__setattr__(chain, "scripted", scripted)
    if example_input is not None:
        shape = "x".join(map(str, example_input.shape[1:]))
        try:
            with eval_mode(chain), torch.no_grad():
                want, got = scripted(example_input), chain(example_input)
        except Exception as exc:  # noqa: BLE001 - the scripted forward can raise anything
            raise ValueError(f"tracer.model.weights: {source} cannot take inputs of shape {shape} "
                             f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); give a model "
                             "of the data set's input shape") from None
        if not (isinstance(want, torch.Tensor) and isinstance(got, torch.Tensor) and want.shape == got.shape
                and bool(torch.equal(want, got))):
            raise ValueError(f"tracer.model.weights: {source}: its children run one after another do not give its "
                             f"output; {how}")
    return chain.eval()


def _check_logits(model: nn.Module, dataset: xr.Dataset, what: str) -> None:
    """``model`` maps two test inputs to ``(2, n_classes)`` logits, else ``ValueError`` naming ``what``."""
    x = dataset_tensors(dataset, "test")[0][:2]
    n_classes = int(dataset.attrs.get("n_classes", 10))
    shape = "x".join(map(str, x.shape[1:]))
    try:
        with eval_mode(model), torch.no_grad():
            y = model(x)
    except Exception as exc:  # noqa: BLE001 - a user's model can raise anything
        raise ValueError(f"{what} cannot take the {dataset.attrs.get('dataset', '')} inputs {shape} "
                         f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None
    if not isinstance(y, torch.Tensor) or tuple(y.shape) != (len(x), n_classes):
        got = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
        raise ValueError(f"{what} returns {got} for {len(x)} inputs {shape}, not logits ({len(x)}, {n_classes})")


def load_torchscript_target(
    dataset: xr.Dataset, path: str | os.PathLike[str]
) -> tuple[nn.Module, dict[str, Any], xr.Dataset]:
    """The target classifier from a TorchScript file (``torch.jit.save``), as
    :func:`load_trained_target` loads a state dict: no training; the scripted ``nn.Sequential``
    is rebuilt as eager modules (:func:`unscript`) so TRACER's hooks can record its layers.

    Loading TorchScript runs the archive's code: give only files you trust.

    Args:
        dataset: ``dataset.nc`` (its input shape and classes; the accuracies).
        path: the TorchScript file (``tracer.model.weights``).

    Returns:
        The model (:class:`ScriptedChain`), empty keyword arguments and ``target_model.nc``
        (``architecture`` "torchscript", ``weights`` the file).

    Raises:
        ValueError: not a scripted ``nn.Sequential``, another input shape or not
            ``n_classes`` logits (the file and the shapes named).
    """
    path = Path(path)
    try:
        scripted = torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds for a bad archive
        raise ValueError(f"tracer.model.weights: {path} is not a readable TorchScript archive ({exc})") from None
    x = dataset_tensors(dataset, "test")[0][:2]
    model = unscript(scripted, x, source=str(path))
    _check_logits(model, dataset, f"tracer.model.weights: the TorchScript model {path}")
    ds = describe_target_model(model, dataset, "torchscript", None)
    ds.attrs.update(weights=str(path), trained="loaded (tracer.model.weights, TorchScript)")
    return model, {}, ds


def load_pretrained_target(
    dataset: xr.Dataset, settings: ClassifierSettings
) -> tuple[nn.Module, dict[str, Any], xr.Dataset]:
    """The target classifier a factory returns already trained (``tracer.model.pretrained:
    true``): ``settings.architecture`` (``package.module:function``) called with
    :func:`classifier_kwargs`, used as it comes (no training).

    Raises:
        ValueError: the factory returns no ``nn.Module``, or a model that does not take the
            data set's inputs or return its classes' logits.
    """
    kwargs = classifier_kwargs(dataset, settings)
    model = build_classifier(settings.architecture, **kwargs).cpu().eval()
    _check_logits(model, dataset, f"tracer.model.architecture {settings.architecture!r} (pretrained)")
    ds = describe_target_model(model, dataset, settings.architecture, None)
    ds.attrs["trained"] = "pretrained (tracer.model.pretrained: the factory's own weights)"
    return model, kwargs, ds


def target_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """``architecture`` and ``kwargs`` of ``target_model.pt`` (``"torchscript"`` and ``{}`` for a
    TorchScript target)."""
    if is_torchscript(path):
        return {"architecture": "torchscript", "kwargs": {}}
    ckpt = load_checkpoint(path, ("architecture", "kwargs", "state_dict"), "target-model checkpoint", "target_model")
    return {"architecture": str(ckpt["architecture"]), "kwargs": dict(ckpt["kwargs"])}


def describe_target_model(
    model: nn.Module, dataset: xr.Dataset, architecture: str, hist: Mapping[str, Any] | None
) -> xr.Dataset:
    """``target_model.nc``: ``test_accuracy``, ``train_accuracy``, ``n_params`` (attributes and
    variables), the training curves ``train_loss(epoch)``, ``test_loss(epoch)``,
    ``train_accuracy_curve(epoch)``, ``test_accuracy_curve(epoch)`` (empty without ``hist``:
    loaded weights) and the layer table (Table 2) on dim ``layer``: ``layer_type``,
    ``output_shape`` (e.g. ``"32x26x26"``), ``n_outputs``, ``n_params_layer``.

    Args:
        model: the classifier, in eval mode on the CPU.
        dataset: ``dataset.nc``.
        architecture: its name, recorded.
        hist: the training history of :func:`~causalxai.tracer.model.train_classifier`, or None.
    """
    x_train, y_train = dataset_tensors(dataset, "train")
    x_test, y_test = dataset_tensors(dataset, "test")
    table = layer_table(model, tuple(x_train.shape[1:]))

    def accuracy(x: torch.Tensor, y: torch.Tensor) -> float:
        return float(np.mean(predict(model, x, batch_size=1024, output="label").numpy() == y.numpy()))

    train_acc = accuracy(x_train, y_train)
    test_acc = float(hist["final_test_accuracy"]) if hist is not None else accuracy(x_test, y_test)
    curves = {k: np.asarray(hist[k] if hist is not None else [], dtype=float)
              for k in ("train_loss", "test_loss", "train_accuracy", "test_accuracy")}
    epochs = np.asarray(hist["epoch"] if hist is not None else [], dtype=np.int64)
    n_params = int(table.attrs["total_params"])
    ds = xr.Dataset(
        {
            "test_accuracy": ((), test_acc),
            "train_accuracy": ((), train_acc),
            "n_params": ((), n_params),
            "train_loss": ("epoch", curves["train_loss"]),
            "test_loss": ("epoch", curves["test_loss"]),
            "train_accuracy_curve": ("epoch", curves["train_accuracy"]),
            "test_accuracy_curve": ("epoch", curves["test_accuracy"]),
            "layer_type": ("layer", table["type"].astype(str).to_numpy()),
            "output_shape": ("layer", np.array(["x".join(map(str, s)) if s else "" for s in table["output_shape"]])),
            "n_outputs": ("layer", table["n_outputs"].fillna(0).astype(np.int64).to_numpy()),
            "n_params_layer": ("layer", table["params"].astype(np.int64).to_numpy()),
        },
        coords={"epoch": epochs, "layer": table["name"].astype(str).to_numpy()},
        attrs={
            "architecture": architecture,
            "dataset": str(dataset.attrs.get("dataset", "")),
            "n_train": int(len(y_train)),
            "n_test": int(len(y_test)),
            "trained": "here" if hist is not None else "loaded (tracer.model.weights)",
        },
    )
    ds["test_accuracy"].attrs["description"] = "share of the test split classified correctly"
    ds["n_params"].attrs["description"] = "trainable and frozen parameters of the whole model (paper 004 Table 2)"
    return ds


def save_target_model(
    model: nn.Module, architecture: str, kwargs: dict[str, Any], path: str | os.PathLike[str]
) -> None:
    """Write the weights file atomically (architecture, kwargs, state_dict); a TorchScript
    target (:class:`ScriptedChain`) is written back as its TorchScript archive."""
    if isinstance(model, ScriptedChain):
        with atomic_path(path) as tmp:
            torch.jit.save(model.scripted, str(tmp))
        return
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
    naming it. A TorchScript archive (the target of a TorchScript ``tracer.model.weights``) is
    loaded with ``torch.jit.load`` and rebuilt by :func:`unscript`.
    """
    path = Path(path)
    if is_torchscript(path):
        return unscript(torch.jit.load(str(path), map_location="cpu"), source=str(path))
    ckpt = load_checkpoint(path, ("architecture", "kwargs", "state_dict"), "target-model checkpoint", "target_model")
    model = build_classifier(str(ckpt["architecture"]), **dict(ckpt["kwargs"]))
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as exc:
        raise ValueError(f"{path}: the weights do not fit architecture {ckpt['architecture']!r}: {exc}") from exc
    return model.eval()
