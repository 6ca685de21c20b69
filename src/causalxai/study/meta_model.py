"""Meta-model: predict a base model's prediction from its hyperparameters (paper 000 App. A.2).

Paper 000 (App. A.2, "meta-models") trains "a simple 3-layer MLP ... using X and H from a
10 % sample of models in the repository" to estimate the predictions Y of the remaining
base models without their trained weights, and reports an accuracy of about 45 % (all
models) and about 80 % when training on 10 % of the top-15 % models by test accuracy and
evaluating on the remaining top-15 % models (CIFAR10).

Here the MLP's input for a pair (model m, probe image x) is the flattened image followed
by the hyperparameter features of m (:func:`hparam_features`); its target is the base
model's predicted class ``target(m, x)`` (the argmax of its softmax, ``predictions.nc``),
trained with cross-entropy. The paper speaks of predicting "the predictions Y ... with an
accuracy", so the argmax is the target; the soft targets ``prob`` would be a possible
alternative (not implemented). Accuracy is the agreement between the meta-model's argmax
and the base model's argmax, over all held-out (model, image) pairs.

Models, never pairs, are split: a base model is either a training model (all its probe
images are used for training) or an evaluation model. Two settings (``subset``):

* ``all``: ``round(train_fraction * n)`` (at least 1) models, drawn at random, train; the
  rest are evaluated;
* ``top``: the ``ceil(top_fraction * n)`` models with the highest ``test_accuracy`` (ties
  broken by model order); ``round(train_fraction * n_top)`` (at least 1) of them train,
  the remaining top models are evaluated.

Baselines stored alongside: ``chance_accuracy``, predicting for every image the class
most of the training models predict on it (ties to the lowest class), and
``label_accuracy``, predicting the image's true label (when ``images.nc`` has ``label``).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import torch
import xarray as xr
from torch import nn

from causalxai.checks import refuse
from causalxai.io import describe
from causalxai.progress import Progress
from causalxai.runtime import adam, predict, resolve_device
from causalxai.zoo.hparams import CATEGORICAL, CONTINUOUS, ZOO_RANGES, hparam_specs

__all__ = [
    "SUBSETS",
    "LOG_SCALE",
    "hparam_features",
    "hparam_feature_names",
    "split_models",
    "build_mlp",
    "MetaModelSettings",
    "fit_meta_model",
]

log = logging.getLogger(__name__)

SUBSETS = ("all", "top")

#: continuous hyperparameters whose features are log10 values (the zoo draws them log-uniformly)
LOG_SCALE = tuple(n for n in CONTINUOUS if ZOO_RANGES[n]["scale"] == "log")

_EVAL_BATCH = 8192


@dataclass(frozen=True)
class MetaModelSettings:
    """How the meta-model is trained (the config's ``meta_model`` keys, the run's seed and device).

    Attributes:
        train_fraction: share of each subset's models the meta-model trains on.
        top_fraction: share of the zoo, by test accuracy, forming the ``top`` subset.
        hidden: width of the two hidden layers.
        epochs: passes over the training pairs (Adam, cross-entropy, shuffled minibatches).
        lr: Adam learning rate.
        batch_size: (model, image) pairs per step.
        seed: seeds the model split, the MLP's initialisation and the shuffling; the same
            inputs and seed give identical outputs (on one device).
        device: ``auto``, ``cpu`` or ``cuda[:N]``.
    """

    train_fraction: float = 0.1
    top_fraction: float = 0.15
    hidden: int = 256
    epochs: int = 40
    lr: float = 1e-3
    batch_size: int = 256
    seed: int = 0
    device: str = "cpu"

    @classmethod
    def from_params(cls, meta_model: Mapping[str, Any], seed: int, device: str) -> MetaModelSettings:
        """From the rule's params: the config's ``meta_model`` section, ``seed`` and ``device``."""
        keys = ("train_fraction", "top_fraction", "hidden", "epochs", "lr", "batch_size")
        return cls(**{k: meta_model[k] for k in keys if k in meta_model}, seed=int(seed), device=str(device))


def _check_hparams(zoo: xr.Dataset) -> tuple[list[str], list[str], set[str]]:
    """The zoo's categorical and continuous hyperparameters and those on a log scale: the Small
    CNN Zoo's (:data:`LOG_SCALE`), or those a zoo of any architecture declares (attribute ``hparams``)."""
    if "hparams" in zoo.attrs:
        specs = hparam_specs(zoo.attrs)
        cat = [n for n, s in specs.items() if s["type"] == "categorical"]
        num = [n for n, s in specs.items() if s["type"] == "numerical"]
        logs = {n for n in num if specs[n]["log"]}
    else:
        cat, num, logs = list(CATEGORICAL), list(CONTINUOUS), set(LOG_SCALE)
    missing = [n for n in (*cat, *num) if n not in zoo.variables]
    if missing:
        raise ValueError(f"zoo dataset lacks the hyperparameter coordinate(s) {missing} the meta-model needs")
    return cat, num, logs


