"""Checks of a (schema-validated) config that a JSON schema cannot express.

The Snakefile validates the config against ``config/schema.yaml`` first (types, allowed
values, unknown keys), then calls :func:`check_config` before any job is scheduled. Each
error names the key, what is wrong and what is allowed.

Besides single values, :func:`check_config` cross-checks what a job would otherwise find out
late: sample counts against the data sets' splits (without loading the large ones: their
split sizes are fixed facts, :data:`SPLIT_CLASS_COUNTS`), image sizes against the zoo network,
and TRACER's architecture, built once without training on an example input of each TRACER
data set's shape, against ``tracer.layers`` and what the TRACER steps need of it. torch is
imported only when a check needs a network. :func:`check_device` is the CUDA check of a run
whose jobs run on this machine (the workflow calls it when it starts, not on a login node
that submits the jobs to a cluster).

The checks that need torch (about a second and a half to import) remember that they passed:
given a ``cache`` folder, a check of the same config values with the same package sources and
torch version is not run again (:func:`_memo`), so a re-run of an unchanged config stays fast.
A custom ``tracer.model.architecture`` is checked every time (its code lies outside the package), and
so are custom explanation methods (imported, their keywords checked against the signature, and run
once on two untrained zoo networks, :func:`_try_zoo_method`).

JSON Schema counts ``1.0`` as an integer (draft 6 and later), so ``epochs: 10.0`` passes the
schema and would crash a job later with a raw ``TypeError``; :func:`check_integers` walks the
schema beside the config and refuses a float wherever the schema allows integers only.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import importlib.util
import json
import os
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from causalxai.data.custom import TABULAR_SETS
from causalxai.data.dataset import DATASETS as IMAGE_SETS, N_CLASSES
from causalxai.study.buckets import assign_buckets, bucket_labels, validate_edges
from causalxai.study.estimators.treatments import check_figure_hparam
from causalxai.zoo.hparams import CATEGORICAL, CONTINUOUS

__all__ = ["ConfigError", "check_config", "check_device", "check_integers", "zoo_min_input_side", "dataset_kind",
           "tracer_target", "architecture_for", "custom_names"]

ZOO_DATASETS = ("mnist", "fashion_mnist", "cifar10", "svhn_cropped")
#: native input side of each downloaded image set (digits: data.image_size); every image set is
#: one grayscale channel (causalxai.data.dataset.zoo_preprocess averages the colour channels)
INPUT_SIZES = {"mnist": 28, "fashion_mnist": 28, "cifar10": 32, "svhn_cropped": 32}

#: images of each class (labels 0..9) in the official train and test splits of the downloaded image
#: sets, as published with them (SVHN's label 10 is the digit 0, causalxai.data.dataset._read_svhn):
#: MNIST 60,000 / 10,000, Fashion-MNIST 6,000 / 1,000 and CIFAR-10 5,000 / 1,000 per class,
#: SVHN (cropped digits) 73,257 / 26,032
SPLIT_CLASS_COUNTS: dict[str, dict[str, tuple[int, ...]]] = {
    "mnist": {"train": (5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949),
              "test": (980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009)},
    "fashion_mnist": {"train": (6000,) * 10, "test": (1000,) * 10},
    "cifar10": {"train": (5000,) * 10, "test": (1000,) * 10},
    "svhn_cropped": {"train": (4948, 13861, 10585, 8497, 7458, 6882, 5727, 5595, 5045, 4659),
                     "test": (1744, 5099, 4149, 2882, 2523, 2384, 1977, 2019, 1660, 1595)},
}
#: images of each class in scikit-learn's digits (1,797), before causalxai.data.dataset.load_digits splits them
DIGITS_CLASS_COUNTS = (178, 182, 177, 183, 181, 182, 181, 179, 174, 180)


class ConfigError(ValueError):
    """A config value that passes the schema but cannot work."""


#: the architectures tracer.model.architecture knows by name (causalxai.tracer.target_model.BUILTIN)
BUILTIN_ARCHITECTURES = ("alexnet28", "resnet_small", "mlp")


# ---------------------------------------------------------------------------------------
# user data sets (data.custom) and the built-in tabular sets: loaded to be checked


def custom_names(config: Mapping[str, Any]) -> list[str]:
    """The user data sets declared in ``data.custom``."""
    return list((config.get("data", {}).get("custom") or {}).keys())


def _check_dataset_names(config: Mapping[str, Any]) -> None:
    """Every name in ``datasets`` and ``tracer.datasets``: a built-in set or a key of ``data.custom``."""
    custom = custom_names(config)
    clash = [n for n in custom if n in IMAGE_SETS or n in TABULAR_SETS]
    if clash:
        raise ConfigError(f"data.custom: {clash} are built-in data sets; give your data set another name")
    known = [*IMAGE_SETS, *TABULAR_SETS, *custom]
    for key in ("datasets", "tracer.datasets"):
        unknown = [d for d in _get(config, key) if d not in known]
        if unknown:
            raise ConfigError(
                f"{key}: {unknown} {'is' if len(unknown) == 1 else 'are'} neither a built-in data set "
                f"({', '.join((*IMAGE_SETS, *TABULAR_SETS))}) nor declared under data.custom "
                f"({', '.join(custom) or 'none'}); declare it as data.custom.<name>: {{loader: "
                "'package.module:function'}} or {path: file.npz}, or fix the name"
            )


#: what :func:`_info` knows of a loaded data set: kind, input shape (C, H, W), classes, images per class by split
DataInfo = tuple[str, tuple[int, int, int], int, dict[str, tuple[int, ...]]]


@functools.lru_cache(maxsize=32)
def _loaded_info(name: str, spec_json: str, cwd: str) -> DataInfo:
    """(kind, input shape (C, H, W), classes, images per class of each split) of a data set that is
    loaded to be known: ``breast_cancer`` (its split) or a user set (its arrays, validated)."""
    from causalxai.data.custom import load_breast_cancer, load_custom

    spec = json.loads(spec_json)
    if name in TABULAR_SETS:
        ds = load_breast_cancer(test_fraction=spec["test_fraction"], seed=spec["seed"])
    else:
        ds = load_custom(name, spec)
    split = np.asarray(ds["split"].values).astype(str)
    label = np.asarray(ds["label"].values)
    k = int(ds.attrs["n_classes"])
    counts = {s: tuple(np.bincount(label[split == s], minlength=k).tolist()) for s in ("train", "test")}
    shape = (int(ds.attrs["channels"]), int(ds.attrs["height"]), int(ds.attrs["width"]))
    return str(ds.attrs["kind"]), shape, k, counts


def _info(config: Mapping[str, Any], name: str) -> DataInfo:
    """:func:`_loaded_info` of ``name`` under ``config`` (a bad user data set: :class:`ConfigError`)."""
    from causalxai.data.custom import CustomDataError

    if name in TABULAR_SETS:
        spec: Mapping[str, Any] = {"test_fraction": float(config["data"]["test_fraction"]), "seed": int(config["seed"])}
    else:
        spec = config["data"]["custom"][name]
    try:
        return _loaded_info(name, json.dumps(dict(spec), sort_keys=True), os.getcwd())
    except CustomDataError as exc:
        raise ConfigError(str(exc)) from None


def _loaded(config: Mapping[str, Any], name: str) -> bool:
    return name in TABULAR_SETS or name in custom_names(config)


def dataset_kind(config: Mapping[str, Any], name: str) -> str:
    """``"tabular"`` (``breast_cancer``, a user set of rows ``(N, F)``) or ``"image"``."""
    return _info(config, name)[0] if _loaded(config, name) else "image"


def architecture_for(architecture: str | Mapping[str, str], dataset: str) -> str:
    """The architecture of one TRACER data set: ``tracer.model.architecture`` is one name for
    all of them, or a mapping ``{data set: name}`` (e.g. ``{mnist: alexnet28, cifar10:
    resnet_small}``) that must name every TRACER data set.

    Raises:
        ValueError: the mapping has no entry for ``dataset``.
    """
    if isinstance(architecture, str):
        return architecture
    if dataset not in architecture:
        raise ValueError(f"tracer.model.architecture {dict(architecture)} names no architecture for the TRACER data "
                         f"set {dataset!r}; add {dataset}: <architecture>")
    return str(architecture[dataset])


def tracer_target(config: Mapping[str, Any], name: str) -> tuple[str, list[str] | str]:
    """TRACER's architecture and observed layers on data set ``name``: ``tracer.tabular``'s for a
    tabular set, else ``tracer.model.architecture`` (its entry for ``name`` when it is one per data
    set) and ``tracer.layers`` (a list, or ``"auto"``)."""
    tracer = config["tracer"]
    if dataset_kind(config, name) == "tabular":
        return str(tracer["tabular"]["architecture"]), list(tracer["tabular"]["layers"])
    layers = tracer["layers"]
    return architecture_for(tracer["model"]["architecture"], name), layers if isinstance(layers, str) else list(layers)


def _check_architecture(architecture: str) -> None:
    """A named architecture, or ``package.module:function`` whose module can be found (not imported)."""
    if architecture in BUILTIN_ARCHITECTURES:
        return
    module, sep, attr = architecture.partition(":")
    if not sep or not module or not attr:
        raise ConfigError(
            f"tracer.model.architecture {architecture!r} is unknown: use one of {list(BUILTIN_ARCHITECTURES)} "
            "or 'package.module:function' naming a function that returns a torch classifier"
        )
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise ConfigError(
            f"tracer.model.architecture {architecture!r}: no module {module!r} on the Python path; install it or "
            f"put its folder on PYTHONPATH, or use one of {list(BUILTIN_ARCHITECTURES)}"
        )


def _check_target_source(config: Mapping[str, Any]) -> None:
    """``tracer.model.architecture`` (one name, or one per TRACER image set; tabular sets use
    ``tracer.tabular``) and ``pretrained``."""
    tracer = config["tracer"]
    arch = tracer["model"]["architecture"]
    images = [d for d in tracer["datasets"] if dataset_kind(config, d) != "tabular"]
    if isinstance(arch, Mapping):
        missing = [d for d in images if d not in arch]
        if missing:
            raise ConfigError(f"tracer.model.architecture {dict(arch)} names no architecture for the TRACER data sets "
                              f"{missing}; add one per data set of tracer.datasets")
    names = [arch[d] for d in images] if isinstance(arch, Mapping) else [arch]
    for name in dict.fromkeys(names):
        _check_architecture(name)
    if tracer["model"].get("pretrained"):
        if tracer["model"].get("weights") is not None:
            raise ConfigError("tracer.model.pretrained: true and tracer.model.weights both give the trained model; "
                              "set one (pretrained: the factory's own weights; weights: a state dict or TorchScript "
                              "file)")
        builtin = [n for n in names if n in BUILTIN_ARCHITECTURES]
        if builtin:
            raise ConfigError(f"tracer.model.pretrained: true, but tracer.model.architecture {builtin[0]!r} is built "
                              "in and untrained; name a 'package.module:function' that returns a trained model, or set "
                              "pretrained: false to train it")


# ---------------------------------------------------------------------------------------
# checks that passed before


@functools.lru_cache(maxsize=1)
def _code_digest() -> str:
    """SHA-256 of every source file of this package and the versions of torch and captum: what
    decides, besides the config, whether a check passes."""
    h = hashlib.sha256()
    root = Path(__file__).resolve().parent
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    for dist in ("torch", "captum"):
        try:
            h.update(f"{dist}={importlib.metadata.version(dist)}".encode())
        except importlib.metadata.PackageNotFoundError:
            h.update(f"{dist}=none".encode())
    return h.hexdigest()


def _memo(cache: str | os.PathLike[str] | None, name: str, key: Mapping[str, Any], check: Callable[[], None]) -> None:
    """Run ``check`` unless it passed before with the same ``key`` (the config values it reads)
    and the same code (:func:`_code_digest`); a pass is remembered as an empty file in ``cache``
    (None: always run). A check that raises is not remembered."""
    if cache is None:
        check()
        return
    digest = hashlib.sha256(json.dumps([name, key, _code_digest()], sort_keys=True, default=str).encode())
    marker = Path(cache) / f"{name}-{digest.hexdigest()[:32]}"
    if marker.exists():
        return
    check()
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
    except OSError:  # a read-only working directory: the check simply runs again next time
        pass


# ---------------------------------------------------------------------------------------
# sample counts against the splits


@functools.lru_cache(maxsize=8)
def _digits_split_counts(test_fraction: float, seed: int) -> dict[str, tuple[int, ...]]:
    """Images per class in each split of the digits, split by :func:`causalxai.data.dataset.load_digits`
    itself (on the 8×8 originals: the split does not depend on the size)."""
    from causalxai.data.dataset import load_digits

    ds = load_digits(image_size=8, test_fraction=test_fraction, seed=seed)
    split = np.asarray(ds["split"].values).astype(str)
    label = np.asarray(ds["label"].values)
    return {s: tuple(np.bincount(label[split == s], minlength=N_CLASSES).tolist()) for s in ("train", "test")}


def _class_counts(config: Mapping[str, Any], dataset: str, split: str, *, exact: bool) -> np.ndarray:
    """Images per class (labels 0..9) in ``split`` of ``dataset``.

    Downloaded sets: :data:`SPLIT_CLASS_COUNTS`. Digits: with ``exact`` the package's own split
    (:func:`_digits_split_counts`, which loads the bundled digits: about a second); without, a
    lower bound that needs nothing loaded: a stratified split gives each class its share of
    the split within one image, 2 fewer leaves room for the rounding of the split's size.
    """
    if _loaded(config, dataset):
        return np.asarray(_info(config, dataset)[3][split])
    if dataset != "digits":
        return np.asarray(SPLIT_CLASS_COUNTS[dataset][split])
    fraction = float(config["data"]["test_fraction"])
    if exact:
        return np.asarray(_digits_split_counts(fraction, int(config["seed"]))[split])
    share = fraction if split == "test" else 1.0 - fraction
    return np.floor(np.asarray(DIGITS_CLASS_COUNTS) * share) - 2


def _class_needs(n: int, k: int) -> np.ndarray:
    """Images per class a class-balanced draw of ``n`` from ``k`` classes takes
    (:func:`causalxai.data.images.class_balanced_indices`): ``n // k`` each, one more for the
    first ``n % k`` classes."""
    need = np.full(k, n // k, dtype=np.int64)
    need[: n % k] += 1
    return need


def _largest_balanced(counts: np.ndarray) -> int:
    """The largest class-balanced draw ``counts`` (images per class, in class order) allow."""
    q = int(counts.min())
    return q * len(counts) + int(np.flatnonzero(counts <= q)[0])


def _split_hint(config: Mapping[str, Any], dataset: str) -> str:
    if dataset in custom_names(config):
        return f" (data.custom.{dataset}'s x_test)"
    if dataset == "digits" or dataset in TABULAR_SETS:
        total = sum(DIGITS_CLASS_COUNTS) if dataset == "digits" else sum(map(sum, _info(config, dataset)[3].values()))
        return f" (data.test_fraction {config['data']['test_fraction']:g} of the {total} samples of {dataset})"
    return f" ({dataset}'s official split)"


def _check_draw(config: Mapping[str, Any], key: str, n: Any, dataset: str, *, what: str,
                allow_key: str | None = None) -> None:
    """A class-balanced draw of ``n`` images from the test split of ``dataset`` (``key`` names ``n``).

    Refuses ``n`` below the number of classes (classes left out of ``what``) unless the
    config's ``allow_key`` is true, and ``n`` that needs more images of a class than the split
    holds.
    """
    if n == "all":
        return
    n, k = int(n), (_info(config, dataset)[2] if _loaded(config, dataset) else N_CLASSES)
    if n < k and allow_key is not None and not _get(config, allow_key):
        raise ConfigError(
            f"{key} ({n}) is smaller than the {k} classes of {dataset}: a class-balanced draw of {n} leaves "
            f"{k - n} class{'es' if k - n > 1 else ''} out of {what}. Raise {key} to at least {k} (a multiple of "
            f"{k} is balanced), or set {allow_key}: true to accept a draw without them"
        )
    need = _class_needs(n, k)
    if (need <= _class_counts(config, dataset, "test", exact=False)).all():
        return
    counts = _class_counts(config, dataset, "test", exact=True)
    short = np.flatnonzero(need > counts)
    if short.size:
        c = int(short[0])
        fix = " or raise data.test_fraction" if dataset in ("digits", *TABULAR_SETS) else ""
        raise ConfigError(
            f"{key} ({n}) draws {need[c]} test images of class {c} of {dataset} (class-balanced, {n} over {k} "
            f"classes), but its test split holds {counts[c]}{_split_hint(config, dataset)}: lower {key} to at most "
            f"{_largest_balanced(counts)}{fix}"
        )


def _check_total(config: Mapping[str, Any], key: str, n: int, dataset: str, split: str, what: str) -> None:
    """``n`` (``key``) at most the size of ``split`` of ``dataset``."""
    if n <= _class_counts(config, dataset, split, exact=False).sum():
        return
    size = int(_class_counts(config, dataset, split, exact=True).sum())
    if n > size:
        raise ConfigError(
            f"{key} ({n}) exceeds the {size} images of the {split} split of {dataset}{_split_hint(config, dataset)}, "
            f"{what}: lower {key} to at most {size}"
        )


def _get(config: Mapping[str, Any], dotted: str) -> Any:
    node: Any = config
    for part in dotted.split("."):
        node = node[part]
    return node


def _check_samples(config: Mapping[str, Any]) -> None:
    """Every draw from a split against the split (sizes known without loading the large sets)."""
    images = config["images"]
    for d in config["datasets"]:
        _check_draw(config, "images.n_images", images["n_images"], d, what="the probe images every zoo model is "
                    "explained on", allow_key="images.allow_missing_classes")
    tracer = config["tracer"]
    for d in tracer["datasets"]:
        _check_draw(config, "tracer.n_samples", tracer["n_samples"], d, what="the samples TRACER analyses",
                    allow_key="tracer.allow_missing_classes")
        _check_draw(config, "tracer.reliability.n_samples", tracer["reliability"]["n_samples"], d,
                    what="the samples the reliability step scores", allow_key="tracer.allow_missing_classes")
        cf = tracer["counterfactuals"]
        if dataset_kind(config, d) == "tabular":  # no counterfactuals on tabular sets (image models)
            continue
        _check_total(config, "tracer.counterfactuals.n_correct", cf["n_correct"], d, "test",
                     "from which the correctly classified counterfactual samples are drawn")
        _check_total(config, "tracer.counterfactuals.ynn_k", cf["ynn_k"], d, "train",
                     "among which yNN finds each counterfactual's neighbours")


# ---------------------------------------------------------------------------------------
# the zoo and its studies


def zoo_min_input_side() -> int:
    """The smallest square input the zoo network (:class:`causalxai.zoo.network.ZooCNN`) takes,
    found by running it (3 × conv 3×3, stride 2, valid padding: 15)."""
    import torch

    from causalxai.zoo.network import ZooCNN

    model = ZooCNN().eval()
    with torch.no_grad():
        for side in range(1, 1025):
            try:
                model(torch.zeros(1, 1, side, side))
            except RuntimeError:
                continue
            return side
    raise RuntimeError("the zoo network takes no square input up to 1024 pixels")


def _check_image_size(side: int) -> None:
    """``data.image_size`` against the zoo network's smallest input."""
    low = zoo_min_input_side()
    if side < low:
        raise ConfigError(
            f"data.image_size ({side}) is too small for the zoo network (3 convolutions 3x3, stride 2, no "
            f"padding): it needs inputs of at least {low}x{low}; raise data.image_size to {low} or more"
        )


