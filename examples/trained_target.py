"""Bring your own trained model to TRACER: three ways to give the target_model step a model it does not train.

Run it from the repository root (PYTHONPATH=src); it trains a small CNN on the embedded digits for a few
seconds and writes, under ``--out`` (default ``examples/out``):

* ``small_cnn_digits.pt``: the state dict, for ``tracer.model.weights`` with ``tracer.model.architecture``
  naming the constructor (:func:`small_cnn`), read with ``torch.load(weights_only=True)``;
* ``small_cnn_digits.ts.pt``: the same model as TorchScript (``torch.jit.save``), for ``tracer.model.weights``
  alone (recognised by its format; a scripted ``nn.Sequential`` only, since torch refuses forward hooks inside
  TorchScript and TRACER rebuilds the Sequential from its scripted children to observe them);

and prints the config of each, and of the third way: a factory returning the trained model,
``tracer.model.architecture: trained_target:pretrained`` with ``tracer.model.pretrained: true`` (this file on
``PYTHONPATH``; the factory reads the state dict next to it). E.g.::

    PYTHONPATH=src python examples/trained_target.py
    PYTHONPATH=examples snakemake --cores 2 --configfile examples/out/torchscript.yaml -- \\
        results/digits/tracer/mechanisms.nc

``tracer.layers: auto`` observes the model's ``tracer_layers`` attribute, here set by :func:`small_cnn`.
"""

from __future__ import annotations

import argparse
import os
from collections import OrderedDict
from pathlib import Path

import torch
import yaml
from torch import nn

OUT = Path(__file__).resolve().parent / "out"


def small_cnn(in_channels: int = 1, n_classes: int = 10) -> nn.Sequential:
    """A small CNN for 28x28 inputs; ``tracer.model.architecture`` calls it with ``in_channels`` and ``n_classes``."""
    model = nn.Sequential(OrderedDict([
        ("conv1", nn.Conv2d(in_channels, 8, 3, padding=1)), ("relu1", nn.ReLU()), ("pool1", nn.MaxPool2d(2)),
        ("conv2", nn.Conv2d(8, 16, 3, padding=1)), ("relu2", nn.ReLU()), ("pool2", nn.MaxPool2d(2)),
        ("flatten", nn.Flatten()), ("fc1", nn.Linear(16 * 7 * 7, 32)), ("relu3", nn.ReLU()),
        ("fc2", nn.Linear(32, n_classes)),
    ]))
    model.tracer_layers = ["relu1", "relu2", "relu3", "fc2"]  # what tracer.layers: auto observes
    return model


def pretrained(in_channels: int = 1, n_classes: int = 10) -> nn.Sequential:
    """The factory of ``tracer.model.pretrained: true``: :func:`small_cnn` with the weights :func:`main` saved
    (``$TRAINED_TARGET_WEIGHTS``, default ``examples/out/small_cnn_digits.pt``)."""
    model = small_cnn(in_channels, n_classes)
    path = os.environ.get("TRAINED_TARGET_WEIGHTS", str(OUT / "small_cnn_digits.pt"))
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.eval()


def main(out: Path = OUT, epochs: int = 2) -> dict[str, dict]:
    """Train :func:`small_cnn` on the digits, save it both ways, write and return the three configs."""
    from causalxai.data.dataset import load_digits
    from causalxai.tracer.model import train_classifier
    from causalxai.tracer.settings import ClassifierSettings
    from causalxai.tracer.target_model import dataset_tensors

    out.mkdir(parents=True, exist_ok=True)
    data = load_digits(image_size=28, test_fraction=0.2, seed=0)  # the workflow's digits (config data section)
    torch.manual_seed(0)
    model = small_cnn()
    settings = ClassifierSettings.from_params({"epochs": epochs, "lr": 1e-3, "seed": 0})
    model, hist = train_classifier(model, *dataset_tensors(data, "train"), *dataset_tensors(data, "test"), settings,
                                   device="cpu")
    print(f"small_cnn: test accuracy {hist['final_test_accuracy']:.3f} after {epochs} epochs")
    state = out / "small_cnn_digits.pt"
    torch.save(model.state_dict(), state)
    script = out / "small_cnn_digits.ts.pt"
    torch.jit.save(torch.jit.script(model.cpu().eval()), str(script))
    configs = {
        "state_dict": {"tracer": {"model": {"architecture": "trained_target:small_cnn",
                                            "weights": str(out / "small_cnn_{dataset}.pt")}, "layers": "auto"}},
        "torchscript": {"tracer": {"model": {"weights": str(out / "small_cnn_{dataset}.ts.pt")},
                                   "layers": ["relu1", "relu2", "relu3", "fc2"],
                                   "reliability": {"methods": ["gradient", "smoothgrad", "integrated_gradients",
                                                               "grad_cam", "lime", "kernel_shap"]}}},  # no lrp
        "pretrained": {"tracer": {"model": {"architecture": "trained_target:pretrained", "pretrained": True},
                                  "layers": "auto"}},
    }
    for name, cfg in configs.items():
        (out / f"{name}.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
        print(f"--- {out / f'{name}.yaml'}\n{yaml.safe_dump(cfg, sort_keys=False)}")
    return configs


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    main(args.out, args.epochs)
