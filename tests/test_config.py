"""Config validation: the schema (types, allowed values, unknown keys) and check_config."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from snakemake.utils import validate

from causalxai.config import ConfigError, check_config

REPO = Path(__file__).resolve().parents[1]
SCHEMA = str(REPO / "config" / "schema.yaml")


def load(name: str = "config.yaml") -> dict:
    return yaml.safe_load((REPO / "config" / name).read_text())


def validated(cfg: dict) -> dict:
    cfg = copy.deepcopy(cfg)
    validate(cfg, SCHEMA, set_default=True)
    check_config(cfg, schema=yaml.safe_load(Path(SCHEMA).read_text()))
    return cfg


@pytest.mark.parametrize("name", ["config.yaml", "paper.yaml"])
def test_shipped_configs_are_valid(name):
    validated(load(name))


def test_replica_preset_is_valid_on_both_configs_and_selects_the_public_code():
    for base in ("config.yaml", "paper.yaml"):
        cfg = load(base)
        for section, values in load("replica.yaml").items():
            cfg.setdefault(section, {}).update(values)
        cfg = validated(cfg)
        assert cfg["explain"]["normalisation"] == "public_code" and cfg["effects"]["pool"] == 100
        assert cfg["effects"]["bandwidth"] == "fixed" and "train_fraction" not in cfg["effects"]["log_rounding"]


def test_effects_defaults_follow_the_public_code():
    e = validated({})["effects"]
    assert (e["kernel"], e["bandwidth"], e["estimator"], e["aggregation"]) == ("rbf", "fixed", "eq4", "hparam_mean")
    assert (e["bootstrap"], e["permutations"], e["min_models"], e["placebo_levels"]) == (200, 100, 5, 3)
    assert validated({})["explain"]["normalisation"] == "paper"


def test_defaults_fill_a_minimal_config():
    cfg = validated({})
    assert cfg["zoo"]["n_models"] == 600
    assert cfg["buckets"]["edges"] == [0, 20, 40, 60, 80, 90, 95, 99, 100]
    assert cfg["zoo"]["train"]["hparams"]["optimizer"] == ["sgd", "adam", "rmsprop"]


def _set(cfg: dict, dotted: str, value) -> dict:
    node = cfg
    *path, last = dotted.split(".")
    for key in path:
        node = node.setdefault(key, {})
    node[last] = value
    return cfg


@pytest.mark.parametrize(
    "key, value, needle",
    [
        ("zoo.n_modles", 10, "n_modles"),  # unknown key (typo)
        ("effects.bandwidth", "silverman", "silverman"),
        ("effects.estimator", "mmd", "mmd"),
        ("effects.pool", 1, "pool"),
        ("effects.bootstrap", -1, "bootstrap"),
        ("effects.ci_level", 1.5, "1.5"),
        ("effects.log_rounding", ["momentum"], "momentum"),
        ("effects.aggregation", "median", "median"),
        ("explain.normalisation", "minmax", "minmax"),
        ("explain.zero_maps", "zero", "zero"),
        ("zoo.n_models", 0, "n_models"),
        ("zoo.n_models", "many", "n_models"),
        ("zoo.source", "modelhub", "modelhub"),
        ("datasets", ["imagenet"], "imagenet"),
        ("device", "gpu", "gpu"),
        ("zoo.train.epochs", 0, "epochs"),
        ("zoo.train.hparams.optimizer", ["adagrad"], "adagrad"),
        ("images.n_images", -1, "n_images"),
        ("buckets.edges", [0, 50, 150], "150"),
        ("zoo.smallcnnzoo.sha256", {"mnist": "abc"}, "abc"),
        ("data.test_fraction", 1.5, "test_fraction"),
        ("tracer.cka.eps", -0.1, "-0.1"),
        ("tracer.cka.eps", 1.5, "1.5"),
        ("tracer.cka.kernel", "poly", "poly"),
        ("tracer.reliability.methods", ["anchors"], "anchors"),
        ("tracer.reliability.n_samples", "most", "most"),
        ("tracer.reliability.ci", 1.0, "1.0"),
        ("tracer.reliability.p", 2, "2"),
        ("meta_model.train_fraction", 1.0, "1.0"),
        ("tracer.layers", ["fc3"], "fc3"),
        ("explain.methods", ["lime"], "lime"),  # unknown saliency method
        ("explain.shards", 0, "shards"),
        ("tracer.counterfactuals.blend_steps", -1, "blend_steps"),
        ("seed", 2**32, "4294967296"),  # numpy's seeds are 32-bit
        ("effects.max_models_per_group", 1, "max_models_per_group"),  # every ITE the same constant, r NaN
        ("zoo.train.hparams.optimizer", ["adam", "adam"], "non-unique"),
        ("zoo.train.hparams.dropout", [0.1, 0.1], "dropout"),  # a value listed twice
    ],
)
def test_schema_rejects(key, value, needle):
    with pytest.raises(Exception) as info:
        validated(_set(load(), key, value))
    assert needle in str(info.value)


@pytest.mark.parametrize(
    "key, value, needle",
    [
        ("buckets.edges", [0, 60, 50, 100], "buckets.edges"),
        ("buckets.edges", [5, 50, 100], "buckets.edges"),
        ("zoo.train.hparams.learning_rate", {"low": 0.1, "high": 0.01, "scale": "log"}, "learning_rate"),
        ("zoo.train.hparams.l2reg", {"low": 0.0, "high": 0.01, "scale": "log"}, "l2reg"),
        ("zoo.train.hparams.dropout", {"low": 0.0, "high": 1.2}, "dropout"),
        ("tracer.interventions.patch", 29, "tracer.interventions.patch"),
        ("tracer.figures.samples", 101, "tracer.figures.samples"),
        ("zoo.n_models", 50, "buckets.edges"),  # the default's 99-100 bucket would hold 0 models
        ("explain.shards", 700, "explain.shards"),  # more shards than models
        ("tracer.model.architecture", "vgg16", "tracer.model.architecture"),  # neither built in nor module:function
        ("tracer.model.architecture", "no_such_package.nets:resnet", "no_such_package"),  # missing module file
        # JSON Schema counts 1.0 as an integer; check_integers does not
        ("zoo.n_models", 600.0, "zoo.n_models: 600.0 is not an integer; write 600"),
        ("tracer.n_samples", 100.0, "tracer.n_samples: 100.0 is not an integer; write 100"),
        ("effects.pool", 10.0, "effects.pool: 10.0 is not an integer"),  # inside a oneOf (null | integer)
        ("seed", 1.0, "seed: 1.0 is not an integer"),
        ("tracer.cka.eps_sweep", [0.1, 0.05], "tracer.cka.eps_sweep"),  # not ascending
        ("tracer.cka.eps_sweep", [0.05, 0.05, 0.1], "tracer.cka.eps_sweep"),  # repeated
    ],
)
def test_check_config_rejects(key, value, needle):
    with pytest.raises(ConfigError, match=needle.replace(".", r"\.")):
        validated(_set(load(), key, value))


@pytest.mark.parametrize("name", ["dropout", "learning_rate", "l2reg", "init_std", "train_fraction"])
def test_continuous_hyperparameters_take_a_list_of_values(name):
    # a list instead of a range (the schema's oneOf): Snakemake's set_default once wrote the range's default
    # 'scale' into the list and validation died of a raw AttributeError
    cfg = validated(_set(load(), f"zoo.train.hparams.{name}", [0.1, 0.2]))
    assert cfg["zoo"]["train"]["hparams"][name] == [0.1, 0.2]


def test_builtin_architectures_agree_with_the_target_module():
    from causalxai.config import BUILTIN_ARCHITECTURES
    from causalxai.tracer.target_model import BUILTIN

    assert set(BUILTIN_ARCHITECTURES) == set(BUILTIN)


def test_smallcnnzoo_needs_a_zoo_dataset():
    cfg = _set(load(), "zoo.source", "smallcnnzoo")
    with pytest.raises(ConfigError, match="datasets"):
        validated(cfg)


def test_reliability_n_samples_all_is_valid():
    cfg = validated(_set(load(), "tracer.reliability.n_samples", "all"))
    assert cfg["tracer"]["reliability"]["n_samples"] == "all"
    assert validated(load())["tracer"]["reliability"]["grad_cam_layer"] == "auto"
