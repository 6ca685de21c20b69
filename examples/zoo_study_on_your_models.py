"""The model-zoo study (paper 000) on your own models and arrays, from Python, without Snakemake.

Run from the repository root:  python examples/zoo_study_on_your_models.py

It trains a small zoo of its own (24 tiny CNNs on scikit-learn's 8x8 digits, with two
hyperparameters varied: the optimizer and the learning rate), then runs the same code the
workflow's rules run: the zoo file (state dicts + declared hyperparameters), accuracy buckets,
predictions Y, Gradient explanations E (all models at once with ``torch.func.vmap``), and the
treatment effects of each hyperparameter on Y and on E (eq. (4)) with their correlation and
its bootstrap interval. Replace ``small_cnn``, the training loop and the arrays with yours:
the architecture is named as ``"package.module:function"`` so that the zoo can be rebuilt
from its file; your data become the package's ``dataset.nc`` contract with
:func:`causalxai.data.custom.assemble` (raw range declared, mapped to [-1, 1]).
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))  # so the zoo can import small_cnn from this file

from causalxai.data.custom import assemble  # noqa: E402
from causalxai.data.images import select_probe_images  # noqa: E402
from causalxai.study.buckets import make_buckets  # noqa: E402
from causalxai.study.effects import EffectsSettings, compute_effects  # noqa: E402
from causalxai.study.explain import ExplainSettings, explain_zoo  # noqa: E402
from causalxai.study.predictions import predict_zoo  # noqa: E402
from causalxai.zoo.checkpoints import make_state_dict_zoo  # noqa: E402
from causalxai.zoo.forward import flatten_state_dict, state_dict_layout  # noqa: E402

ARCHITECTURE = "zoo_study_on_your_models:small_cnn"


def small_cnn() -> nn.Sequential:
    """Your architecture: any torch classifier of (N, 1, H, W) inputs."""
    return nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 6, 3, stride=2, padding=1),
                         nn.ReLU(), nn.Flatten(), nn.Linear(6 * 4 * 4, 10))


def train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, optimizer: str, lr: float, seed: int) -> None:
    """Your training loop (here: 3 epochs of minibatch cross-entropy)."""
    opt = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam}[optimizer](model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(3):
        for idx in torch.randperm(len(x), generator=gen).split(64):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()


def main(n_seeds: int = 4, bootstrap: int = 50) -> dict[str, object]:
    digits = load_digits()
    itr, ite = train_test_split(np.arange(len(digits.target)), test_size=0.3, random_state=0,
                                stratify=digits.target)
    arrays = {"x_train": digits.images[itr], "y_train": digits.target[itr],
              "x_test": digits.images[ite], "y_test": digits.target[ite]}
    data = assemble("digits8", arrays, n_classes=10, kind="image", value_range=(0, 16))  # dataset.nc contract
    train_split = data["split"].values == "train"
    x = torch.tensor(data["image"].values[train_split][:, None])
    y = torch.tensor(data["label"].values[train_split])
    x_test = torch.tensor(data["image"].values[~train_split][:, None])
    y_test = torch.tensor(data["label"].values[~train_split])

    # your zoo: one model per (optimizer, learning rate, seed)
    rows, states, accuracy = [], [], []
    grid = itertools.product(["sgd", "adam"], [0.003, 0.03, 0.3], range(n_seeds))
    for k, (optimizer, lr, seed) in enumerate(grid):
        torch.manual_seed(1000 + k)
        model = small_cnn()
        train(model, x, y, optimizer, lr, seed)
        with torch.no_grad():
            accuracy.append(float((model(x_test).argmax(1) == y_test).float().mean()))
        rows.append({"optimizer": optimizer, "learning_rate": lr})
        states.append(flatten_state_dict(model.state_dict()))
    print(f"{len(rows)} models, test accuracy {min(accuracy):.2f} .. {max(accuracy):.2f}")

    zoo = make_state_dict_zoo(
        np.stack(states), state_dict_layout(small_cnn().state_dict()), pd.DataFrame(rows),
        {"optimizer": {"type": "categorical"},
         "learning_rate": {"type": "numerical", "markers": [0.003, 0.03, 0.3], "log": True}},
        pd.DataFrame({"test_accuracy": accuracy}), architecture=ARCHITECTURE, kwargs={}, input_shape=(1, 8, 8),
        n_classes=10, last_conv="2", dataset="digits8", source="examples/zoo_study_on_your_models.py",
    )
    images = select_probe_images(data, 20, seed=0)                    # class-balanced probe images
    buckets = make_buckets(zoo, [0, 50, 100], seed=0)                   # accuracy buckets (paper 000 §3.2)
    settings = ExplainSettings(seed=0)
    predictions = predict_zoo(zoo, images, settings)                   # Y, the explained classes
    maps = {"gradient": explain_zoo(zoo, images, predictions, "gradient", settings)}   # E, total and direct
    effects = compute_effects(zoo, buckets, predictions, maps,
                              EffectsSettings(min_models=2, bootstrap=bootstrap, permutations=20, seed=0))
    # (``method`` is a keyword of xarray's ``sel`` itself: select it with a dict)
    where = {"effect": "total", "bucket": "0-100", "stat": "pearson"}
    corr = effects["corr_hparam"].sel(where)
    ci = effects["corr_hparam_ci"].sel({**where, "method": "gradient"})
    print("corr(ITE_Y, ITE_E) over all models, per hyperparameter (identity must give 1):")
    for h in corr["hparam"].values:
        lo, hi = ci.sel(hparam=h).values
        print(f"  {h:>13}: identity {float(corr.sel({'hparam': h, 'method': 'identity'})):.3f}, "
              f"gradient {float(corr.sel({'hparam': h, 'method': 'gradient'})):.3f} [{lo:.3f}, {hi:.3f}]")
    return {"zoo": zoo, "buckets": buckets, "predictions": predictions, "explanations": maps, "effects": effects}


if __name__ == "__main__":
    main()