def _check_meta_model_split(n_models: int, train_fraction: float, top_fraction: float, seed: int) -> None:
    """The meta-model's split of a zoo of ``n_models`` (it depends on the size only, not on the
    accuracies) leaves models to evaluate."""
    from causalxai.study.meta_model import split_models

    try:
        split_models(np.arange(n_models, dtype=float), train_fraction=train_fraction, top_fraction=top_fraction,
                     seed=seed)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _check_zoo(config: Mapping[str, Any], cache: str | os.PathLike[str] | None = None) -> None:
    """The zoo network against the digits' size; the meta-model's split and the effects'
    treatments against the zoo."""
    zoo = config["zoo"]
    if "digits" in config["datasets"]:
        side = int(config["data"]["image_size"])
        _memo(cache, "zoo_image_size", {"image_size": side}, lambda: _check_image_size(side))
    max_models = zoo["smallcnnzoo"]["max_models"]
    if zoo["source"] == "smallcnnzoo" and max_models is not None and config["explain"]["shards"] > max_models:
        raise ConfigError(
            f"explain.shards ({config['explain']['shards']}) exceeds zoo.smallcnnzoo.max_models ({max_models}): "
            "every shard needs at least one model; lower explain.shards"
        )
    if zoo["source"] != "train":
        return
    from causalxai.study.estimators.treatments import treatment_levels

    hp, rounding = zoo["train"]["hparams"], config["effects"]["log_rounding"]
    varied = [n for n in CATEGORICAL if n in hp and len(hp[n]) > 1]
    for n in CONTINUOUS:  # the effects compare the values rounded to the markers; rounding keeps the order
        values = [hp[n]["low"], hp[n]["high"]] if isinstance(hp[n], Mapping) else list(hp[n])
        if len(set(treatment_levels(n, np.asarray(values, dtype=float), rounding)[0].tolist())) > 1:
            varied.append(n)
    if not varied:
        raise ConfigError(
            "zoo.train.hparams: every hyperparameter takes a single value (continuous ones rounded to their markers, "
            "effects.log_rounding), so there is no treatment whose effect the effects step could estimate; give at "
            "least one hyperparameter two values or a range that spans two markers"
        )
    key = {"n_models": int(zoo["n_models"]), "train_fraction": float(config["meta_model"]["train_fraction"]),
           "top_fraction": float(config["meta_model"]["top_fraction"]), "seed": int(config["seed"])}
    _memo(cache, "meta_model_split", key, lambda: _check_meta_model_split(**key))