def hparam_feature_names(zoo: xr.Dataset) -> list[str]:
    """Names of the columns of :func:`hparam_features`, e.g. ``optimizer=adam``, ``log10_l2reg``."""
    cat, num, logs = _check_hparams(zoo)
    names = []
    for name in cat:
        names += [f"{name}={v}" for v in np.unique(np.asarray(zoo[name].values).astype(str))]
    names += [f"log10_{n}" if n in logs else n for n in num]
    return names


def _continuous_column(values: np.ndarray, name: str,
                       logs: frozenset[str] | set[str] = frozenset(LOG_SCALE)) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    if name not in logs:
        return v
    positive = v[v > 0]
    # a log-scale hyperparameter set to 0 (e.g. l2reg: [0, ...]) sits one decade below the
    # smallest positive value in the zoo
    floor = positive.min() / 10 if positive.size else 1.0
    return np.log10(np.where(v > 0, v, floor))


def hparam_features(zoo: xr.Dataset, fit_models: np.ndarray | None = None) -> np.ndarray:
    """Hyperparameter features of every model, ``(model, feature)`` float32.

    One-hot columns (0/1) for each categorical hyperparameter of
    :data:`~causalxai.zoo.hparams.CATEGORICAL`, one per value present in the zoo, values
    sorted (a zoo of any architecture: its declared categorical and numerical ones, log10 where
    declared ``log``); then one column per continuous hyperparameter of
    :data:`~causalxai.zoo.hparams.CONTINUOUS`: log10 of the value for the log-uniformly
    drawn ones (:data:`LOG_SCALE`), the value itself for ``dropout``. The continuous
    columns are standardised with the mean and standard deviation over the models
    ``fit_models`` (indices; default all models), which the meta-model sets to its
    training models so no statistic of the held-out models leaks in. A column constant
    over ``fit_models`` is centred only. One-hot columns are left as 0/1. Column names:
    :func:`hparam_feature_names`.
    """
    cat, num, logs = _check_hparams(zoo)
    n = zoo.sizes["model"]
    rows = np.arange(n) if fit_models is None else np.asarray(fit_models, dtype=np.int64)
    if rows.size == 0:
        raise ValueError("hparam_features: fit_models is empty")
    cols = []
    for name in cat:
        v = np.asarray(zoo[name].values).astype(str)
        cols.append((v[:, None] == np.unique(v)[None, :]).astype(np.float64))
    for name in num:
        c = _continuous_column(zoo[name].values, name, logs)
        mu, sd = c[rows].mean(), c[rows].std()
        cols.append(((c - mu) / (sd if sd > 0 else 1.0))[:, None])
    return np.concatenate(cols, axis=1).astype(np.float32)


def _n_train(train_fraction: float, n: int) -> int:
    return max(1, int(math.floor(train_fraction * n + 0.5 + 1e-9)))


