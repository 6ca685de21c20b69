"""``zoo.source: modelzoos``: a zoo in the format of Schürholt et al., "Model Zoos: A Dataset of
Diverse Populations of Neural Network Models" (NeurIPS 2022 Datasets and Benchmarks).

**The format** (their public code, ``ModelZoos/ModelZooDataset``: the zoos are Ray Tune runs of
``NN_tune_trainable``, read back by ``checkpoints_to_datasets/dataset_base.py``). A zoo is a folder
(or a ``.zip``/``.tar``/``.tar.gz``/``.tar.xz`` archive of one) holding one sub-folder per model
(a Tune trial) and, beside them, files of the whole experiment (``config.json``,
``dataset.pt``, ...; files are ignored). A model's folder holds:

* ``params.json``: the model's config, keys ``model::type`` (``CNN``, ``CNN2``, ``CNN3``,
  ``MLP``), ``model::channels_in``, ``model::nlin``, ``model::dropout``,
  ``model::init_type``, ``optim::optimizer``, ``optim::lr``, ``optim::wd``, ``seed``,
  ``training::*`` (and ``model::i_dim``/``h_dim``/``o_dim``/``use_bias`` for an MLP);
* ``result.json``: one JSON object per line and training iteration, with
  ``training_iteration``, ``train_acc``, ``test_acc``, ``train_loss``, ``test_loss``
  (``-999`` for the train values of the first line, the untrained test pass);
  ``progress.csv`` the same as a table (read when ``result.json`` is missing);
* ``checkpoint_<epoch>/checkpoints`` (``<epoch>`` six digits, ``checkpoint_000050``, or plain):
  ``torch.save(model.state_dict())`` of the network; ``checkpoint_<k>`` goes with the
  ``result.json`` line of ``training_iteration == k`` (their loader's ``idx_offset``).

**The networks** (their ``def_net.py``), rebuilt here with the same state-dict keys
(``module_list.<i>.weight``): :func:`cnn` (the MNIST/Fashion-MNIST/USPS zoos' CNN, 28×28
inputs: Conv(c, 8, 5) → MaxPool 2 → act → Conv(8, 6, 5) → MaxPool 2 → act → Conv(6, 4, 2)
→ act → Flatten → Linear(36, 20) → act → Linear(20, 10), a Dropout after the first two
blocks and the hidden linear layer when ``dropout > 0``), :func:`cnn2` (6, 9, 6 channels),
:func:`cnn3` (the CIFAR-10/SVHN/STL-10 zoos' CNN for 32×32 inputs: Conv(c, 16, 3), Conv(16,
32, 3), Conv(32, 15, 3), each followed by MaxPool 2, act, Dropout; Linear(60, 20), Linear(20,
10)) and :func:`mlp`. Dropout modules shift the indices of the layers after them, so a zoo
whose models differ in ``dropout`` (0 or not) has state dicts of two key sets: each is read
into the zoo's architecture (with Dropout modules; identities in eval mode) by the order of
its entries, shapes checked. The activation varies between the models of a hyperparameter
zoo: it is the models' ``architecture_group`` (:func:`causalxai.zoo.forward.chunk_groups`).

The hyperparameters are those the config declares (``zoo.modelzoos.hparams: {name: {key,
type, markers, log}}``, ``key`` the ``params.json`` key); the metrics are ``result.json``'s at
the chosen epoch (``zoo.modelzoos.epoch``; default the last checkpoint every model has).
Every folder is read and checked before the zoo is returned (a missing file or key, a
state dict of another network, non-finite values: a ``ValueError`` naming the folder).
"""

from __future__ import annotations

import json
import logging
import re
import tarfile
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd
import torch
import xarray as xr
from torch import nn

from causalxai.zoo.checkpoints import default_last_conv, make_state_dict_zoo
from causalxai.zoo.forward import flatten_state_dict, state_dict_layout
from causalxai.zoo.hparams import check_hparam_specs

__all__ = ["NLINS", "ModelZooNet", "cnn", "cnn2", "cnn3", "mlp", "ARCHITECTURES", "read_model_folder",
           "load_modelzoo", "check_modelzoos_config"]

log = logging.getLogger(__name__)

#: the activations of their networks
NLINS = {"leakyrelu": nn.LeakyReLU, "relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "silu": nn.SiLU,
         "gelu": nn.GELU, "elu": nn.ELU, "celu": nn.CELU}
_CHECKPOINT = re.compile(r"^checkpoint_(\d+)$")


class ModelZooNet(nn.Module):
    """A network of the Model Zoos: its layers in ``module_list``, run in order."""

    def __init__(self, layers: list[nn.Module]) -> None:
        super().__init__()
        self.module_list = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.module_list:
            x = layer(x)
        return x