def _check_zoo_datasets(config: Mapping[str, Any]) -> None:
    """The zoo study's data sets (``datasets``): images (a tabular set is refused) and, for a zoo
    of the Small CNN Zoo's network, of 10 classes (its outputs) and at least its smallest side.
    Several channels are averaged (:func:`causalxai.data.dataset.grayscale`)."""
    for d in config["datasets"]:
        if not _loaded(config, d):
            continue
        kind, (_, h, w), k, _ = _info(config, d)
        if kind == "tabular":
            raise ConfigError(
                f"datasets: {d} is tabular, but the zoo study trains and explains convolutional networks on images; "
                "list it under tracer.datasets only (TRACER runs on tabular data)"
            )
        if config["zoo"]["source"] not in ("train", "smallcnnzoo"):
            continue  # a zoo of its own architecture: zoo.checkpoints / zoo.modelzoos are checked against it
        if k != N_CLASSES:
            raise ConfigError(
                f"datasets: {d} has {k} classes, but the zoo network has {N_CLASSES} outputs (the Small CNN Zoo's); "
                f"use it under tracer.datasets only, or give a data set of {N_CLASSES} classes"
            )
        low = zoo_min_input_side()
        if min(h, w) < low:
            raise ConfigError(
                f"datasets: {d}'s images ({h}x{w}) are too small for the zoo network (3 convolutions 3x3, stride 2): "
                f"it needs at least {low}x{low}; use it under tracer.datasets only"
            )


