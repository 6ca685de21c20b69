"""The predictions step (rule ``predictions``): the zoo's outputs Y on the probe images and the
classes the explanations target, with the direct effect's class permutation (paper 000 §3.2,
Fig. 4; see :mod:`causalxai.study.explain` for the ``total``/``direct`` contract)."""

from __future__ import annotations

import numpy as np
import torch
import xarray as xr

from causalxai.study.explain import ExplainSettings, _chunks, _setup
from causalxai.zoo.dataset import zoo_params
from causalxai.zoo.network import batched_forward

__all__ = ["class_permutations", "predict_zoo"]


def class_permutations(n_models: int, n_images: int, n_classes: int, seed: int) -> np.ndarray:
    """``σ (model, image, class)``: one uniformly random class permutation per (model, image).

    Drawn for the whole zoo at once from ``seed`` (never per shard), so a model's
    permutations do not depend on how the zoo is sharded.
    """
    rng = np.random.default_rng([int(seed), 0x5E7E2])
    base = np.broadcast_to(np.arange(n_classes), (n_models, n_images, n_classes))
    return rng.permuted(base, axis=-1)


def predict_zoo(zoo: xr.Dataset, images: xr.Dataset, settings: ExplainSettings) -> xr.Dataset:
    """``predictions.nc``: the models' outputs and the classes the explanations target.

    * ``prob(model, image, class)``: softmax output Y; ``target(model, image)``: its argmax,
      the class the total-effect explanations explain;
    * ``permutation(model, image, class)``: σ, a seeded random class permutation per
      (model, image); ``prob_direct`` with ``prob_direct[σ(c)] = prob[c]`` and
      ``target_direct = σ(target)``: Y severed from H (see the module docstring).
    """
    device, dtype, x, chunk = _setup(zoo, images, settings)
    n = zoo.sizes["model"]
    act = np.asarray(zoo["activation"].values).astype(str)
    prob = np.zeros((n, x.shape[0], 10), dtype=np.float32)
    for sel in _chunks(act, np.arange(n), chunk):
        params = {k: v.to(dtype) for k, v in zoo_params(zoo, sel, device).items()}
        with torch.no_grad():
            prob[sel] = batched_forward(params, str(act[sel[0]]))(x).float().cpu().numpy()
    target = prob.argmax(-1).astype(np.int64)
    perm = class_permutations(n, x.shape[0], prob.shape[-1], settings.seed)
    prob_direct = np.empty_like(prob)
    np.put_along_axis(prob_direct, perm, prob, axis=-1)
    target_direct = np.take_along_axis(perm, target[..., None], axis=-1)[..., 0]
    dims = ("model", "image", "class")
    ds = xr.Dataset(
        {
            "prob": (dims, prob),
            "target": (dims[:2], target),
            "permutation": (dims, perm.astype(np.int64)),
            "prob_direct": (dims, prob_direct),
            "target_direct": (dims[:2], target_direct.astype(np.int64)),
        },
        coords={"model": zoo["model"].values, "image": images["image"].values, "class": np.arange(prob.shape[-1])},
    )
    ds["prob"].attrs["description"] = "softmax output Y of each model on each probe image"
    ds["target"].attrs["description"] = "the class each model predicts (the class the total-effect maps explain)"
    ds["permutation"].attrs["description"] = "σ: seeded uniformly random class permutation per (model, image)"
    ds["prob_direct"].attrs["description"] = ("Y with its scores moved to the permuted classes: "
                                              "prob_direct[σ(c)] = prob[c]")
    ds["target_direct"].attrs["description"] = ("σ(target): the class the direct-effect maps explain, "
                                                "independent of H and Y")
    return ds