def _act(nlin: str) -> nn.Module:
    if nlin not in NLINS:
        raise ValueError(f"model::nlin {nlin!r} is not one of the Model Zoos' activations {sorted(NLINS)}")
    return NLINS[nlin]()


def _conv_net(channels: tuple[int, int, int], kernels: tuple[int, int, int], pool3: bool, hidden_in: int,
              channels_in: int, nlin: str, dropout: float, always_dropout: bool) -> ModelZooNet:
    layers: list[nn.Module] = []
    c_in = channels_in
    drop = always_dropout or dropout > 0
    for i, (c, k) in enumerate(zip(channels, kernels)):
        layers.append(nn.Conv2d(c_in, c, k))
        if i < 2 or pool3:
            layers.append(nn.MaxPool2d(2, 2))
        layers.append(_act(nlin))
        if drop and (i < 2 or always_dropout):
            layers.append(nn.Dropout(dropout))
        c_in = c
    layers += [nn.Flatten(), nn.Linear(hidden_in, 20), _act(nlin)]
    if drop:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(20, 10))
    return ModelZooNet(layers)


def cnn(channels_in: int = 1, nlin: str = "tanh", dropout: float = 0.0) -> ModelZooNet:
    """``CNN`` of their ``def_net.py`` (28×28 inputs, 2,464 parameters with one channel)."""
    return _conv_net((8, 6, 4), (5, 5, 2), False, 36, channels_in, nlin, dropout, False)


def cnn2(channels_in: int = 1, nlin: str = "tanh", dropout: float = 0.0) -> ModelZooNet:
    """``CNN2`` of their ``def_net.py`` (28×28 inputs)."""
    return _conv_net((6, 9, 6), (5, 5, 2), False, 54, channels_in, nlin, dropout, False)


def cnn3(channels_in: int = 3, nlin: str = "tanh", dropout: float = 0.0) -> ModelZooNet:
    """``CNN3`` of their ``def_net.py`` (32×32 inputs; Dropout modules always present)."""
    return _conv_net((16, 32, 15), (3, 3, 3), True, 60, channels_in, nlin, dropout, True)


def mlp(i_dim: int = 14, h_dim: list[int] | int = (30, 15), o_dim: int = 10, nlin: str = "leakyrelu",
        dropout: float = 0.0, use_bias: bool = True) -> ModelZooNet:
    """``MLP`` of their ``def_net.py`` (flat inputs of ``i_dim`` values)."""
    dims = [int(i_dim), *([h_dim] if isinstance(h_dim, int) else list(h_dim))]
    layers: list[nn.Module] = []
    for a, b in zip(dims[:-1], dims[1:]):
        layers += [nn.Linear(a, b, bias=use_bias), _act(nlin)]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(dims[-1], int(o_dim), bias=use_bias))
    return ModelZooNet(layers)


#: ``model::type`` -> (the factory's name in this module, {its keyword argument: the params.json key})
ARCHITECTURES: dict[str, tuple[str, dict[str, str]]] = {
    "CNN": ("cnn", {"channels_in": "model::channels_in"}),
    "CNN2": ("cnn2", {"channels_in": "model::channels_in"}),
    "CNN3": ("cnn3", {"channels_in": "model::channels_in"}),
    "MLP": ("mlp", {"i_dim": "model::i_dim", "h_dim": "model::h_dim", "o_dim": "model::o_dim",
                    "use_bias": "model::use_bias"}),
}


def _checkpoints(folder: Path) -> dict[int, Path]:
    out = {}
    for p in folder.iterdir():
        m = _CHECKPOINT.match(p.name)
        if m and (p / "checkpoints").is_file():
            out[int(m.group(1))] = p / "checkpoints"
    return out


def _results(folder: Path) -> pd.DataFrame:
    """``result.json`` (JSON lines) or ``progress.csv`` of a model folder, one row per training iteration."""
    if (folder / "result.json").is_file():
        rows = [json.loads(line) for line in (folder / "result.json").read_text().splitlines() if line.strip()]
        frame = pd.DataFrame([{k: v for k, v in r.items() if not isinstance(v, (dict, list))} for r in rows])
    elif (folder / "progress.csv").is_file():
        frame = pd.read_csv(folder / "progress.csv")
    else:
        raise ValueError(f"zoo.modelzoos: {folder} has neither result.json nor progress.csv (the metrics per epoch)")
    if "training_iteration" not in frame:
        raise ValueError(f"zoo.modelzoos: the metrics of {folder} have no training_iteration column")
    return frame