def _check_zoo_source(config: Mapping[str, Any]) -> None:
    """``zoo.checkpoints`` or ``zoo.modelzoos`` when they are the zoo's source (their files, columns, architecture)."""
    source = config["zoo"]["source"]
    if source not in ("checkpoints", "modelzoos"):
        return
    from causalxai.zoo.checkpoints import check_checkpoints_config
    from causalxai.zoo.modelzoos import check_modelzoos_config

    check = check_checkpoints_config if source == "checkpoints" else check_modelzoos_config
    try:
        check(config["zoo"][source], list(config["datasets"]))
    except (ValueError, FileNotFoundError) as exc:
        raise ConfigError(str(exc)) from None


def _check_tracer_settings(config: Mapping[str, Any]) -> None:
    """Cross checks of TRACER's settings that need no network."""
    tracer = config["tracer"]
    if not tracer["datasets"]:
        return
    if tracer["figures"]["samples"] > tracer["n_samples"]:
        raise ConfigError(
            f"tracer.figures.samples ({tracer['figures']['samples']}) exceeds tracer.n_samples "
            f"({tracer['n_samples']}): only analysed samples can be drawn"
        )
    mech = tracer["mechanisms"]
    if mech["eps_radius"] / mech["eps_step"] > 1000:
        raise ConfigError(
            f"tracer.mechanisms.eps_radius ({mech['eps_radius']:g}) / tracer.mechanisms.eps_step "
            f"({mech['eps_step']:g}) gives over 2001 eps values for the stability report; raise eps_step to at "
            f"least {mech['eps_radius'] / 1000:g} or lower eps_radius"
        )
    comp = tracer["compress"]
    if comp["random_weights"] and comp["random_weights_samples"] > tracer["n_samples"]:
        raise ConfigError(
            f"tracer.compress.random_weights_samples ({comp['random_weights_samples']}) exceeds tracer.n_samples "
            f"({tracer['n_samples']}): the random-weight control is analysed on the first of TRACER's samples; "
            "lower it to at most tracer.n_samples"
        )