def split_models(
    test_accuracy: np.ndarray, *, train_fraction: float = 0.1, top_fraction: float = 0.15, seed: int = 0
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Model indices ``(train, eval)`` (each sorted) for each subset of :data:`SUBSETS`.

    See the module docstring for the sizes. The split is drawn with
    ``numpy.random.default_rng(seed)``; train and eval never share a model.
    """
    if not 0 < train_fraction < 1:
        raise ValueError(f"meta_model.train_fraction must lie in (0, 1), got {train_fraction}")
    if not 0 < top_fraction <= 1:
        raise ValueError(f"meta_model.top_fraction must lie in (0, 1], got {top_fraction}")
    acc = np.asarray(test_accuracy, dtype=np.float64)
    n = acc.size
    n_top = int(math.ceil(round(top_fraction * n, 9)))
    members = {"all": np.arange(n), "top": np.sort(np.argsort(-acc, kind="stable")[:n_top])}
    rng = np.random.default_rng(seed)
    out = {}
    for subset in SUBSETS:
        m = members[subset]
        k = _n_train(train_fraction, m.size)
        if m.size - k < 1:
            fix = (
                "lower meta_model.train_fraction or use a larger zoo (zoo.n_models)"
                if subset == "all"
                else "raise meta_model.top_fraction, lower meta_model.train_fraction or use a larger zoo (zoo.n_models)"
            )
            raise ValueError(
                f"meta_model: subset {subset!r} has {m.size} model(s) (meta_model.top_fraction={top_fraction}, "
                f"{n} in the zoo); with meta_model.train_fraction={train_fraction} {k} train and none is left "
                f"to evaluate: {fix}"
            )
        perm = rng.permutation(m)
        out[subset] = (np.sort(perm[:k]), np.sort(perm[k:]))
    return out


def build_mlp(n_in: int, hidden: int, n_classes: int) -> nn.Sequential:
    """The paper's "simple 3-layer MLP": Linear-ReLU-Linear-ReLU-Linear."""
    return nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                         nn.Linear(hidden, n_classes))