def read_model_folder(folder: Path, epoch: int, own: Mapping[str, torch.Tensor]) -> tuple[dict, dict, np.ndarray]:
    """One model of a Model Zoo: its ``params.json``, its metrics at ``epoch`` and its flat weights.

    Args:
        folder: the model's (Tune trial's) folder.
        epoch: the checkpoint to read (``checkpoint_<epoch>``).
        own: the zoo architecture's state dict: the checkpoint's entries, in order, must have its shapes.

    Raises:
        ValueError: a missing file, epoch or metric; a checkpoint of another network; non-finite weights.
    """
    where = f"zoo.modelzoos: model folder {folder}"
    if not (folder / "params.json").is_file():
        raise ValueError(f"{where} has no params.json")
    params = json.loads((folder / "params.json").read_text())
    ckpts = _checkpoints(folder)
    if epoch not in ckpts:
        raise ValueError(f"{where} has no checkpoint_{epoch:06d}/checkpoints (epochs there: {sorted(ckpts)[:10]}); "
                         "set zoo.modelzoos.epoch to one every model has")
    try:
        state = torch.load(ckpts[epoch], map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds for a bad file
        raise ValueError(f"{where}: {ckpts[epoch]} is not a readable state dict ({type(exc).__name__}: {exc})") from exc
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{where}: {ckpts[epoch]} is not a state dict of tensors")
    got = [tuple(v.shape) for v in state.values()]
    need = [tuple(v.shape) for v in own.values()]
    if got != need:
        raise ValueError(f"{where}: {ckpts[epoch]} does not fit the zoo's network ({params.get('model::type')}): "
                         f"its entries have shapes {got[:8]}, the network's {need[:8]}")
    ordered = dict(zip(own, state.values()))  # Dropout modules shift the keys, not the order
    row = flatten_state_dict(ordered)
    if not np.isfinite(row).all():
        raise ValueError(f"{where}: checkpoint_{epoch:06d} has non-finite weights")
    frame = _results(folder)
    at = frame[frame["training_iteration"] == epoch]
    if at.empty:
        raise ValueError(f"{where}: its metrics have no line of training_iteration {epoch}")
    metrics = {}
    for ours, theirs in (("test_accuracy", "test_acc"), ("train_accuracy", "train_acc"),
                         ("test_loss", "test_loss"), ("train_loss", "train_loss")):
        v = float(at.iloc[-1][theirs]) if theirs in at else np.nan
        metrics[ours] = np.nan if v == -999 else v
    if not np.isfinite(metrics["test_accuracy"]):
        raise ValueError(f"{where}: no finite test_acc at training_iteration {epoch}")
    return params, metrics, row


def _extract(path: Path, into: str) -> Path:
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            z.extractall(into)
    elif tarfile.is_tarfile(path):
        with tarfile.open(path) as t:
            t.extractall(into, filter="data")
    else:
        raise ValueError(f"zoo.modelzoos.path: {path} is neither a folder nor a zip or tar archive")
    return Path(into)


def _zoo_root(root: Path) -> list[Path]:
    """The model folders: sub-folders with ``params.json``, looked for in ``root`` and one level down
    (an archive usually wraps the zoo's folder)."""
    for base in (root, *sorted(p for p in root.iterdir() if p.is_dir())):
        models = sorted(p for p in base.iterdir() if p.is_dir() and (p / "params.json").is_file())
        if models:
            return models
    raise ValueError(f"zoo.modelzoos.path: no model folders (sub-folders with params.json) in {root}")


def load_modelzoo(cfg: Mapping[str, Any], *, dataset_name: str = "") -> xr.Dataset:
    """Read a Model Zoo (module docstring) into a ``zoo.nc`` dataset.

    Args:
        cfg: the config's ``zoo.modelzoos``: ``path`` (folder or archive), ``hparams``
            (``{name: {key, type, markers, log}}``), ``epoch`` (None: the last checkpoint all
            models have), ``max_models`` (None: all; else the first, by folder name).
        dataset_name: recorded in the attribute ``dataset``.

    Raises:
        FileNotFoundError: no such path.
        ValueError: see the module docstring; zoos mixing network types or input channels.
    """
    path = Path(cfg["path"])
    if not path.exists():
        raise FileNotFoundError(f"zoo.modelzoos.path: {path} does not exist")
    specs = check_hparam_specs(cfg["hparams"], "zoo.modelzoos.hparams")
    with tempfile.TemporaryDirectory() as tmp:
        root = path if path.is_dir() else _extract(path, tmp)
        folders = _zoo_root(root)
        if cfg.get("max_models"):
            folders = folders[: int(cfg["max_models"])]
        if len(folders) < 2:
            raise ValueError(f"zoo.modelzoos.path: {path} holds {len(folders)} model(s); a zoo needs at least 2")
        first = json.loads((folders[0] / "params.json").read_text())
        kind = first.get("model::type")
        if kind not in ARCHITECTURES:
            raise ValueError(f"zoo.modelzoos: {folders[0]}/params.json has model::type {kind!r}; this reader knows "
                             f"{sorted(ARCHITECTURES)} (their def_net.py)")
        factory, keys = ARCHITECTURES[kind]
        kwargs = {k: first[v] for k, v in keys.items() if v in first}
        kwargs["dropout"] = 0.5  # Dropout modules present (identities in eval mode): see the module docstring
        epoch = cfg.get("epoch")
        if epoch is None:
            common = set.intersection(*(set(_checkpoints(f)) for f in folders))
            if not common:
                raise ValueError(f"zoo.modelzoos: the model folders of {path} share no checkpoint epoch")
            epoch = max(common)
        arch = f"causalxai.zoo.modelzoos:{factory}"
        own = globals()[factory](**kwargs, nlin="tanh").state_dict()
        weights, hp, metrics, groups = [], [], [], []
        for folder in folders:
            params, m, row = read_model_folder(folder, int(epoch), own)
            if params.get("model::type") != kind or any(params.get(v) != first.get(v) for v in keys.values()):
                raise ValueError(f"zoo.modelzoos: {folder} is a {params.get('model::type')} with "
                                 f"{ {v: params.get(v) for v in keys.values()} }, the zoo's first model a {kind} with "
                                 f"{ {v: first.get(v) for v in keys.values()} }: one zoo holds one network")
            missing = [s.get("key", n) for n, s in specs.items() if s.get("key", n) not in params]
            if missing:
                raise ValueError(f"zoo.modelzoos: {folder}/params.json lacks the key(s) {missing} "
                                 "(zoo.modelzoos.hparams.<name>.key)")
            hp.append({n: params[s.get("key", n)] for n, s in specs.items()})
            metrics.append(m)
            weights.append(row)
            groups.append(json.dumps({"nlin": str(params.get("model::nlin", "leakyrelu"))}))
        hp_frame = pd.DataFrame(hp)
        for n, s in specs.items():
            if s["type"] == "numerical":
                v = pd.to_numeric(hp_frame[n], errors="coerce")
                if not np.isfinite(v.to_numpy(dtype=float)).all():
                    bad = int(np.flatnonzero(~np.isfinite(v.to_numpy(dtype=float)))[0])
                    raise ValueError(f"zoo.modelzoos: {folders[bad]}/params.json: {s.get('key', n)} is "
                                     f"{hp_frame[n].iloc[bad]!r}, not a number (declared numerical)")
                hp_frame[n] = v
        module = globals()[factory](**kwargs, nlin="tanh")
        input_shape = [int(kwargs["i_dim"])] if kind == "MLP" else [
            int(kwargs.get("channels_in", 1)), *([32, 32] if kind == "CNN3" else [28, 28])]
        specs_out = {n: {k: v for k, v in s.items() if k != "key"} | {"key": s.get("key", n)} for n, s in specs.items()}
        zoo = make_state_dict_zoo(
            np.stack(weights), state_dict_layout(own), hp_frame, specs_out,
            pd.DataFrame(metrics).assign(source_row=np.arange(len(folders))),
            architecture=arch, kwargs=kwargs, input_shape=input_shape, n_classes=int(kwargs.get("o_dim", 10)),
            last_conv=_last_conv_activation(module), dataset=dataset_name, source="modelzoos",
            attrs={"epoch": int(epoch), "zoo_path": str(path), "model_type": kind,
                   "model_folders": json.dumps([f.name for f in folders])},
            groups=groups,
        )
    log.info("modelzoos: %d %s models at epoch %d from %s", len(folders), kind, epoch, path)
    return zoo


def _last_conv_activation(module: nn.Module) -> str | None:
    """The activation module after the last convolution (Keras' "last conv layer", activation included)."""
    last = default_last_conv(module)
    if last is None:
        return None
    names = [n for n, _ in module.named_modules()]
    for name in names[names.index(last) + 1:]:
        if isinstance(dict(module.named_modules())[name], tuple(NLINS.values())):
            return name
    return last


def check_modelzoos_config(cfg: Mapping[str, Any], datasets: list[str]) -> None:
    """The parse-time check of ``zoo.modelzoos`` (before any job): the path given and present for
    every data set (``{dataset}`` filled in), the hyperparameters well declared.

    Raises:
        ValueError, FileNotFoundError: naming the key and the path.
    """
    if not cfg.get("path"):
        raise ValueError("zoo.modelzoos.path is required with zoo.source: modelzoos (the zoo's folder or archive)")
    check_hparam_specs(cfg.get("hparams") or {}, "zoo.modelzoos.hparams")
    for d in datasets:
        path = Path(str(cfg["path"]).replace("{dataset}", d))
        if not path.exists():
            raise FileNotFoundError(f"zoo.modelzoos.path: {path} does not exist")