# ---------------------------------------------------------------------------------------
# TRACER's architecture, built once without training


def _input_shape(config: Mapping[str, Any], dataset: str) -> tuple[int, int, int]:
    if _loaded(config, dataset):
        return _info(config, dataset)[1]
    side = config["data"]["image_size"] if dataset == "digits" else INPUT_SIZES[dataset]
    return (1, int(side), int(side))


def _check_weights(tracer: Mapping[str, Any]) -> None:
    """``tracer.model.weights``: a file for each TRACER data set (``{dataset}`` filled in), relative
    to the working directory. Whether it fits the architecture is checked when it is loaded
    (:func:`causalxai.tracer.target_model.load_trained_target`), before anything is written."""
    weights = tracer["model"].get("weights")
    if weights is None:
        return
    for d in tracer["datasets"]:
        try:
            path = Path(weights.format(dataset=d))
        except (KeyError, IndexError, ValueError):
            raise ConfigError(
                f"tracer.model.weights {weights!r}: the only placeholder allowed is {{dataset}}"
            ) from None
        if not path.is_file():
            raise ConfigError(
                f"tracer.model.weights: {path} (the weights for {d}) does not exist (paths are relative to the working "
                f"directory, {os.getcwd()}); give a file saved with torch.save(model.state_dict(), path) or "
                "torch.jit.save, or null to train the target"
            )


