"""Config validation: the schema (types, allowed values, unknown keys) and check_config."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import numpy as np
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


# ---------------------------------------------------------------------------------------
# every check before the first job (issue 17): cross checks against the splits, both networks
# and TRACER's architecture, built once untrained

#: custom TRACER architectures (tracer.model.architecture "checknets:<function>"), written to a
#: module on the path by the tests (and by tests/workflow/test_checks.py)
CUSTOM_NETS = '''
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn


class FcFirst(nn.Module):
    """Registers its classifier before its features; forward runs conv, relu, flatten, fc."""

    def __init__(self, in_channels, n_classes):
        super().__init__()
        self.fc = nn.Linear(4 * 28 * 28, n_classes)
        self.conv = nn.Conv2d(in_channels, 4, 3, padding=1)
        self.relu = nn.ReLU()
        self.flatten = nn.Flatten()

    def forward(self, x):
        return self.fc(self.flatten(self.relu(self.conv(x))))


class SharedRelu(nn.Module):
    """One ReLU module applied after both convolutions."""

    def __init__(self, in_channels, n_classes):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.relu = nn.ReLU()
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(4 * 28 * 28, n_classes)

    def forward(self, x):
        return self.fc(self.flatten(self.relu(self.conv2(self.relu(self.conv1(x))))))


class LogSoftmaxEnd(nn.Sequential):
    """Ends in a function, not a module: no module returns the model's output."""

    def forward(self, x):
        return F.log_softmax(super().forward(x), dim=1)


def _layers(in_channels, n_classes, act):
    return OrderedDict(conv=nn.Conv2d(in_channels, 4, 3, padding=1), act=act, flatten=nn.Flatten(),
                       fc=nn.Linear(4 * 28 * 28, n_classes))


def fc_first(in_channels=1, n_classes=10):
    return FcFirst(in_channels, n_classes)


def shared_relu(in_channels=1, n_classes=10):
    return SharedRelu(in_channels, n_classes)


def log_softmax_end(in_channels=1, n_classes=10):
    return LogSoftmaxEnd(_layers(in_channels, n_classes, nn.ReLU()))


def gelu_net(in_channels=1, n_classes=10):
    return nn.Sequential(_layers(in_channels, n_classes, nn.GELU()))


def relu_net(in_channels=1, n_classes=10):
    return nn.Sequential(_layers(in_channels, n_classes, nn.ReLU()))
