"""The explanation step (rules ``explain_shard`` and ``explain_gather``): saliency maps of a whole zoo
on its probe images (the predictions they explain come from :mod:`causalxai.study.predictions`).

Models are processed in chunks (``chunk_size`` models per pass, one activation per chunk
so every pass takes the fast path), and a zoo can be split into ``shards`` contiguous
model ranges computed by separate jobs and gathered afterwards (:func:`gather`).
SmoothGrad draws its noise from a generator re-seeded for every chunk, so every model
is explained on the same noisy inputs whatever the chunking or sharding: results do not
depend on ``chunk_size`` or ``shards``.

Each map is computed twice, along the ``effect`` dimension (paper 000 §3.2, Fig. 4):

* ``total``: the explanation of the class the model predicts (``predictions.target``),
  as every saliency method is used in practice. H reaches E both directly (through the
  weights) and through the prediction Y, which decides the class explained.
* ``direct``: the path H → Y → E severed. The explained class is ``target_direct =
  σ_{m,x}(target)``, where ``σ_{m,x}`` is a uniformly random permutation of the classes
  drawn independently for every (model, image) from the config's seed: the explained
  class is then uniform and independent of H and of Y, while the weights (and so every
  direct influence of H) are unchanged. This is the paper's "Y randomly permuted"
  estimator (its code permuted the class scores before explaining); the Identity
  explanation's direct counterpart is the permuted score vector ``prob_direct`` (the
  scores moved to the permuted classes). The mediated effect is total − direct.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import xarray as xr

from causalxai.attribution.grad_cam import GradCam
from causalxai.attribution.gradient import Gradient
from causalxai.attribution.integrated_gradients import IntegratedGradients
from causalxai.attribution.smoothgrad import SmoothGrad
from causalxai.progress import Progress
from causalxai.runtime import resolve_device
from causalxai.study.postprocess import normalize_maps
from causalxai.zoo.dataset import zoo_params
from causalxai.zoo.network import batched_forward

__all__ = [
    "METHODS",
    "EFFECTS",
    "ExplainSettings",
    "model_shard",
    "explain_zoo",
    "normalise_explanations",
    "gather",
]

log = logging.getLogger(__name__)
DTYPES = {"float32": torch.float32, "float64": torch.float64}
METHODS = ("gradient", "smoothgrad", "integrated_gradients", "grad_cam")


@dataclass(frozen=True)
class ExplainSettings:
    """Settings of the explanation step (PAIR saliency's defaults, as the paper's code)."""

    output: str = "prob"
    smoothgrad_samples: int = 25
    smoothgrad_noise: float = 0.15
    ig_steps: int = 25
    ig_rule: str = "pair"
    clip_percentile: float = 99.0
    normalisation: str = "paper"
    zero_maps: str = "drop"
    chunk_size: int | str = "auto"
    device: str = "auto"
    dtype: str = "float32"
    seed: int = 0

    @classmethod
    def from_config(cls, cfg: dict) -> "ExplainSettings":
        """From the workflow's params: the config's ``explain`` keys, flattened per method
        (``samples``/``noise`` for SmoothGrad, ``steps``/``rule`` for IG)."""
        method = cfg.get("method")
        keys = ("output", "chunk_size", "device", "dtype", "seed", "clip_percentile", "normalisation", "zero_maps")
        kw = {k: cfg[k] for k in keys if k in cfg}
        if method == "smoothgrad":
            kw.update(smoothgrad_samples=int(cfg["samples"]), smoothgrad_noise=float(cfg["noise"]))
        if method == "integrated_gradients":
            kw.update(ig_steps=int(cfg["steps"]), ig_rule=str(cfg["rule"]))
        return cls(**kw)


def model_shard(n_models: int, shards: int, shard: int) -> np.ndarray:
    """Model indices of shard ``shard`` of ``shards`` contiguous, near-equal ranges."""
    if not 1 <= shards <= n_models:
        raise ValueError(f"explain.shards must lie in [1, {n_models}] (the zoo's model count), got {shards}")
    if not 0 <= shard < shards:
        raise ValueError(f"shard {shard} does not exist: there are {shards} shards (0..{shards - 1})")
    return np.array_split(np.arange(n_models), shards)[shard]


def _chunks(activation: np.ndarray, models: np.ndarray, chunk: int) -> list[np.ndarray]:
    out = []
    for act in sorted(set(activation[models].tolist())):
        members = models[activation[models] == act]
        out.extend(np.array_split(members, int(np.ceil(members.size / chunk))))
    return out


def _setup(zoo: xr.Dataset, images: xr.Dataset, settings: ExplainSettings):
    device = resolve_device(settings.device)
    if settings.dtype not in DTYPES:
        raise ValueError(f"explain.dtype must be one of {list(DTYPES)}, got {settings.dtype!r}")
    dtype = DTYPES[settings.dtype]
    x = torch.tensor(np.asarray(images["pixels"].values)[:, None], dtype=dtype, device=device)
    chunk = settings.chunk_size
    if chunk == "auto":
        chunk = 4096 if device.type == "cuda" else 32
    return device, dtype, x, int(chunk)


EFFECTS = ("total", "direct")


def explain_zoo(
    zoo: xr.Dataset,
    images: xr.Dataset,
    predictions: xr.Dataset,
    method: str,
    settings: ExplainSettings,
    models: Sequence[int] | np.ndarray | None = None,
    normalise: bool = True,
) -> xr.Dataset:
    """Saliency maps of one method: raw ``attribution(model, effect, image, y, x)`` and,
    with ``normalise``, the post-processed ``E`` and ``degenerate`` (:func:`normalise_explanations`).

    ``effect="total"`` explains each model's predicted class, ``effect="direct"`` the
    permuted class ``target_direct`` (see the module docstring).

    Args:
        zoo, images, predictions: ``zoo.nc``, ``images.nc`` and ``predictions.nc``.
        method: one of :data:`METHODS`.
        settings: method settings, normalisation, chunk size, device, dtype, seed.
        models: the zoo's model indices to explain (a shard; sorted here); all by default.
        normalise: add ``E`` and ``degenerate`` (a shard job leaves this to the gather).
    """
    if method not in METHODS:
        raise ValueError(f"explain.methods: unknown method {method!r}; choose from {list(METHODS)}")
    device, dtype, x, chunk = _setup(zoo, images, settings)
    models = np.arange(zoo.sizes["model"]) if models is None else np.unique(np.asarray(models, dtype=np.int64))
    act = np.asarray(zoo["activation"].values).astype(str)
    for key in ("target", "target_direct"):
        if key not in predictions:
            raise ValueError(f"predictions.nc has no {key!r}: it was made by an older version; delete it and re-run")
    targets = [np.asarray(predictions["target"].values), np.asarray(predictions["target_direct"].values)]
    out = np.zeros((models.size, len(EFFECTS), x.shape[0], *x.shape[-2:]), dtype=np.float32)
    progress = Progress(models.size * len(EFFECTS), f"{method} of {models.size} models x {len(EFFECTS)} effects",
                        "model-effects", log)
    for sel in _chunks(act, models, chunk):
        params = {k: v.to(dtype) for k, v in zoo_params(zoo, sel, device).items()}
        a = str(act[sel[0]])
        for k, target_all in enumerate(targets):
            target = torch.tensor(target_all[sel], device=device)
            maps = _saliency(method, params, x, a, target, settings, device)
            out[np.searchsorted(models, sel), k] = maps[:, :, 0].float().cpu().numpy()
            progress.update(sel.size)
    ds = xr.Dataset(
        {"attribution": (("model", "effect", "image", "y", "x"), out)},
        coords={"model": zoo["model"].values[models], "effect": list(EFFECTS), "image": images["image"].values},
        attrs={"method": method},
    )
    ds["attribution"].attrs["description"] = (
        f"raw {method} attribution of each model's predicted class (effect=total) or of a randomly "
        "permuted class (effect=direct), before App. A.3's normalisation"
    )
    return normalise_explanations(ds, method, settings) if normalise else ds


def normalise_explanations(ds: xr.Dataset, method: str, settings: ExplainSettings) -> xr.Dataset:
    """Add ``E`` (the maps normalised to [0, 1], paper 000 App. A.3) and ``degenerate``.

    The rule is ``settings.normalisation`` (:mod:`causalxai.study.postprocess`); maps of
    zero scale are NaN in ``E`` with ``zero_maps: drop``. ``degenerate(model, effect,
    image)`` marks them and the attribute ``n_degenerate`` counts them per effect.
    """
    raw = np.asarray(ds["attribution"].values)
    maps = np.empty(raw.shape, dtype=np.float32)
    degenerate = np.empty(raw.shape[:3], dtype=bool)
    for start in range(0, raw.shape[0], 256):  # a block of models at a time: memory O(block)
        block = slice(start, start + 256)
        m, d = normalize_maps(
            torch.as_tensor(raw[block]), signed=method != "grad_cam", clip_percentile=settings.clip_percentile,
            rule=settings.normalisation, zero_maps=settings.zero_maps,
        )
        maps[block], degenerate[block] = m.numpy(), d.numpy()
    out = ds.copy()
    dims = ("model", "effect", "image")
    out["E"] = (dims + ("y", "x"), maps)
    out["degenerate"] = (dims, degenerate)
    counts = degenerate.sum(axis=(0, 2))
    out.attrs.update({
        "method": method,
        "normalisation": settings.normalisation,
        "zero_maps": settings.zero_maps,
        "n_degenerate": {eff: int(n) for eff, n in zip(EFFECTS, counts)},
    })
    rule = {"paper": "clipped to the 99th percentile of |x| in both tails, scaled to [-1, 1], negatives set to 0",
            "public_code": "the public code's PAIR visualisation (signed maps diverging around 0.5; Grad-CAM "
                           "(|x| - min) / (p99 - min))"}[settings.normalisation]
    out["E"].attrs["description"] = (
        f"{method} saliency normalised to [0, 1] (paper 000 App. A.3, rule {settings.normalisation}: {rule}); "
        + ("NaN: a map of zero scale, dropped" if settings.zero_maps == "drop" else "zero-scale maps kept")
    )
    out["degenerate"].attrs["description"] = "the map has zero scale (all zero, or p99 of |x| is 0): no normalised form"
    return out


def _saliency(method: str, params, x: torch.Tensor, act: str, target: torch.Tensor,
              settings: ExplainSettings, device: torch.device) -> torch.Tensor:
    """One method's maps ``(M, N, C, H, W)`` of a chunk's ``M`` models, all at once."""
    m = params["conv1.weight"].shape[0]
    if method == "grad_cam":
        return GradCam(batched_forward(params, act, settings.output, last_conv=True)).attribute(x, target)
    forward = batched_forward(params, act, settings.output)
    if method == "gradient":
        return Gradient(forward, models=m).attribute(x, target)
    if method == "smoothgrad":
        g = torch.Generator(device=device).manual_seed(int(settings.seed))
        return SmoothGrad(forward, models=m).attribute(
            x, target, samples=settings.smoothgrad_samples, noise=settings.smoothgrad_noise, generator=g
        )
    return IntegratedGradients(forward, models=m).attribute(x, target, steps=settings.ig_steps, rule=settings.ig_rule)


def gather(shards: Sequence[xr.Dataset]) -> xr.Dataset:
    """Concatenate shard results along ``model`` (sorted by model)."""
    if not shards:
        raise ValueError("gather needs at least one shard")
    ds = xr.concat(list(shards), dim="model").sortby("model")
    if ds.indexes["model"].has_duplicates:
        raise ValueError("shards overlap: a model appears in more than one shard")
    ds.attrs = dict(shards[0].attrs)
    return ds