def _check_tracer_model(config: Mapping[str, Any]) -> None:
    """Build each TRACER data set's ``tracer.model.architecture`` as the target_model step does
    (untrained, on the CPU; a ``pretrained`` factory's model; a TorchScript ``weights`` file
    loaded), run it on zeros of the data set's shape and check ``tracer.layers`` and the
    reliability step's Grad-CAM and LRP against it. A model the compress step cannot rebuild (a
    residual network) is not refused: that step records why it skips it
    (:func:`causalxai.compress.build.compress_skip_reason`)."""
    import torch

    from causalxai.tracer.model import check_layers, trace_forward
    from causalxai.tracer.target_model import architecture_kwargs, build_classifier, is_torchscript

    tracer = config["tracer"]
    weights = tracer["model"].get("weights")
    by_target: dict[tuple[Any, ...], list[str]] = {}
    for d in tracer["datasets"]:  # each data set's architecture (tracer.tabular on tabular sets), shape, classes
        arch, layers = tracer_target(config, d)
        k = _info(config, d)[2] if _loaded(config, d) else N_CLASSES
        script = weights is not None and is_torchscript(weights.format(dataset=d))
        key = (arch, layers if isinstance(layers, str) else tuple(layers), _input_shape(config, d), k,
               dataset_kind(config, d), weights.format(dataset=d) if script else None)
        by_target.setdefault(key, []).append(d)
    for (arch, layers_t, shape, k, kind, script), sets in by_target.items():
        layers = layers_t if isinstance(layers_t, str) else list(layers_t)
        where = f"{'/'.join(sets)} inputs {'x'.join(map(str, shape))}"
        x = torch.zeros((2, *shape))
        if script is not None:
            from causalxai.tracer.target_model import unscript

            try:
                model = unscript(torch.jit.load(script, map_location="cpu"), x, source=script)
            except Exception as exc:  # noqa: BLE001 - a bad archive or a model of another shape
                raise ConfigError(f"{exc} ({where})") from None
            arch = f"TorchScript {script}"
        else:
            kwargs = architecture_kwargs(arch, shape, k, tracer["model"]["dropout"])  # as target_model does
            with torch.random.fork_rng(devices=[]):
                try:
                    model = build_classifier(arch, **kwargs)
                except Exception as exc:  # noqa: BLE001 - any failure of the user's function is reported
                    raise ConfigError(
                        f"tracer.model.architecture {arch!r} could not be built with {kwargs} ({type(exc).__name__}: "
                        f"{exc}); it must be a function taking these keyword arguments and returning a torch module"
                    ) from None
        try:
            trace = trace_forward(model, x)
        except Exception as exc:  # noqa: BLE001 - a forward pass can raise anything
            raise ConfigError(
                f"tracer.model.architecture {arch!r} cannot take the {where} (tracer.datasets "
                f"{tracer['datasets']}): its forward pass raised {type(exc).__name__}: {exc}. Use an architecture "
                "for this input size or other tracer.datasets"
            ) from None
        try:
            check_layers(model, layers, x)
        except ValueError as exc:
            hint = ("" if layers == "auto" else "; tracer.layers: auto observes the architecture's own choice "
                    "(resnet_small: the stem, each block's residual branch and output, the logits)")
            key = "tracer.tabular.layers" if kind == "tabular" else "tracer.layers"
            raise ConfigError(f"{key} {layers} on {arch!r} ({where}): {exc}{hint}") from None
        _check_reliability_model(config, model, x, trace, where, arch, kind)


def _check_methods(config: Mapping[str, Any]) -> None:
    """``explain.methods`` and ``tracer.reliability.methods``: built-in names, or custom methods that
    import and whose keyword arguments fit (:mod:`causalxai.attribution.custom`); unique, safe labels."""
    from causalxai.attribution.custom import BUILTINS, check_methods

    lists = {"explain.methods": config["explain"]["methods"],
             "tracer.reliability.methods": config["tracer"]["reliability"]["methods"]}
    for key, entries in lists.items():
        try:
            specs = check_methods(entries, key, BUILTINS[key])
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        if key == "explain.methods":
            for i, spec in enumerate(specs):
                if spec.kind != "builtin":
                    _try_zoo_method(spec, f"{key}[{i}]", config["explain"]["output"])


def _try_zoo_method(spec: Any, key: str, output: str) -> None:
    """Run a custom method as an ``explain_shard`` job would, on two untrained Small CNN Zoo
    networks and two random 28 x 28 images: what the signature check cannot see (a wrong return
    shape, a keyword value the class refuses) stops the workflow before any job."""
    import pandas as pd
    import torch
    import xarray as xr

    from causalxai.study.explain import ExplainSettings, explain_zoo
    from causalxai.study.predictions import predict_zoo
    from causalxai.zoo.dataset import make_zoo_dataset
    from causalxai.zoo.hparams import sample_hparams
    from causalxai.zoo.network import n_params, zoo_layout

    rng = np.random.default_rng(0)
    layout = zoo_layout(1)
    zoo = make_zoo_dataset(rng.normal(scale=0.3, size=(2, n_params(layout))).astype(np.float32),
                           sample_hparams(2, {}, seed=0), pd.DataFrame({"test_accuracy": [0.5, 0.6]}), layout,
                           dataset="check", source="train", input_size=28)
    images = xr.Dataset({"pixels": (("image", "y", "x"), rng.uniform(0, 1, (2, 28, 28)).astype(np.float32)),
                         "label": ("image", np.arange(2))}, coords={"image": np.arange(2)})
    settings = ExplainSettings(output=output, device="cpu", custom=spec.as_params())
    with torch.random.fork_rng(devices=[]):
        try:
            explain_zoo(zoo, images, predict_zoo(zoo, images, settings), spec.label, settings, normalise=False)
        except Exception as exc:  # noqa: BLE001 - the user's method can raise anything
            raise ConfigError(f"{key} ({spec.name}) fails on two zoo networks: {type(exc).__name__}: {exc}. Fix the "
                              "method or its init/attribute keywords (README: Your own explanation method)") from None


