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

**Custom methods** (a Captum class by name or a user function, :mod:`causalxai.attribution.custom`)
take the same chunks: batched through the chunk's forward when their maps equal the models' own
(checked on every chunk), else model by model; their maps are normalised and gathered as the
built-ins' (signed).

**On disk, in bounded memory.** A shard job writes the raw ``attribution``; the gather
(:func:`gather_to_file`) streams the shards block by block (:data:`GATHER_BLOCK_BYTES` of
raw maps at a time) into ``explanations/<method>.nc``, normalising each block (the
normalisation is per map, so blocks give exactly the numbers of the whole), and never holds
a method's maps in memory. That file holds ``E`` and ``degenerate``; the raw attributions
stay in the shards (read by the sensitivity report through :class:`RawMaps`).

``E`` lies in [0, 1] and is stored as 16-bit packed integers, netCDF's (CF's) way to hold
16-bit values (netCDF has no float16 type): ``round(E · 65534)`` as ``uint16`` with
``scale_factor = 1/65534`` and ``_FillValue = 65535`` for a dropped (NaN) map; xarray
decodes it to float32 on reading. The worst-case error is half a step, 1/131068 ≈ 7.6e-6
(float16 would give 2.4e-4 near 1), and the file is half the size of float32. Chunks are
one (model, effect) each, all images: the effects step reads a cell's models for all images
(:func:`causalxai.study.effects.compute_effects`), so every read is of whole chunks.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
import xarray as xr

from causalxai.attribution.custom import BUILTINS, MethodSpec, chunk_attributions, method_spec
from causalxai.attribution.grad_cam import GradCam
from causalxai.attribution.gradient import Gradient
from causalxai.attribution.integrated_gradients import IntegratedGradients
from causalxai.attribution.smoothgrad import SmoothGrad
from causalxai.checks import refuse
from causalxai.io import open_lazy, read_rows, set_attr, write_streamed
from causalxai.progress import Progress
from causalxai.runtime import chunk_map, resolve_device
from causalxai.study.postprocess import normalize_maps
from causalxai.zoo.dataset import zoo_rows
from causalxai.zoo.forward import chunk_groups, zoo_forward, zoo_model

__all__ = [
    "METHODS",
    "EFFECTS",
    "ExplainSettings",
    "model_shard",
    "explain_zoo",
    "normalise_explanations",
    "gather",
    "gather_to_file",
    "pack_maps",
    "shard_encoding",
    "E_ENCODING",
    "RawMaps",
    "auto_chunk",
]

log = logging.getLogger(__name__)
DTYPES = {"float32": torch.float32, "float64": torch.float64}
METHODS = BUILTINS["explain.methods"]


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
    #: a custom method (:mod:`causalxai.attribution.custom`): its ``name``, ``init``, ``attribute``, ``batched``
    custom: Mapping[str, Any] | None = None

    @classmethod
    def from_config(cls, cfg: dict) -> "ExplainSettings":
        """From the workflow's params: the config's ``explain`` keys, flattened per method
        (``samples``/``noise`` for SmoothGrad, ``steps``/``rule`` for IG, ``custom`` for a
        custom method: its entry of ``explain.methods``)."""
        method = cfg.get("method")
        keys = ("output", "chunk_size", "device", "dtype", "seed", "clip_percentile", "normalisation", "zero_maps",
                "custom")
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


def _chunks(groups: np.ndarray, models: np.ndarray, chunk: int) -> list[np.ndarray]:
    """``models`` split into chunks of at most ``chunk`` models of one group each
    (:func:`causalxai.zoo.forward.chunk_groups`)."""
    out = []
    for act in sorted(set(groups[models].tolist())):
        members = models[groups[models] == act]
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
        chunk = auto_chunk(device, x.shape[0])
    return device, dtype, x, int(chunk)


#: model-images per pass of the CPU's ``auto`` chunk (see :func:`auto_chunk`)
CPU_PASS_MODEL_IMAGES = 400


