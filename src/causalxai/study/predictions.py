"""The predictions step (rule ``predictions``): the zoo's outputs Y on the probe images and the
classes the explanations target, with the direct effect's class permutation (paper 000 §3.2,
Fig. 4; see :mod:`causalxai.study.explain` for the ``total``/``direct`` contract)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
import xarray as xr

from causalxai.checks import RTOL, refuse
from causalxai.io import describe, set_attr, write_streamed
from causalxai.study.explain import ExplainSettings, _chunks, _setup
from causalxai.zoo.dataset import zoo_rows
from causalxai.zoo.forward import chunk_groups, zoo_forward, zoo_n_classes

__all__ = ["ZOO_BLOCK", "PredictionSummary", "class_permutations", "predict_zoo", "predict_zoo_to_file"]

log = logging.getLogger(__name__)


#: models whose weights are read from ``zoo.nc`` at once (20 MB of Small CNN Zoo weights):
#: the predictions step's memory is this block and its outputs, whatever the zoo's size
ZOO_BLOCK = 1024


def class_permutations(n_models: int, n_images: int, n_classes: int, seed: int) -> np.ndarray:
    """``σ (model, image, class)``: one uniformly random class permutation per (model, image).

    Drawn for the whole zoo at once from ``seed`` (never per shard), so a model's
    permutations do not depend on how the zoo is sharded.
    """
    rng = _permutation_rng(seed)
    return _permute(rng, n_models, n_images, n_classes)


def _permutation_rng(seed: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), 0x5E7E2])


def _permute(rng: np.random.Generator, n_models: int, n_images: int, n_classes: int) -> np.ndarray:
    # rows are shuffled one after another from the same stream: consecutive blocks drawn from
    # one generator equal the whole zoo drawn at once (tests/study/test_predictions.py)
    base = np.broadcast_to(np.arange(n_classes), (n_models, n_images, n_classes))
    return rng.permuted(base, axis=-1)


VARIABLES = ("prob", "target", "permutation", "prob_direct", "target_direct")
DESCRIPTIONS = {
    "prob": "softmax output Y of each model on each probe image",
    "target": "the class each model predicts (the class the total-effect maps explain)",
    "permutation": "σ: seeded uniformly random class permutation per (model, image)",
    "prob_direct": "Y with its scores moved to the permuted classes: prob_direct[σ(c)] = prob[c]",
    "target_direct": "σ(target): the class the direct-effect maps explain, independent of H and Y",
}


def _blocks(zoo: xr.Dataset, images: xr.Dataset, settings: ExplainSettings, block: int = ZOO_BLOCK):
    """``(start, stop, {variable: values})`` for consecutive blocks of ≤ ``block`` models."""
    device, dtype, x, chunk = _setup(zoo, images, settings)
    n = zoo.sizes["model"]
    groups = chunk_groups(zoo)
    rng = _permutation_rng(settings.seed)
    for lo in range(0, n, block):
        hi = min(n, lo + block)
        prob = np.zeros((hi - lo, x.shape[0], zoo_n_classes(zoo)), dtype=np.float32)
        rows = zoo_rows(zoo, lo, hi)  # the block's weights read once, its chunks taken from memory
        for sel in _chunks(groups, np.arange(lo, hi), chunk):
            with torch.no_grad():
                forward = zoo_forward(rows, sel - lo, "prob", device=device, dtype=dtype)
                prob[sel - lo] = forward(x).float().cpu().numpy()
        target = prob.argmax(-1).astype(np.int64)
        perm = _permute(rng, hi - lo, x.shape[0], prob.shape[-1]).astype(np.int64)
        prob_direct = np.empty_like(prob)
        np.put_along_axis(prob_direct, perm, prob, axis=-1)
        target_direct = np.take_along_axis(perm, target[..., None], axis=-1)[..., 0].astype(np.int64)
        yield lo, hi, {"prob": prob, "target": target, "permutation": perm, "prob_direct": prob_direct,
                       "target_direct": target_direct}


class PredictionSummary:
    """What the predictions step checks before it writes, gathered block by block (memory:
    one ``(image, class)`` pair of arrays, whatever the zoo's size).

    * **refused** (:func:`causalxai.checks.refuse`): ``prob`` all NaN (every model's
      weights non-finite), or the same for every model on every probe image (within
      :data:`causalxai.checks.RTOL`): then no hyperparameter can have an effect on Y and
      every ITE_Y is 0 (paper 000 eq. 4 of equal outputs), e.g. a zoo that did not train;
    * **flagged** (a warning and the attribute ``degenerate``): every model predicts one
      and the same class on every probe image. Y (the softmax) still varies between models,
      so the effects on Y remain defined; but every total-effect map explains that class
      and the explanations' effects are those of an untrained zoo.
    """

    def __init__(self) -> None:
        self.lo: np.ndarray | None = None
        self.hi: np.ndarray | None = None
        self.n_models = 0
        self.n_finite = 0
        self.classes: set[int] = set()

    def update(self, prob: np.ndarray, target: np.ndarray) -> None:
        """Add a block: ``prob (models, image, class)`` and ``target (models, image)``."""
        p = np.asarray(prob, dtype=np.float64)
        p = np.where(np.isfinite(p), p, np.nan)
        lo, hi = np.fmin.reduce(p, axis=0), np.fmax.reduce(p, axis=0)  # NaN only where every model's is
        self.lo = lo if self.lo is None else np.fmin(self.lo, lo)
        self.hi = hi if self.hi is None else np.fmax(self.hi, hi)
        finite = np.isfinite(p).all(axis=(1, 2))
        self.n_models += p.shape[0]
        self.n_finite += int(finite.sum())
        self.classes.update(np.unique(np.asarray(target)[finite]).tolist())

    def check(self) -> str | None:
        """Refuse (raise) or flag (return the warning's text, else None); see the class docstring."""
        causes = ("a zoo that did not train (zoo.train.epochs, zoo.train.hparams.learning_rate and init_std), "
                  "or a zoo.nc whose weights are broken")
        fix = "re-train the zoo (snakemake --forcerun zoo) with more epochs or other learning rates, and check zoo.nc"
        if self.n_finite == 0:
            refuse("predictions", "prob (the softmax Y of every model on every probe image)",
                   f"all NaN (no model of {self.n_models} gives a finite output)", causes=causes, fix=fix)
        scale = np.fmax(np.abs(self.lo), np.abs(self.hi))
        if self.n_finite >= 2 and bool(np.all(np.nan_to_num(self.hi - self.lo) <= RTOL * np.nan_to_num(scale))):
            refuse("predictions", "prob (the softmax Y of every model on every probe image)",
                   f"the same for all {self.n_finite} models with a finite output (no hyperparameter can change Y: "
                   "every ITE_Y would be 0)", causes=causes, fix=fix)
        if len(self.classes) == 1:
            text = (f"predictions: every model predicts class {next(iter(self.classes))} on every probe image: the "
                    "total-effect maps all explain that class. Likely causes: " + causes + ". To fix: " + fix + ".")
            log.warning("%s", text)
            return text
        return None


def _coords(zoo: xr.Dataset, images: xr.Dataset) -> dict[str, np.ndarray]:
    return {"model": zoo["model"].values, "image": images["image"].values, "class": np.arange(zoo_n_classes(zoo))}


def _dims(name: str) -> tuple[str, ...]:
    return ("model", "image", "class") if name in ("prob", "permutation", "prob_direct") else ("model", "image")


def predict_zoo(zoo: xr.Dataset, images: xr.Dataset, settings: ExplainSettings) -> xr.Dataset:
    """``predictions.nc``: the models' outputs and the classes the explanations target.

    * ``prob(model, image, class)``: softmax output Y; ``target(model, image)``: its argmax,
      the class the total-effect explanations explain;
    * ``permutation(model, image, class)``: σ, a seeded random class permutation per
      (model, image); ``prob_direct`` with ``prob_direct[σ(c)] = prob[c]`` and
      ``target_direct = σ(target)``: Y severed from H (see the module docstring).

    The zoo is read :data:`ZOO_BLOCK` models at a time (``zoo`` may be lazy); the result is
    in memory. :func:`predict_zoo_to_file` writes the same values block by block.

    Raises:
        causalxai.checks.DegenerateResultError: ``prob`` all NaN or the same for every
            model (:class:`PredictionSummary`); one class everywhere is flagged in the
            attribute ``degenerate``.
    """
    parts = [values for _, _, values in _blocks(zoo, images, settings)]
    summary = PredictionSummary()
    for p in parts:
        summary.update(p["prob"], p["target"])
    flag = summary.check()
    ds = xr.Dataset({name: (_dims(name), np.concatenate([p[name] for p in parts])) for name in VARIABLES},
                    coords=_coords(zoo, images))
    describe(ds, DESCRIPTIONS)
    if flag:
        ds.attrs["degenerate"] = flag
    return ds


def predict_zoo_to_file(
    zoo: xr.Dataset,
    images: xr.Dataset,
    settings: ExplainSettings,
    path: str | os.PathLike[str],
    *,
    config: Mapping[str, Any] | None = None,
) -> Path:
    """:func:`predict_zoo` written to ``path`` block by block (rule ``predictions``): memory is
    one block of :data:`ZOO_BLOCK` models, whatever the zoo's size; the file is atomic.

    Args:
        zoo: ``zoo.nc``, best opened lazily (:func:`causalxai.io.open_lazy`).
        images, settings: as :func:`predict_zoo`.
        path: the output file.
        config: the config values recorded in its provenance.

    Returns:
        ``path``.

    Raises:
        causalxai.checks.DegenerateResultError: as :func:`predict_zoo`; nothing is written.
    """
    coords = _coords(zoo, images)
    n, n_img = coords["model"].size, coords["image"].size
    skeleton = xr.Dataset(coords=coords)
    with write_streamed(skeleton, path, step="predictions", config=config, seed=settings.seed) as nc:
        for name in VARIABLES:
            dims = _dims(name)
            kind = "f4" if name.startswith("prob") else "i8"
            chunks = (max(1, min(n, ZOO_BLOCK // 4)), n_img, *([coords["class"].size] if len(dims) == 3 else []))
            var = nc.createVariable(name, kind, dims, zlib=True, complevel=4, chunksizes=chunks)
            set_attr(var, "description", DESCRIPTIONS[name])
        summary = PredictionSummary()
        for lo, hi, values in _blocks(zoo, images, settings):
            for name, v in values.items():
                nc[name][lo:hi] = v
            summary.update(values["prob"], values["target"])
        flag = summary.check()  # raises inside the block: the file is not written
        if flag:
            set_attr(nc, "degenerate", flag)
    return Path(path)
