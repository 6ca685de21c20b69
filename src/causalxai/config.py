"""Checks of a (schema-validated) config that a JSON schema cannot express.

The Snakefile validates the config against ``config/schema.yaml`` first (types, allowed
values, unknown keys), then calls :func:`check_config` before any job is scheduled. Each
error names the key, what is wrong and what is allowed.
"""

from __future__ import annotations

from typing import Any, Mapping

from causalxai.zoo.buckets import validate_edges
from causalxai.zoo.hparams import CONTINUOUS

__all__ = ["ConfigError", "check_config"]

ZOO_DATASETS = ("mnist", "fashion_mnist", "cifar10", "svhn_cropped")
#: native input side of each downloaded image set (digits: data.image_size)
INPUT_SIZES = {"mnist": 28, "fashion_mnist": 28, "cifar10": 32, "svhn_cropped": 32}


class ConfigError(ValueError):
    """A config value that passes the schema but cannot work."""


def check_config(config: Mapping[str, Any]) -> None:
    """Raise :class:`ConfigError` naming the first key whose value cannot work."""
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
    tracer = config.get("tracer", {})
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
                raise ConfigError(f"zoo.train.hparams.train_fraction: the range must lie in (0, 1], got [{low:g}, {high:g}]")
            if name in ("init_std", "learning_rate") and low <= 0:
                raise ConfigError(f"zoo.train.hparams.{name}: must be > 0, got low {low:g}")
            if name == "l2reg" and low < 0:
                raise ConfigError(f"zoo.train.hparams.l2reg: must be >= 0, got low {low:g}")