def _check_reliability_model(config: Mapping[str, Any], model: Any, x: Any, trace: Any, where: str, arch: str,
                             kind: str = "image") -> None:
    """Grad-CAM's layer and LRP's rules of the reliability step against the built model (Grad-CAM is
    not run on tabular sets: :func:`reliability_methods`)."""
    rel = config["tracer"]["reliability"]
    if "grad_cam" in reliability_methods(rel["methods"], kind):
        from causalxai.tracer.reliability import grad_cam_layer

        name = rel["grad_cam_layer"]
        known = [n for n, _ in model.named_modules() if n]
        if name != "auto" and name not in known:
            raise ConfigError(
                f"tracer.reliability.grad_cam_layer {name!r} is not a module of {arch!r}; use auto or one of "
                f"{trace.leaves}"
            )
        try:
            layer = grad_cam_layer(model, x, name)
        except ValueError as exc:
            raise ConfigError(f"tracer.reliability.grad_cam_layer {name!r} on {arch!r} ({where}): {exc}") from None
        if trace.calls.get(layer, 0) != 1:
            raise ConfigError(
                f"tracer.reliability.grad_cam_layer: Grad-CAM's layer {layer!r} of {arch!r} runs "
                f"{trace.calls.get(layer, 0)} times per forward pass, not once; name a module that runs once, or "
                "leave grad_cam out of tracer.reliability.methods"
            )
    from causalxai.attribution.custom import BUILTINS, custom_attribute, method_specs
    from causalxai.runtime import eval_mode

    key = "tracer.reliability.methods"
    for i, spec in enumerate(method_specs(rel["methods"], key, BUILTINS[key])):
        if spec.kind == "builtin":
            continue
        try:  # as the reliability step calls it: on the target model's logits, its own prediction
            with eval_mode(model):
                custom_attribute(spec, model, x, model(x).argmax(-1))
        except Exception as exc:  # noqa: BLE001 - the user's method can raise anything
            raise ConfigError(f"{key}[{i}] ({spec.name}) fails on {arch!r} ({where}): {type(exc).__name__}: {exc}. "
                              "Fix the method or its init/attribute keywords, or leave it out") from None
    if "lrp" in rel["methods"]:
        from causalxai.tracer.reliability import _lrp_rules

        try:
            with _lrp_rules(model):
                pass
        except TypeError as exc:
            raise ConfigError(f"tracer.reliability.methods: {exc} (tracer.model.architecture {arch!r})") from None


#: reliability baselines that need an image (a spatial feature map): left out on tabular data sets
IMAGE_ONLY_METHODS = ("grad_cam",)


def reliability_methods(methods: Any, kind: str) -> list[str]:
    """``tracer.reliability.methods`` that apply to a data set of ``kind``: on ``"tabular"`` data
    Grad-CAM (:data:`IMAGE_ONLY_METHODS`, it needs a convolutional feature map) is left out."""
    return [m for m in methods if kind != "tabular" or m not in IMAGE_ONLY_METHODS]


def _resolve(node: Mapping[str, Any], schema: Mapping[str, Any]) -> Mapping[str, Any]:
    """``node`` with a local ``$ref`` (``#/definitions/name``) replaced by what it names."""
    ref = node.get("$ref")
    if not isinstance(ref, str) or not ref.startswith("#/"):
        return node
    target: Any = schema
    for part in ref[2:].split("/"):
        target = target[part]
    return target