'''


@pytest.fixture
def checknets(tmp_path, monkeypatch):
    """The module ``checknets`` (:data:`CUSTOM_NETS`) importable for the duration of a test."""
    import sys

    (tmp_path / "checknets.py").write_text(CUSTOM_NETS)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    sys.modules.pop("checknets", None)


def _cfg(**values) -> dict:
    cfg = load()
    for key, value in values.items():
        _set(cfg, key.replace("__", "."), value)
    return cfg


#: every hyperparameter of the zoo with one value: no treatment to estimate an effect of
SINGLE_VALUES = {"optimizer": ["adam"], "activation": ["relu"], "w_init": ["he_normal"], "init_std": [0.1],
                 "l2reg": [0.0], "dropout": [0.0], "learning_rate": [0.01], "train_fraction": [1.0]}


@pytest.mark.parametrize(
    "values, needle",
    [
        # tracer.layers resolved on alexnet28, built untrained
        ({"tracer__layers": ["fc3", "fc3"]}, r"tracer\.layers \['fc3', 'fc3'\].*\['fc3'\] more than once"),
        ({"tracer__layers": ["relu1", "fc9"]}, r"\['fc9'\] is not a module of Sequential; its leaf modules in "
                                               r"forward order are \['conv1', 'relu1'"),
        ({"tracer__layers": ["fc3", "relu1"]},
         r"lists \['fc3', 'relu1'\], but forward runs them as \['relu1', 'fc3'\]"),
        ({"tracer__layers": ["relu1", "relu7"]}, r"ends at 'relu7', which is not the model's output.*'fc3'"),
        ({"tracer__layers": ["flatten", "Flatten"]}, r"selects 1 layer \(\['flatten'\]\).*at least 2"),
        ({"tracer__reliability__grad_cam_layer": "conv9"},
         r"tracer\.reliability\.grad_cam_layer 'conv9' is not a module"),
        # image sizes against the zoo network (3 x conv 3x3 stride 2 valid: 15 pixels at least)
        ({"data__image_size": 14}, r"data\.image_size \(14\) is too small for the zoo network.*at least 15x15"),
        # sample counts against the digits' test split (360 images, 35-37 per class)
        ({"images__n_images": 5},
         r"images\.n_images \(5\) is smaller than the 10 classes.*images\.allow_missing_classes"),
        ({"images__n_images": 400}, r"images\.n_images \(400\) draws 40 test images of class 0 of digits.*at most 3"),
        ({"tracer__reliability__n_samples": 9}, r"tracer\.reliability\.n_samples \(9\).*tracer\.allow_missing_classes"),
        ({"tracer__reliability__n_samples": 1000}, r"tracer\.reliability\.n_samples \(1000\) draws 100 test images"),
        ({"tracer__counterfactuals__n_correct": 400}, r"tracer\.counterfactuals\.n_correct \(400\) exceeds the 360"),
        ({"tracer__counterfactuals__ynn_k": 2000}, r"tracer\.counterfactuals\.ynn_k \(2000\) exceeds the 1437 images"),
        # cross checks that jobs made (mechanisms, compress, meta_model, effects)
        ({"tracer__mechanisms__eps_step": 1e-5}, r"tracer\.mechanisms\.eps_radius \(0\.02\) / tracer\.mechanisms"),
        ({"tracer__compress__random_weights_samples": 101},
         r"tracer\.compress\.random_weights_samples \(101\) exceeds"),
        ({"zoo__n_models": 8, "buckets__edges": [0, 50, 100], "meta_model__top_fraction": 0.05},
         r"meta_model: subset 'top' has 1 model\(s\).*8 in the zoo.*zoo\.n_models"),
        ({"zoo__train__hparams": SINGLE_VALUES},
         r"zoo\.train\.hparams: every hyperparameter takes a single value"),
        ({"zoo__train__hparams": {**SINGLE_VALUES, "dropout": {"low": 0.0, "high": 0.05}}},  # one marker: 0
         r"zoo\.train\.hparams: every hyperparameter takes a single value \(continuous ones rounded"),
        ({"zoo__source": "smallcnnzoo", "datasets": ["mnist"], "tracer__datasets": [],
          "zoo__smallcnnzoo__max_models": 4, "explain__shards": 8}, r"explain\.shards \(8\) exceeds zoo\.smallcnnzoo"),
        # MNIST's test split has 892 fives, 980 zeros: a class-balanced 10000 needs 1000 of each
        ({"tracer__datasets": ["mnist"], "tracer__reliability__n_samples": 10000},
         r"tracer\.reliability\.n_samples \(10000\) draws 1000 test images of class 0 of mnist.*at most 8925"),
    ],
)
def test_check_config_refuses_before_any_job(values, needle):
    with pytest.raises(ConfigError, match=needle):
        validated(_cfg(**values))


@pytest.mark.parametrize(
    "values",
    [
        {"images__n_images": 5, "images__allow_missing_classes": True},
        {"tracer__n_samples": 4, "tracer__allow_missing_classes": True, "tracer__figures__samples": 1,
         "tracer__compress__random_weights_samples": 4},
        {"tracer__datasets": ["mnist"], "tracer__reliability__n_samples": 8925},  # the largest balanced draw
        {"tracer__datasets": ["svhn_cropped", "cifar10"], "tracer__layers": ["relu1", "Linear"]},  # 32x32 inputs
        {"data__image_size": 15, "tracer__interventions__patch": 3},  # the zoo network's smallest input
        {"images__n_images": 350},  # 35 per class: within the bound, no digits loaded
        {"tracer__reliability__grad_cam_layer": "relu4"},
        {"zoo__train__hparams": {**SINGLE_VALUES, "dropout": {"low": 0.0, "high": 0.7}},  # one varies, and it is
         "effects__figures": {"hparam": "dropout", "kernel_comparison": "dropout"}},  # the figures' hyperparameter
    ],
)
def test_check_config_accepts(values):
    validated(_cfg(**values))


def test_class_counts_of_the_digits_match_the_package_split():
    from causalxai.config import DIGITS_CLASS_COUNTS, _class_counts, _digits_split_counts
    from causalxai.data.dataset import load_digits

    cfg = validated({"data": {"test_fraction": 0.3}, "seed": 7})
    ds = load_digits(image_size=8, test_fraction=0.3, seed=7)
    for split in ("train", "test"):
        labels = ds["label"].values[ds["split"].values == split]
        exact = np.bincount(labels, minlength=10)
        assert _digits_split_counts(0.3, 7)[split] == tuple(exact)
        assert (_class_counts(cfg, "digits", split, exact=False) <= exact).all()  # the bound is a lower bound
    assert np.bincount(ds["label"].values).tolist() == list(DIGITS_CLASS_COUNTS)


def test_largest_balanced_draw_is_the_largest():
    from causalxai.config import _class_needs, _largest_balanced

    for counts in ([5, 3, 4], [3, 3, 3], [4, 9, 2, 2], [892, 1000]):
        c = np.asarray(counts)
        n = _largest_balanced(c)
        assert (_class_needs(n, len(c)) <= c).all() and not (_class_needs(n + 1, len(c)) <= c).all()


def test_zoo_min_input_side_is_the_smallest_input_the_network_takes():
    import torch

    from causalxai.config import zoo_min_input_side
    from causalxai.zoo.network import ZooCNN

    side = zoo_min_input_side()
    assert side == 15
    ZooCNN()(torch.zeros(1, 1, side, side))
    with pytest.raises(RuntimeError):
        ZooCNN()(torch.zeros(1, 1, side - 1, side - 1))


@pytest.mark.parametrize(
    "function, layers, needle",
    [
        ("shared_relu", ["conv1", "relu", "fc"], r"'relu' runs 2 times per forward pass"),
        ("log_softmax_end", ["act", "fc"], r"ends at 'fc'.*no module returns the model's output"),
        ("gelu_net", ["act", "fc"], r"tracer\.reliability\.methods: lrp: Captum's LRP has no rule for layer 'act'"),
    ],
)
def test_custom_architectures_are_refused_with_the_reason(checknets, function, layers, needle):
    cfg = _cfg(tracer__model__architecture=f"checknets:{function}", tracer__layers=layers)
    with pytest.raises(ConfigError, match=needle):
        validated(cfg)


def test_a_model_compress_cannot_rebuild_passes_the_check_and_compress_names_the_reason(checknets):
    """Registered fc before conv: TRACER orders its layers by forward; the compress step, which rebuilds
    models as chains of leaves in registration order, skips it with the reason (was a ConfigError)."""
    import torch

    from causalxai.compress.build import compress_skip_reason
    from causalxai.tracer.target_model import build_classifier

    validated(_cfg(tracer__model__architecture="checknets:fc_first", tracer__layers=["conv", "relu", "fc"]))
    model = build_classifier("checknets:fc_first", in_channels=1, n_classes=10)
    torch.manual_seed(0)
    reason = compress_skip_reason(model, ["conv", "relu", "fc"], (1, 28, 28))
    assert "registers its leaf modules as ['fc', 'conv', 'relu', 'flatten'] but its forward runs them as " \
           "['conv', 'relu', 'flatten', 'fc']" in reason


def test_a_custom_architecture_that_cannot_take_the_inputs_names_data_set_shape_and_architecture(checknets):
    cfg = _cfg(tracer__model__architecture="checknets:relu_net", tracer__layers=["act", "fc"], data__image_size=32)
    with pytest.raises(ConfigError, match=r"tracer\.model\.architecture 'checknets:relu_net' cannot take the digits "
                                          r"inputs 1x32x32.*forward pass raised RuntimeError"):
        validated(cfg)
    validated(_set(cfg, "data.image_size", 28))  # its own size


def test_check_device_refuses_cuda_without_cuda():
    import torch

    from causalxai.config import check_device

    check_device("cpu")
    check_device("auto")
    if torch.cuda.is_available():
        check_device("cuda")
        with pytest.raises(ConfigError, match=r"device: 'cuda:99'.*CUDA device"):
            check_device("cuda:99")
    else:
        with pytest.raises(ConfigError, match=r"device: 'cuda' was asked for but no CUDA device.*jobs run on this "
                                              r"machine.*workflow/profiles/slurm"):
            check_device("cuda")


def test_checks_that_need_torch_remember_that_they_passed(tmp_path, monkeypatch, checknets):
    import causalxai.config as config_module

    cache = tmp_path / "cache"
    calls = []
    real = config_module._check_tracer_model
    monkeypatch.setattr(config_module, "_check_tracer_model", lambda cfg: (calls.append(1), real(cfg)))
    cfg = validated(load())  # checked without a cache
    calls.clear()
    check_config(cfg, cache=cache)
    check_config(cfg, cache=cache)  # the same values and code: not run again
    assert len(calls) == 1 and len(list(cache.iterdir())) == 3  # zoo image size, meta-model split, TRACER model
    check_config(_set(copy.deepcopy(cfg), "tracer.model.epochs", 3), cache=cache)  # not a value it reads
    assert len(calls) == 1
    with pytest.raises(ConfigError, match="more than once"):  # another value it reads: checked (and not remembered)
        check_config(_set(copy.deepcopy(cfg), "tracer.layers", ["fc3", "fc3"]), cache=cache)
    assert len(calls) == 2
    custom = _set(_set(copy.deepcopy(cfg), "tracer.model.architecture", "checknets:relu_net"), "tracer.layers",
                  ["act", "fc"])
    check_config(custom, cache=cache)
    check_config(custom, cache=cache)  # a custom architecture's code lies outside the package: every time
    assert len(calls) == 4


def test_split_class_counts_add_up_to_the_published_split_sizes():
    from causalxai.config import SPLIT_CLASS_COUNTS

    sizes = {"mnist": (60000, 10000), "fashion_mnist": (60000, 10000), "cifar10": (50000, 10000),
             "svhn_cropped": (73257, 26032)}
    for name, (train, test) in sizes.items():
        counts = SPLIT_CLASS_COUNTS[name]
        assert (sum(counts["train"]), sum(counts["test"])) == (train, test), name
        assert len(counts["train"]) == len(counts["test"]) == 10


@pytest.mark.parametrize("n", [1, 7, 10, 23, 100])
def test_class_needs_are_what_the_class_balanced_draw_takes(n):
    from causalxai.config import _class_needs
    from causalxai.data.images import class_balanced_indices

    labels = np.repeat(np.arange(10), 50)
    drawn = class_balanced_indices(labels, n, seed=0)
    assert np.bincount(labels[drawn], minlength=10).tolist() == _class_needs(n, 10).tolist()


@pytest.mark.parametrize("key", ["hparam", "kernel_comparison", "kernel_example"])
def test_a_figure_hyperparameter_without_a_control_group_is_refused(key):
    cfg = load()
    cfg["zoo"]["train"]["hparams"]["activation"] = ["relu"]
    value = {"hparam": "activation", "value": "relu", "image": 0} if key == "kernel_example" else "activation"
    cfg["effects"]["figures"][key] = value
    dotted = f"effects.figures.{key}" + (".hparam" if key == "kernel_example" else "")
    with pytest.raises(ConfigError, match=re.escape(f"{dotted} 'activation' takes a single value in this zoo")):
        validated(cfg)
    cfg["effects"]["figures"][key] = {**value, "hparam": "dropout"} if key == "kernel_example" else "dropout"
    validated(cfg)


def test_trained_weights_must_exist_for_every_tracer_data_set(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "digits.pt").write_bytes(b"")
    validated(_cfg(tracer__model__weights="{dataset}.pt"))
    with pytest.raises(ConfigError, match=r"tracer.model.weights: mnist.pt \(the weights for mnist\) does not exist"):
        validated(_cfg(tracer__model__weights="{dataset}.pt", tracer__datasets=["digits", "mnist"]))
    with pytest.raises(ConfigError, match=r"the only placeholder allowed is \{dataset\}"):
        validated(_cfg(tracer__model__weights="{data}.pt"))


def test_resnet_small_is_checked_with_its_own_layers():
    validated(_cfg(tracer__model__architecture="resnet_small", tracer__layers="auto"))
    validated(_cfg(tracer__layers="auto"))  # alexnet28's own list
    with pytest.raises(ConfigError, match=r"tracer\.layers \['relu1'.*'resnet_small'.*tracer\.layers: auto observes"):
        validated(_cfg(tracer__model__architecture="resnet_small"))  # alexnet28's names are not its modules


# ---------------------------------------------------------------------------------------
# user data sets (data.custom) and the tabular breast_cancer


@pytest.fixture
def custom_npz(tmp_path, monkeypatch):
    """A 3-channel 8x8 set of 3 classes (4 test images each) and a tabular one, in the working directory."""
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    np.savez("rgb.npz", x_train=rng.integers(0, 256, (30, 3, 8, 8)), y_train=np.arange(30) % 3,
             x_test=rng.integers(0, 256, (12, 3, 8, 8)), y_test=np.arange(12) % 3)
    np.savez("tab.npz", x_train=rng.normal(size=(30, 5)), y_train=np.arange(30) % 2,
             x_test=rng.normal(size=(12, 5)), y_test=np.arange(12) % 2)
    np.savez("nan.npz", x_train=np.full((4, 5), np.nan), y_train=np.arange(4) % 2,
             x_test=np.zeros((2, 5)), y_test=np.arange(2))
    return tmp_path


CUSTOM = {"rgb": {"path": "rgb.npz"}, "tab": {"path": "tab.npz"}, "bad": {"path": "nan.npz"}}
SMALL_TRACER = {"tracer__n_samples": 12, "tracer__reliability__n_samples": 12, "tracer__figures__samples": 1,
                "tracer__compress__random_weights_samples": 4, "tracer__counterfactuals__n_correct": 3}


@pytest.mark.parametrize(
    "values, needle",
    [
        ({"tracer__datasets": ["nosuch"]}, r"tracer\.datasets: \['nosuch'\] is neither a built-in data set.*"
                                           r"declared under data\.custom \(rgb, tab, bad\)"),
        ({"tracer__datasets": ["bad"]}, r"data\.custom\.bad: x_train holds 20 NaN or infinite values"),
        ({"datasets": ["tab"]}, r"datasets: tab is tabular.*tracer\.datasets only"),
        ({"datasets": ["rgb"]}, r"datasets: rgb has 3 classes, but the zoo network has 10 outputs"),
        ({"tracer__datasets": ["tab"], "tracer__interventions__patch": 6},
         r"tracer\.interventions\.patch \(6\) is longer than the 5 features of tab"),
        ({"tracer__datasets": ["rgb"], "tracer__n_samples": 15, "tracer__reliability__n_samples": 12},
         r"tracer\.n_samples \(15\) draws 5 test images of class 0 of rgb.*data\.custom\.rgb's x_test.*at most 12"),
        ({"tracer__datasets": ["breast_cancer"], "tracer__n_samples": 100},  # 42 malignant test rows: 100 needs 50
         r"tracer\.n_samples \(100\) draws 50 test images of class 0 of breast_cancer.*at most 84"),
        ({"tracer__datasets": ["tab"], "tracer__tabular__layers": ["relu1", "fc9"]},
         r"tracer\.tabular\.layers \['relu1', 'fc9'\] on 'mlp'"),
    ],
)
def test_user_data_sets_are_checked_before_any_job(custom_npz, values, needle):
    cfg = _cfg(**{**SMALL_TRACER, **values})
    cfg.setdefault("data", {})["custom"] = CUSTOM
    with pytest.raises(ConfigError, match=needle):
        validated(cfg)


def test_user_data_sets_and_breast_cancer_pass_with_their_own_targets(custom_npz):
    from causalxai.config import dataset_kind, reliability_methods, tracer_target

    cfg = _cfg(**{**SMALL_TRACER, "tracer__datasets": ["rgb", "tab", "breast_cancer", "digits"]})
    cfg["data"]["custom"] = {k: v for k, v in CUSTOM.items() if k != "bad"}
    cfg = validated(cfg)
    assert [dataset_kind(cfg, d) for d in ("rgb", "tab", "breast_cancer", "digits")] == \
        ["image", "tabular", "tabular", "image"]
    assert tracer_target(cfg, "tab")[0] == "mlp" and tracer_target(cfg, "rgb")[0] == "alexnet28"
    assert "grad_cam" not in reliability_methods(cfg["tracer"]["reliability"]["methods"], "tabular")
    assert "grad_cam" in reliability_methods(cfg["tracer"]["reliability"]["methods"], "image")


def test_images_of_any_size_and_channels_run_with_resnet_small(custom_npz):
    """A 3-channel 10 x 14 set: alexnet28 (square inputs) is refused naming the shape, resnet_small
    (global pooling) takes it; each data set can have its own architecture."""
    rng = np.random.default_rng(1)
    np.savez("wide.npz", x_train=rng.integers(0, 256, (30, 3, 10, 14)), y_train=np.arange(30) % 3,
             x_test=rng.integers(0, 256, (12, 3, 10, 14)), y_test=np.arange(12) % 3)
    cfg = _cfg(**{**SMALL_TRACER, "tracer__datasets": ["wide", "digits"]})
    cfg["data"]["custom"] = {"wide": {"path": "wide.npz"}}
    with pytest.raises(ConfigError, match=r"'alexnet28' cannot take the wide inputs 3x10x14"):
        validated(cfg)
    cfg["tracer"]["model"]["architecture"] = {"wide": "resnet_small", "digits": "alexnet28"}
    cfg["tracer"]["layers"] = "auto"
    validated(cfg)


@pytest.mark.parametrize(
    "values, needle",
    [
        ({"tracer__model__architecture": {"mnist": "resnet_small"}},
         r"tracer\.model\.architecture \{'mnist': 'resnet_small'\} names no architecture for the TRACER data sets "
         r"\['digits'\]"),
        ({"tracer__model__pretrained": True},
         r"tracer\.model\.pretrained: true, but tracer\.model\.architecture 'alexnet28' is built in and untrained"),
        ({"tracer__model__pretrained": True, "tracer__model__architecture": "checknets:relu_net",
          "tracer__model__weights": "config/config.yaml"},
         r"tracer\.model\.pretrained: true and tracer\.model\.weights both give the trained model"),
    ],
)
def test_bad_target_sources_are_refused_naming_the_key(checknets, values, needle):
    with pytest.raises(ConfigError, match=needle):
        validated(_cfg(**values))


def test_an_architecture_per_data_set_and_a_pretrained_factory_pass(checknets):
    validated(_cfg(tracer__model__architecture={"digits": "resnet_small"}, tracer__layers="auto"))
    validated(_cfg(tracer__model__architecture="checknets:relu_net", tracer__model__pretrained=True,
                   tracer__layers=["act", "fc"]))


def test_a_torchscript_target_is_checked_against_the_data(tmp_path):
    import torch
    from torch import nn

    def scripted(side: int) -> str:
        net = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(2 * side * side, 10))
        path = tmp_path / f"net{side}.pt"
        torch.jit.save(torch.jit.script(net), str(path))
        return str(path)

    with pytest.raises(ConfigError, match=r"lrp: Captum's LRP has no rule for layer '0' \(ScriptedLayer\)"):
        validated(_cfg(tracer__model__weights=scripted(28), tracer__layers=["1", "3"]))
    no_lrp = ["gradient", "grad_cam"]
    validated(_cfg(tracer__model__weights=scripted(28), tracer__layers=["1", "3"],
                   tracer__reliability__methods=no_lrp))
    with pytest.raises(ConfigError, match=r"net8\.pt cannot take inputs of shape 1x28x28.*\(digits inputs 1x28x28\)"):
        validated(_cfg(tracer__model__weights=scripted(8), tracer__layers=["1", "3"],
                       tracer__reliability__methods=no_lrp))