def _pairs(models: np.ndarray, n_images: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """All (model, image) pairs of ``models``, model-major."""
    mi = torch.as_tensor(np.repeat(models, n_images), dtype=torch.long, device=device)
    ii = torch.as_tensor(np.tile(np.arange(n_images), models.size), dtype=torch.long, device=device)
    return mi, ii


def _inputs(pix: torch.Tensor, feat: torch.Tensor, mi: torch.Tensor, ii: torch.Tensor) -> torch.Tensor:
    return torch.cat([pix[ii], feat[mi]], dim=1)


def _predict(net: nn.Module, pix: torch.Tensor, feat: torch.Tensor, models: np.ndarray, n_images: int) -> np.ndarray:
    """The meta-model's class for every (model, image) pair of ``models``: ``(len(models), n_images)``
    int8. Pairs and inputs are built a block of models at a time (memory O(block), not O(zoo))."""
    out = np.empty((models.size, n_images), dtype=np.int8)
    # a block's pairs are a whole number of batches: the batches are those of all pairs at once
    base = math.lcm(max(n_images, 1), _EVAL_BATCH) // max(n_images, 1)
    step = base * max(1, 8 * _EVAL_BATCH // (base * max(n_images, 1)))
    for lo in range(0, models.size, step):
        block = models[lo : lo + step]
        pairs = torch.stack(_pairs(block, n_images, pix.device), dim=1)  # inputs built batch by batch
        labels = predict(net, pairs, batch_size=_EVAL_BATCH,
                         transform=lambda b: _inputs(pix, feat, b[:, 0], b[:, 1]), device=pix.device, output="label")
        out[lo : lo + step] = labels.numpy().reshape(block.size, n_images)
    return out


def _majority(targets: np.ndarray, n_classes: int) -> np.ndarray:
    """Per image (column), the most frequent class over the rows; ties to the lowest class."""
    counts = np.zeros((n_classes, targets.shape[1]), dtype=np.int64)
    np.add.at(counts, (targets, np.broadcast_to(np.arange(targets.shape[1]), targets.shape)), 1)
    return counts.argmax(0)


def _fit_one(
    pix: torch.Tensor,
    feat: torch.Tensor,
    target: np.ndarray,
    train: np.ndarray,
    *,
    n_classes: int,
    hidden: int,
    epochs: int,
    lr: float,
    batch_size: int,
    seed: int,
    progress: Progress | None = None,
) -> tuple[nn.Module, np.ndarray]:
    """Train one MLP on all pairs of the ``train`` models; returns it and its mean loss per epoch."""
    device = pix.device
    n_images = pix.shape[0]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = build_mlp(pix.shape[1] + feat.shape[1], hidden, n_classes).to(device)
    g = torch.Generator().manual_seed(seed)
    opt = adam(net.parameters(), lr=lr)
    mi, ii = _pairs(train, n_images, device)
    y_all = torch.as_tensor(target[train].reshape(-1), dtype=torch.long, device=device)  # model-major, as the pairs
    n_pairs = mi.numel()
    losses = np.zeros(epochs)
    for epoch in range(epochs):
        net.train()
        order = torch.randperm(n_pairs, generator=g).to(device)
        total = torch.zeros((), dtype=torch.float64, device=device)
        for s in range(0, n_pairs, batch_size):
            b = order[s : s + batch_size]
            loss = nn.functional.cross_entropy(net(_inputs(pix, feat, mi[b], ii[b])), y_all[b])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.detach().double() * b.numel()
        losses[epoch] = float(total) / n_pairs
        if progress is not None:
            progress.update()
    return net, losses


def _targets(predictions: xr.Dataset, block: int = 4096) -> np.ndarray:
    """The base models' classes ``(model, image)`` as int16, read a block of models at a time
    (``predictions`` may be lazy; a quarter of the int64 the file holds)."""
    if "target" in predictions:
        da = predictions["target"].transpose("model", "image")
    elif "prob" in predictions:
        da = predictions["prob"].transpose("model", "image", "class")
    else:
        raise ValueError("predictions dataset lacks target and prob")
    out = np.empty((da.sizes["model"], da.sizes["image"]), dtype=np.int16)
    for lo in range(0, out.shape[0], block):
        values = np.asarray(da.isel({"model": slice(lo, lo + block)}).values)
        out[lo : lo + block] = values if values.ndim == 2 else values.argmax(-1)
    return out


def fit_meta_model(
    zoo: xr.Dataset,
    images: xr.Dataset,
    predictions: xr.Dataset,
    settings: MetaModelSettings = MetaModelSettings(),
) -> xr.Dataset:
    """Train and evaluate the meta-model of paper 000 App. A.2 in both settings.

    Args:
        zoo: ``zoo.nc`` (``test_accuracy(model)`` and the hyperparameter coordinates).
        images: ``images.nc`` (``pixels(image, ...)``; ``label(image)`` if present).
        predictions: ``predictions.nc`` (``target(model, image)``, the base models'
            argmax; else derived from ``prob(model, image, class)``); its ``model`` and
            ``image`` coordinates must equal those of ``zoo`` and ``images``.
        settings: :class:`MetaModelSettings` (fractions, MLP width, training, seed, device).

    Returns:
        ``meta_model.nc`` with, per ``subset`` (``all``, ``top``): ``accuracy`` (held-out
        models), ``train_accuracy``, ``chance_accuracy`` and ``label_accuracy``
        (baselines, on the held-out models), ``n_train_models``, ``n_eval_models``,
        ``loss(subset, epoch)`` (mean training cross-entropy per epoch),
        ``agreement(subset, model)`` (per held-out model, NaN elsewhere) and
        ``split(subset, model)`` (``train``, ``eval`` or ``none``).

    Raises:
        causalxai.checks.DegenerateResultError: a subset's training loss is not finite at
            the last epoch (the MLP diverged: its accuracy would be that of argmax(NaN)).
    """
    st = settings
    train_fraction, top_fraction, seed = st.train_fraction, st.top_fraction, st.seed
    hidden, epochs, lr, batch_size = st.hidden, st.epochs, st.lr, st.batch_size
    for key, value, ok in (
        ("hidden", hidden, hidden >= 1),
        ("epochs", epochs, epochs >= 1),
        ("batch_size", batch_size, batch_size >= 1),
        ("lr", lr, lr > 0),
    ):
        if not ok:
            raise ValueError(f"meta_model.{key} must be positive, got {value}")
    _check_hparams(zoo)
    if "test_accuracy" not in zoo:
        raise ValueError("zoo dataset lacks test_accuracy, which selects the meta-model's top models")
    if "pixels" not in images:
        raise ValueError("images dataset lacks pixels")
    for dim, a, b, an, bn in (
        ("model", predictions, zoo, "predictions.nc", "zoo.nc"),
        ("image", predictions, images, "predictions.nc", "images.nc"),
    ):
        if dim not in a.coords or dim not in b.coords or not np.array_equal(a[dim].values, b[dim].values):
            raise ValueError(
                f"the {dim} coordinates of {an} ({a.sizes.get(dim, 0)}) do not match those of {bn} "
                f"({b.sizes.get(dim, 0)}): rebuild {an} from this {bn}"
            )
    target_np = _targets(predictions)
    n_classes = int(predictions.sizes["class"]) if "class" in predictions.sizes else int(target_np.max()) + 1
    n_models, n_images = target_np.shape

    splits = split_models(zoo["test_accuracy"].values, train_fraction=train_fraction, top_fraction=top_fraction,
                          seed=seed)
    dev = resolve_device(st.device)
    pix_np = np.asarray(images["pixels"].values, dtype=np.float32).reshape(n_images, -1)
    pix = torch.as_tensor(pix_np, device=dev)
    label = np.asarray(images["label"].values, dtype=np.int64) if "label" in images else None

    S = len(SUBSETS)
    res = {k: np.full(S, np.nan) for k in ("accuracy", "train_accuracy", "chance_accuracy", "label_accuracy")}
    n_tr, n_ev = np.zeros(S, np.int64), np.zeros(S, np.int64)
    loss = np.zeros((S, epochs))
    agreement = np.full((S, n_models), np.nan)
    split = np.full((S, n_models), "none", dtype=object)
    progress = Progress(S * epochs, f"meta-model ({', '.join(SUBSETS)} subsets)", "epochs", log)
    for k, subset in enumerate(SUBSETS):
        train, ev = splits[subset]
        feat = torch.as_tensor(hparam_features(zoo, train), device=dev)
        sub_seed = int(np.random.default_rng([seed, k]).integers(2**62))
        net, loss[k] = _fit_one(
            pix, feat, target_np, train, n_classes=n_classes, hidden=hidden, epochs=epochs, lr=lr,
            batch_size=batch_size, seed=sub_seed, progress=progress,
        )
        agree_ev = _predict(net, pix, feat, ev, n_images) == target_np[ev]
        agree_tr = _predict(net, pix, feat, train, n_images) == target_np[train]
        res["accuracy"][k] = agree_ev.mean()
        res["train_accuracy"][k] = agree_tr.mean()
        res["chance_accuracy"][k] = (target_np[ev] == _majority(target_np[train], n_classes)[None, :]).mean()
        if label is not None:
            res["label_accuracy"][k] = (target_np[ev] == label[None, :]).mean()
        agreement[k, ev] = agree_ev.mean(1)
        split[k, train], split[k, ev] = "train", "eval"
        n_tr[k], n_ev[k] = train.size, ev.size
        if not np.isfinite(loss[k, -1]):
            refuse("meta_model", f"the training loss of subset {subset!r}",
                   f"not finite at the last epoch ({loss[k, -1]}; the MLP diverged, its weights are NaN and its "
                   f"'predictions' (argmax of NaN) give an accuracy of {res['accuracy'][k]:.3f} that means nothing)",
                   causes=f"a learning rate too high for these features (meta_model.lr: {lr}, "
                          f"meta_model.batch_size: {batch_size})",
                   fix="lower meta_model.lr (e.g. by 10x)")

    ds = xr.Dataset(
        {
            **{name: ("subset", v) for name, v in res.items()},
            "n_train_models": ("subset", n_tr),
            "n_eval_models": ("subset", n_ev),
            "loss": (("subset", "epoch"), loss),
            "agreement": (("subset", "model"), agreement),
            "split": (("subset", "model"), split.astype(str)),
        },
        coords={"subset": list(SUBSETS), "epoch": np.arange(1, epochs + 1), "model": zoo["model"].values},
    )
    desc = {
        "accuracy": "agreement of the meta-model's class with the base model's predicted class, held-out models",
        "train_accuracy": "the same agreement on the training models",
        "chance_accuracy": "baseline: per image the class most training models predict, on the held-out models",
        "label_accuracy": "baseline: the image's true label, on the held-out models",
        "loss": "mean training cross-entropy per epoch",
        "agreement": "per held-out model, fraction of its probe images where the meta-model agrees; "
                     "NaN if not evaluated",
        "split": "the model's role in the subset: train, eval or none",
    }
    describe(ds, desc)
    ds.attrs.update(
        {
            "paper": "000 App. A.2 (meta-model)",
            "hparam_features": ",".join(hparam_feature_names(zoo)),
            "n_pixel_features": int(pix_np.shape[1]),
            "target": "argmax of the base model's softmax (predictions.nc target)",
        }
    )
    return ds
