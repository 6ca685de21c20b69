"""Checks of a (schema-validated) config that a JSON schema cannot express.

The Snakefile validates the config against ``config/schema.yaml`` first (types, allowed
values, unknown keys), then calls :func:`check_config` before any job is scheduled. Each
error names the key, what is wrong and what is allowed.

JSON Schema counts ``1.0`` as an integer (draft 6 and later), so ``epochs: 10.0`` passes the
schema and would crash a job later with a raw ``TypeError``; :func:`check_integers` walks the
schema beside the config and refuses a float wherever the schema allows integers only.
"""

from __future__ import annotations

import importlib.util
from typing import Any, Mapping

import numpy as np

from causalxai.study.buckets import assign_buckets, bucket_labels, validate_edges
from causalxai.zoo.hparams import CONTINUOUS

__all__ = ["ConfigError", "check_config", "check_integers"]

ZOO_DATASETS = ("mnist", "fashion_mnist", "cifar10", "svhn_cropped")
#: native input side of each downloaded image set (digits: data.image_size)
INPUT_SIZES = {"mnist": 28, "fashion_mnist": 28, "cifar10": 32, "svhn_cropped": 32}


class ConfigError(ValueError):
    """A config value that passes the schema but cannot work."""


#: the architectures tracer.model.architecture knows by name (causalxai.tracer.target_model.BUILTIN)
BUILTIN_ARCHITECTURES = ("alexnet28",)


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


def check_config(config: Mapping[str, Any], schema: Mapping[str, Any] | None = None) -> None:
    """Raise :class:`ConfigError` naming the first key whose value cannot work.

    Args:
        config: the config, validated against the schema (defaults filled in).
        schema: ``config/schema.yaml``; when given, :func:`check_integers` runs first.
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
    if tracer.get("datasets"):
        _check_architecture(tracer["model"]["architecture"])
    for d in tracer.get("datasets", []):
        size = config["data"]["image_size"] if d == "digits" else INPUT_SIZES[d]
        patch = tracer["interventions"]["patch"]
        if patch > size:
            raise ConfigError(
                f"tracer.interventions.patch ({patch}) is larger than the {d} inputs ({size}x{size}): "
                f"choose a patch of at most {size}"
            )
        if tracer["figures"]["samples"] > tracer["n_samples"]:
            raise ConfigError(
                f"tracer.figures.samples ({tracer['figures']['samples']}) exceeds tracer.n_samples "
                f"({tracer['n_samples']}): only analysed samples can be drawn"
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