def auto_chunk(device: torch.device, n_images: int) -> int:
    """Models per pass for ``explain.chunk_size: auto`` (results do not depend on it).

    On a GPU 4096 models. On the CPU about :data:`CPU_PASS_MODEL_IMAGES` model-images per pass
    (``max(1, 400 // n_images)``: 4 models of 100 probe images): larger passes fall out of the
    CPU's caches, and SmoothGrad or IG of the zoo network then take 2-3x longer per model
    (measured on 2 cores: 34 ms a model's SmoothGrad at 4 models x 100 images per pass, 115 ms
    at 32 models; ``benchmarks/explain.py``).
    """
    if device.type == "cuda":
        return 4096
    return max(1, CPU_PASS_MODEL_IMAGES // max(1, int(n_images)))


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
        method: one of :data:`METHODS`, or the label of the custom method ``settings.custom``.
        settings: method settings, normalisation, chunk size, device, dtype, seed.
        models: the zoo's model indices to explain (a shard; sorted here); all by default.
        normalise: add ``E`` and ``degenerate`` (a shard job leaves this to the gather).
    """
    _custom_spec(method, settings)  # raises for an unknown method
    device, dtype, x, chunk = _setup(zoo, images, settings)
    models = np.arange(zoo.sizes["model"]) if models is None else np.unique(np.asarray(models, dtype=np.int64))
    groups = chunk_groups(zoo)
    for key in ("target", "target_direct"):
        if key not in predictions:
            raise ValueError(f"predictions.nc has no {key!r}: it was made by an older version; delete it and re-run")
    lo = int(models.min()) if models.size else 0
    rows = slice(lo, int(models.max()) + 1 if models.size else 0)  # the shard's rows only (predictions may be lazy)
    targets = [np.asarray(predictions[key].isel(model=rows).values) for key in ("target", "target_direct")]
    out = np.zeros((models.size, len(EFFECTS), x.shape[0], *x.shape[-2:]), dtype=np.float32)
    progress = Progress(models.size * len(EFFECTS), f"{method} of {models.size} models x {len(EFFECTS)} effects",
                        "model-effects", log)
    shard = zoo_rows(zoo, rows.start, rows.stop)  # the shard's weights read once, its chunks taken from memory

    def one_chunk(sel: np.ndarray) -> np.ndarray:
        """The chunk's maps ``(M, effects, N, H, W)``."""
        forward = zoo_forward(shard, sel - lo, settings.output, last_conv=method == "grad_cam", device=device,
                              dtype=dtype)
        maps = []
        for target_all in targets:
            target = torch.tensor(target_all[sel - lo], device=device)
            maps.append(_saliency(method, forward, sel.size, x, target, settings, device,
                                  lambda i: zoo_model(shard, sel - lo, i, settings.output, device=device,
                                                      dtype=dtype))[:, :, 0].float().cpu().numpy())
            progress.update(sel.size)
        return np.stack(maps, axis=1)

    # the built-in methods: chunks at once on the CPU, one intra-op thread each (runtime.chunk_map),
    # so the maps do not depend on the job's thread count; a custom method's chunks one by one
    parts = _chunks(groups, models, chunk)
    for sel, maps in zip(parts, chunk_map(one_chunk, parts, device, parallel=_custom_spec(method, settings) is None)):
        out[np.searchsorted(models, sel)] = maps
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


def _normalise_block(raw: np.ndarray, method: str, settings: ExplainSettings) -> tuple[np.ndarray, np.ndarray]:
    """``(E, degenerate)`` of raw maps ``(..., H, W)`` (one block; the rule is per map)."""
    m, d = normalize_maps(
        torch.as_tensor(np.asarray(raw, dtype=np.float32)), signed=method != "grad_cam",
        clip_percentile=settings.clip_percentile, rule=settings.normalisation, zero_maps=settings.zero_maps,
    )
    return m.numpy(), d.numpy()


def _block_models(shape: Sequence[int], itemsize: int = 4) -> int:
    """Models per block so that a block of raw maps ``(model, ...)`` holds at most :data:`GATHER_BLOCK_BYTES`."""
    per_model = int(np.prod(shape[1:])) * itemsize
    return max(1, GATHER_BLOCK_BYTES // max(per_model, 1))


def _descriptions(method: str, settings: ExplainSettings) -> dict[str, str]:
    rule = {"paper": "clipped to the 99th percentile of |x| in both tails, scaled to [-1, 1], negatives set to 0",
            "public_code": "the public code's PAIR visualisation (signed maps diverging around 0.5; Grad-CAM "
                           "(|x| - min) / (p99 - min))"}[settings.normalisation]
    return {
        "E": f"{method} saliency normalised to [0, 1] (paper 000 App. A.3, rule {settings.normalisation}: {rule}); "
             + ("NaN: a map of zero scale, dropped" if settings.zero_maps == "drop" else "zero-scale maps kept"),
        "degenerate": "the map has zero scale (all zero, or p99 of |x| is 0): no normalised form",
    }


def _map_attrs(method: str, settings: ExplainSettings, degenerate_counts: np.ndarray) -> dict[str, Any]:
    return {
        "method": method,
        "normalisation": settings.normalisation,
        "zero_maps": settings.zero_maps,
        "n_degenerate": {eff: int(n) for eff, n in zip(EFFECTS, degenerate_counts)},
    }


def normalise_explanations(ds: xr.Dataset, method: str, settings: ExplainSettings) -> xr.Dataset:
    """Add ``E`` (the maps normalised to [0, 1], paper 000 App. A.3) and ``degenerate``.

    The rule is ``settings.normalisation`` (:mod:`causalxai.study.postprocess`); maps of
    zero scale are NaN in ``E`` with ``zero_maps: drop``. ``degenerate(model, effect,
    image)`` marks them and the attribute ``n_degenerate`` counts them per effect. In
    memory (use :func:`gather_to_file` for a zoo's shards on disk).
    """
    raw = ds["attribution"]
    maps = np.empty(raw.shape, dtype=np.float32)
    degenerate = np.empty(raw.shape[:3], dtype=bool)
    step = _block_models(raw.shape)
    for start in range(0, raw.shape[0], step):  # a block of models at a time: memory O(block)
        block = slice(start, start + step)
        maps[block], degenerate[block] = _normalise_block(raw[block].values, method, settings)
    out = ds.copy()
    dims = ("model", "effect", "image")
    out["E"] = (dims + ("y", "x"), maps)
    out["degenerate"] = (dims, degenerate)
    out.attrs.update(_map_attrs(method, settings, degenerate.sum(axis=(0, 2))))
    for name, text in _descriptions(method, settings).items():
        out[name].attrs["description"] = text
    return out


#: raw maps per block of the streaming gather and of :class:`RawMaps`' passes (memory O(block))
GATHER_BLOCK_BYTES = 8 * 2**20
#: ``E`` on disk: 16-bit packed (see the module docstring); ``round(E * _PACK_STEPS)``, NaN as ``_PACK_FILL``
_PACK_STEPS = 65534
_PACK_FILL = 65535
#: xarray encoding of a packed ``E`` (for :func:`causalxai.io.write_dataset`'s ``encoding``)
E_ENCODING = {"dtype": "uint16", "scale_factor": np.float32(1 / _PACK_STEPS), "_FillValue": np.uint16(_PACK_FILL),
              "zlib": True, "complevel": 1, "shuffle": True}


def shard_encoding(ds: xr.Dataset) -> dict[str, dict[str, Any]]:
    """netCDF encoding of an ``explain_shard`` output: one chunk per (model, effect) map set, as
    the gathered ``E``. netCDF-C's own choice (150 models x 50 images x 14 x 14 at the default's
    size) made every reader of a few models (the gather's blocks of 13, a bucket's models in the
    sensitivity report) decompress chunks of 150 models again and again through the 4 MiB cache
    of :func:`causalxai.io.open_lazy`."""
    shape = ds["attribution"].shape
    return {"attribution": {"chunksizes": (1, 1, *shape[2:])}}


def pack_maps(maps: np.ndarray) -> np.ndarray:
    """Maps in [0, 1] (NaN: dropped) as the packed ``uint16`` of the file (see the module docstring)."""
    m = np.asarray(maps, dtype=np.float32)
    q = np.rint(np.clip(m, 0.0, 1.0) * _PACK_STEPS)
    return np.where(np.isnan(m), _PACK_FILL, q).astype(np.uint16)


def _check_shards(paths: Sequence[str | os.PathLike[str]], method: str) -> np.ndarray:
    """Check that the shard files fit together (opened one at a time); the sorted model ids of them all."""
    if not paths:
        raise ValueError("gather needs at least one shard")
    ids, ref = [], None
    for p in paths:
        with open_lazy(p, variables=["attribution"]) as ds:
            if "attribution" not in ds:
                raise ValueError(f"{p} has no raw 'attribution': it is not an explain_shard output; "
                                 "delete it and re-run")
            if ds.attrs.get("method", method) != method:
                raise ValueError(f"{p} holds {ds.attrs.get('method')!r} maps, not {method!r}: delete it and re-run")
            coords = {dim: ds[dim].values for dim in ("effect", "image")}
            if ref is None:
                ref = coords
            for dim in ("effect", "image"):
                if not np.array_equal(coords[dim], ref[dim]):
                    raise ValueError(f"{p} and {paths[0]} have different {dim} coordinates: they come from different "
                                     "runs; delete the shards and re-run explain_shard")
            ids.append(np.asarray(ds["model"].values))
    order = np.sort(np.concatenate(ids))
    if (np.diff(order) == 0).any():
        raise ValueError("shards overlap: a model appears in more than one shard")
    return order


def _open_shards(paths: Sequence[str | os.PathLike[str]], method: str) -> tuple[list[xr.Dataset], np.ndarray]:
    """The shards checked (:func:`_check_shards`) and opened lazily; and the sorted model ids of them all."""
    order = _check_shards(paths, method)
    return [open_lazy(p, variables=["attribution"]) for p in paths], order


def gather_to_file(
    shards: Sequence[str | os.PathLike[str]],
    path: str | os.PathLike[str],
    method: str,
    settings: ExplainSettings,
    *,
    config: Mapping[str, Any] | None = None,
) -> Path:
    """Stream one method's shard files into ``explanations/<method>.nc`` (rule ``explain_gather``).

    Reads each shard's raw ``attribution`` a block of models at a time, normalises the
    block (:func:`normalise_explanations`' rule) and writes ``E`` (packed, see the module
    docstring) and ``degenerate`` at the models' places (sorted by model): memory is one
    block, whatever the zoo's size. The file is written atomically.

    Args:
        shards: the ``explain_shard`` outputs of the method (any order; disjoint models).
        path: the output file.
        method: the method the shards hold.
        settings: normalisation, clip percentile, zero maps and seed.
        config: the config values recorded in the file's provenance.

    Returns:
        ``path``.
    """
    # the shards are checked, then read, one after another: one is open at a time
    order = _check_shards(shards, method)
    with open_lazy(shards[0], variables=["attribution"]) as first:
        n_eff, n_img, h, w = (first.sizes[d] for d in ("effect", "image", "y", "x"))
        attrs = {k: v for k, v in first.attrs.items() if k not in ("step", "config", "seed", "causalxai_version")}
        effects, images = first["effect"].values, first["image"].values
    skeleton = xr.Dataset(
        {"degenerate": (("model", "effect", "image"), np.zeros((order.size, n_eff, n_img), dtype=bool))},
        coords={"model": order, "effect": effects, "image": images},
        attrs={**attrs, **_map_attrs(method, settings, np.zeros(n_eff))},
    )
    desc = _descriptions(method, settings)
    skeleton["degenerate"].attrs["description"] = desc["degenerate"]
    counts = np.zeros(n_eff, dtype=np.int64)
    progress = Progress(order.size, f"gathering {method} of {order.size} models", "models", log)
    with write_streamed(skeleton, path, step="explain", config=config, seed=settings.seed) as nc:
        nc.createDimension("y", h)
        nc.createDimension("x", w)
        var = nc.createVariable("E", "u2", ("model", "effect", "image", "y", "x"), zlib=True, complevel=1,
                                shuffle=True, chunksizes=(1, 1, n_img, h, w), fill_value=np.uint16(_PACK_FILL))
        var.setncattr("scale_factor", E_ENCODING["scale_factor"])
        set_attr(var, "description", desc["E"])
        var.set_auto_maskandscale(False)
        deg = nc["degenerate"]
        deg.set_auto_maskandscale(False)
        for shard_path in shards:
            with open_lazy(shard_path, variables=["attribution"]) as ds:
                raw = ds["attribution"]
                pos = np.searchsorted(order, np.asarray(ds["model"].values))
                step = _block_models(raw.shape)
                for start in range(0, pos.size, step):
                    p = pos[start : start + step]
                    e, d = _normalise_block(raw.isel({"model": slice(start, start + step)}).values, method, settings)
                    rows = slice(int(p[0]), int(p[-1]) + 1) if (np.diff(p) == 1).all() else p
                    var[rows] = pack_maps(e)
                    deg[rows] = d.astype(np.int8)
                    counts += d.sum(axis=(0, 2))
                    progress.update(p.size)
        n_degenerate = {str(eff): int(n) for eff, n in zip(effects, counts)}
        set_attr(nc, "n_degenerate", n_degenerate)
        _refuse_all_degenerate(method, n_degenerate, order.size * n_img, settings)  # raises: nothing is written
    log.info("%s: degenerate (zero-scale) maps per effect: %s (%s)", method, n_degenerate, settings.zero_maps)
    return Path(path)


def _refuse_all_degenerate(method: str, n_degenerate: Mapping[str, int], n_maps: int,
                           settings: ExplainSettings) -> None:
    """Refuse a method whose every map of one effect has zero scale (all zero, or p99 of |x|
    is 0, the ``degenerate`` flag): with ``explain.zero_maps: drop`` every E is NaN, with
    ``keep`` every E is 0, and either way the effects of H on E are undefined or 0. Some
    degenerate maps are normal (``n_degenerate``) and never refused."""
    for eff, n in n_degenerate.items():
        if n_maps and n == n_maps:
            refuse(
                "explain_gather", f"E of method {method!r} ({eff} effect)",
                f"degenerate in all its {n_maps} (model, image) maps (each of zero scale: all zero, or its "
                f"p99 of |x| is 0; explain.zero_maps: {settings.zero_maps} makes them "
                f"{'NaN' if settings.zero_maps == 'drop' else '0'})",
                causes=f"{method} has no signal in any model: a softmax saturated in every model (explain.output: "
                       f"{settings.output}), or a zoo that did not train (zoo.train.epochs, zoo.train.hparams)",
                fix="set explain.output: logit, leave the method out of explain.methods, or re-train the zoo; "
                    "explain.zero_maps: keep would only turn the maps into zeros",
            )


class RawMaps:
    """A method's raw shards read as normalised maps, a block of models at a time: what the
    effects step reads from ``explanations/<method>.nc``, for another normalisation (the
    sensitivity report) without writing it.

    Args:
        shards: the method's ``explain_shard`` outputs; models are indexed by their
            position in the sorted model ids of them all (the zoo's order).
        method: the method.
        settings: the normalisation rule, clip percentile and zero maps.
    """

    def __init__(self, shards: Sequence[str | os.PathLike[str]], method: str, settings: ExplainSettings):
        self.method, self.settings = method, settings
        self._shards, self.models = _open_shards(shards, method)
        ids = [np.asarray(ds["model"].values) for ds in self._shards]
        by_id = np.argsort(np.concatenate(ids))
        self._shard_of = np.concatenate([np.full(i.size, k) for k, i in enumerate(ids)])[by_id]
        self._row_of = np.concatenate([np.arange(i.size) for i in ids])[by_id]
        self.attrs = {"method": method, "normalisation": settings.normalisation, "zero_maps": settings.zero_maps}
        self._dropped: np.ndarray | None = None
        self._dropped_of: dict[str, int] = {}  # per effect, counted when a read took every model

    @property
    def map_shape(self) -> tuple[int, int, int]:
        """``(image, y, x)``: the shape of one model's maps."""
        first = self._shards[0]
        return first.sizes["image"], first.sizes["y"], first.sizes["x"]

    def read(self, effect: str, models: np.ndarray) -> np.ndarray:
        """Normalised maps ``(n, image, y, x)`` float32 of the models at these positions."""
        models = np.asarray(models, dtype=np.int64)
        out = np.empty((models.size, *self.map_shape), dtype=np.float32)
        dropped = 0
        for k, ds in enumerate(self._shards):
            at = np.flatnonzero(self._shard_of[models] == k)
            if at.size:
                rows = self._row_of[models[at]]
                raw = read_rows(ds["attribution"].sel({"effect": effect}), "model", rows)
                out[at], degenerate = _normalise_block(raw, self.method, self.settings)
                dropped += int(degenerate.sum())
        if models.size == self.models.size and np.array_equal(np.sort(models), np.arange(models.size)):
            self._dropped_of[effect] = dropped  # every model read: n_dropped needs no pass of its own
        return out

    def n_dropped(self) -> np.ndarray:
        """Dropped (NaN) maps per effect under this normalisation (one pass over the shards, kept)."""
        if self._dropped is None and self.settings.zero_maps == "drop" and set(self._dropped_of) == set(EFFECTS):
            self._dropped = np.array([self._dropped_of[e] for e in EFFECTS], dtype=np.int64)
        if self._dropped is None:
            counts = np.zeros(len(EFFECTS), dtype=np.int64)
            if self.settings.zero_maps == "drop":
                for ds in self._shards:
                    raw = ds["attribution"]
                    step = _block_models(raw.shape)
                    for start in range(0, raw.sizes["model"], step):
                        blk = raw.isel({"model": slice(start, start + step)}).values
                        counts += _normalise_block(blk, self.method, self.settings)[1].sum(axis=(0, 2))
            self._dropped = counts
        return self._dropped

    def close(self) -> None:
        for ds in self._shards:
            ds.close()

    def __enter__(self) -> "RawMaps":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _custom_spec(method: str, settings: ExplainSettings) -> MethodSpec | None:
    """The custom method ``settings.custom`` labelled ``method``; None for a built-in."""
    if settings.custom is None:
        if method not in METHODS:
            raise ValueError(f"explain.methods: unknown method {method!r}; choose from {list(METHODS)} or give a "
                             "custom method (ExplainSettings.custom)")
        return None
    return method_spec({**settings.custom, "label": method}, "explain.methods", METHODS)


def _saliency(method: str, forward, m: int, x: torch.Tensor, target: torch.Tensor,
              settings: ExplainSettings, device: torch.device,
              module: Callable[[int], torch.nn.Module] | None = None) -> torch.Tensor:
    """One method's maps ``(M, N, C, H, W)`` of a chunk's ``M`` models, all at once, through
    their forward (:func:`causalxai.zoo.forward.zoo_forward`; ``last_conv`` for Grad-CAM). A
    custom method runs batched when it may, else model by model on ``module(i)``, the chunk's
    ``i``-th model alone (:func:`causalxai.attribution.custom.chunk_attributions`)."""
    spec = _custom_spec(method, settings)
    if spec is not None:
        if module is None:
            raise ValueError(f"{method}: a custom method needs the chunk's models one by one (module)")
        return chunk_attributions(spec, forward, module, x, target, seed=settings.seed)
    if method == "grad_cam":
        return GradCam(forward).attribute(x, target)
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