def _branches(node: Mapping[str, Any], schema: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The node and the alternatives of its ``oneOf`` / ``anyOf``, references resolved."""
    node = _resolve(node, schema)
    out = [node]
    for key in ("oneOf", "anyOf"):
        out += [_resolve(b, schema) for b in node.get(key, [])]
    return out


def _types(node: Mapping[str, Any]) -> set[str]:
    value = node.get("type", [])
    return {value} if isinstance(value, str) else set(value)


def check_integers(config: Any, schema: Mapping[str, Any], *, _node: Mapping[str, Any] | None = None,
                   _key: str = "") -> None:
    """Refuse a float where the schema allows integers only (module docstring).

    Args:
        config: the config (or, recursively, a value inside it), after schema validation.
        schema: ``config/schema.yaml`` as loaded.

    Raises:
        ConfigError: naming the dotted key, the value and the integer to write instead.
    """
    node = schema if _node is None else _node
    branches = _branches(node, schema)
    types = set().union(*(_types(b) for b in branches))
    if isinstance(config, float) and "integer" in types and "number" not in types:
        hint = f"write {int(config)}" if config.is_integer() else "write a whole number"
        raise ConfigError(f"{_key or 'config'}: {config!r} is not an integer; {hint} (no decimal point)")
    for branch in branches:
        if isinstance(config, Mapping) and "properties" in branch:
            for name, value in config.items():
                if name in branch["properties"]:
                    check_integers(value, schema, _node=branch["properties"][name],
                                   _key=f"{_key}.{name}" if _key else str(name))
        elif isinstance(config, list) and isinstance(branch.get("items"), Mapping):
            for i, value in enumerate(config):
                check_integers(value, schema, _node=branch["items"], _key=f"{_key}[{i}]")


def check_config(config: Mapping[str, Any], schema: Mapping[str, Any] | None = None, *,
                 cache: str | os.PathLike[str] | None = None) -> None:
    """Raise :class:`ConfigError` naming the first key whose value cannot work.

    Args:
        config: the config, validated against the schema (defaults filled in).
        schema: ``config/schema.yaml``; when given, :func:`check_integers` runs first.
        cache: a folder where the checks that need torch remember that they passed (module
            docstring); None: every check runs.
    """
    if schema is not None:
        check_integers(config, schema)
    try:
        validate_edges(config["buckets"]["edges"])
    except ValueError as exc:
        raise ConfigError(f"buckets.edges: {exc}") from None
    zoo = config["zoo"]
    if zoo["source"] == "smallcnnzoo":
        bad = [d for d in config["datasets"] if d not in ZOO_DATASETS]
        if bad:
            raise ConfigError(
                f"datasets: {bad} have no Small CNN Zoo; with zoo.source: smallcnnzoo use "
                f"{list(ZOO_DATASETS)}, or set zoo.source: train"
            )
    if zoo["source"] == "train" and config["explain"]["shards"] > zoo["n_models"]:
        raise ConfigError(
            f"explain.shards ({config['explain']['shards']}) exceeds zoo.n_models ({zoo['n_models']}): "
            "every shard needs at least one model"
        )
    if zoo["source"] == "train":
        # buckets go by accuracy rank, so their sizes follow from n_models and the edges alone
        edges = config["buckets"]["edges"]
        sizes = np.bincount(assign_buckets(np.arange(zoo["n_models"], dtype=float), edges), minlength=len(edges) - 1)
        small = [f"{lab}: {n}" for lab, n in zip(bucket_labels(edges), sizes) if n < 2]
        if small:
            raise ConfigError(
                f"buckets.edges {list(edges)} leave buckets with fewer than 2 of the zoo.n_models ({zoo['n_models']}) "
                f"models ({', '.join(small)}); the effects compare two models within a bucket: widen the narrow "
                "buckets or raise zoo.n_models"
            )
    tracer = config.get("tracer", {})
    sweep = list(tracer.get("cka", {}).get("eps_sweep", []))
    if sweep != sorted(set(sweep)):
        raise ConfigError(
            f"tracer.cka.eps_sweep {sweep}: list each ε once, in ascending order (e.g. {sorted(set(sweep))})"
        )
    _check_dataset_names(config)
    _check_zoo_datasets(config)
    if tracer.get("datasets"):
        _check_target_source(config)
    for d in tracer.get("datasets", []):
        _check_architecture(tracer_target(config, d)[0])
    for d in tracer.get("datasets", []):
        _, h, w = _input_shape(config, d)
        patch = tracer["interventions"]["patch"]
        if dataset_kind(config, d) == "tabular" and patch > w:
            raise ConfigError(
                f"tracer.interventions.patch ({patch}) is longer than the {w} features of {d} (tabular: 1 x patch "
                f"windows): choose a patch of at most {w}"
            )
        if dataset_kind(config, d) != "tabular" and patch > min(h, w):
            raise ConfigError(
                f"tracer.interventions.patch ({patch}) is larger than the {d} inputs ({h}x{w}): "
                f"choose a patch of at most {min(h, w)}"
            )
    for name in CONTINUOUS:
        spec = zoo["train"]["hparams"][name]
        if isinstance(spec, Mapping):
            low, high = float(spec["low"]), float(spec["high"])
            if low > high:
                raise ConfigError(f"zoo.train.hparams.{name}: low ({low:g}) must not exceed high ({high:g})")
            if spec.get("scale", "linear") == "log" and low <= 0:
                raise ConfigError(f"zoo.train.hparams.{name}: scale log needs low > 0, got {low:g}")
            if name == "dropout" and not (0 <= low and high < 1):
                raise ConfigError(f"zoo.train.hparams.dropout: the range must lie in [0, 1), got [{low:g}, {high:g}]")
            if name == "train_fraction" and not (0 < low and high <= 1):
                raise ConfigError(
                    f"zoo.train.hparams.train_fraction: the range must lie in (0, 1], got [{low:g}, {high:g}]"
                )
            if name in ("init_std", "learning_rate") and low <= 0:
                raise ConfigError(f"zoo.train.hparams.{name}: must be > 0, got low {low:g}")
            if name == "l2reg" and low < 0:
                raise ConfigError(f"zoo.train.hparams.l2reg: must be >= 0, got low {low:g}")
    _check_tracer_settings(config)
    _check_samples(config)
    _check_zoo(config, cache)
    _check_zoo_source(config)
    for key in ("effects.figures.hparam", "effects.figures.kernel_comparison", "effects.figures.kernel_example.hparam"):
        try:
            check_figure_hparam(config, key)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    _check_methods(config)
    tracer = config["tracer"]
    _check_weights(tracer)
    if tracer["datasets"]:
        if (all(tracer_target(config, d)[0] in BUILTIN_ARCHITECTURES for d in tracer["datasets"])
                and tracer["model"].get("weights") is None):
            key = {"shapes": [_input_shape(config, d) for d in tracer["datasets"]],
                   "targets": [[*tracer_target(config, d), dataset_kind(config, d)] for d in tracer["datasets"]],
                   "classes": [_info(config, d)[2] if _loaded(config, d) else N_CLASSES for d in tracer["datasets"]],
                   "architecture": tracer["model"]["architecture"], "dropout": tracer["model"]["dropout"],
                   "layers": tracer["layers"], "methods": tracer["reliability"]["methods"],
                   "grad_cam_layer": tracer["reliability"]["grad_cam_layer"]}
            _memo(cache, "tracer_model", key, lambda: _check_tracer_model(config))
        else:  # its code lies outside the package: checked every time
            _check_tracer_model(config)


def check_device(device: str) -> None:
    """The config's ``device`` on this machine: CUDA must be present when asked for.

    The workflow calls it when a run whose jobs run on this machine starts (not for a dry run,
    nor where jobs are submitted to a cluster: a login node has no GPU, the compute nodes do).

    Raises:
        ConfigError: naming ``device``, what this machine has and the fix.
    """
    if not str(device).startswith("cuda"):
        return
    from causalxai.runtime import resolve_device

    try:
        resolve_device(device)
    except ValueError as exc:
        raise ConfigError(
            f"{exc}. The jobs run on this machine; set device: auto (CUDA when present) or cpu, or submit them "
            "to GPU nodes (e.g. --profile workflow/profiles/slurm)"
        ) from None
