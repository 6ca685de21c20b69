"""The effects step: ITE_Y and ITE_E for every hyperparameter, value, bucket and image, with
bootstrap intervals, a placebo and permutation p-values; their correlations; the split into
direct and mediated effects (paper 000 eq. 4, Fig. 2-4, 16).

``effects.nc`` holds (dims in brackets; ``bound`` = lower, upper of a percentile bootstrap
interval at ``ci_level``):

* ``ite_y[hparam, value, bucket, image]``: the effect of ``hparam = value`` (w.r.t. every
  other value, within the bucket) on the prediction Y; ``ite_e[effect, method, ...]`` the
  same on each explanation E, ``identity`` (E := Y) the reference method. ``effect =
  total`` uses the maps of each model's predicted class, ``direct`` those of a randomly
  permuted class (H → Y → E severed, :mod:`causalxai.study.explain`);
  ``ite_e_mediated`` = total − direct;
* the null: ``ite_y_null``/``ite_e_null``, the mean ITE over label permutations within the
  cell (what eq. (4) gives for "no effect": it is not 0), and ``p_value_y``/``p_value_e``,
  the permutation p-values (:mod:`causalxai.study.estimators.resample`); the hyperparameter
  ``placebo`` (``hparam_kind = placebo``), drawn at random per model, carried through
  everything like a real one and left out of ``corr`` and ``corr_mean``;
* ``n_treated``/``n_control[hparam, value, bucket]`` (after the cap); ``small_cell``: fewer
  than ``min_models`` treated or control models, left out of every correlation (counted in
  ``n_small_cells``); ``n_empty_cells`` counts the real cells (values the hyperparameter
  has) without a treated or a control model;
* ``cate_y[hparam, value, bucket]``, ``cate_e[effect, method, ...]``: the conditional
  average effect over the probe images, with ``cate_y_ci``/``cate_e_ci``; the bucket
  ``0-100`` (all models, ``global_bucket``) gives the average effect (ATE);
* ``corr[effect, method, bucket, stat]``: Pearson and Spearman correlation of ITE_Y and
  ITE_E pooled over the bucket's (hyperparameter, value, image) entries; ``corr_hparam``
  per hyperparameter; ``corr_mean`` their mean over the real hyperparameters, the paper's
  aggregation, with ``corr_mean_band`` (std / √n) (:mod:`causalxai.study.estimators.correlation`);
* ``corr_mediated`` = corr(total) − corr(direct) (Fig. 4, second column) and
  ``gap_to_identity`` = Identity's minus the method's (third column); ``corr_mean_mediated``
  and ``gap_to_identity_mean`` the same for ``corr_mean``;
* an interval ``<name>_ci[..., bound]`` for every correlation, mediated part and gap, and
  for every CATE.

A bucket's resample (a bootstrap replicate) is shared by every hyperparameter, output and
effect, so differences and correlations are computed within one replicate. The settings
(:class:`EffectsSettings`) are recorded in the attributes. Hyperparameters with a single
value in the zoo (e.g. ``b_init``) have no control group and are left out. Select a method
with ``ds.sel({"method": "gradient"})`` (``method=`` is a keyword of ``sel`` itself).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable, Mapping

import numpy as np
import torch
import xarray as xr

from causalxai.checks import require_informative
from causalxai.io import describe, read_rows
from causalxai.progress import Progress
from causalxai.study.estimators.bandwidth import MEDIAN_MODELS
from causalxai.study.estimators.correlation import correlations, hparam_mean
from causalxai.study.estimators.estimate import Block, BucketKernel, KernelSpec
from causalxai.study.estimators.resample import bootstrap_counts, p_values, percentile_interval, permutation_indicators
from causalxai.study.estimators.treatments import (
    LOG_ROUNDED,
    PLACEBO,
    placebo_levels,
    treatment_groups,
    treatment_levels,
)
from causalxai.study.explain import EFFECTS
from causalxai.zoo.hparams import hparam_specs

__all__ = ["EffectsSettings", "GLOBAL_BUCKET", "check_effects", "compute_effects", "compute_effects_grid"]

log = logging.getLogger(__name__)

#: label of the bucket of all models (the global analysis, paper 000 §3)
GLOBAL_BUCKET = "0-100"
#: a bucket whose Gram matrix (images × models² float64) fits in this many bytes shares it
#: between its cells; a larger bucket shares it a few images at a time when its outputs of one
#: kind fit in twice this (the 600-model default's global bucket: 188 MB of maps, read once, and
#: Gram blocks of 34 images), else its cells compute their own (same numbers: :func:`_image_chunks`)
GRAM_BYTES = 128 * 2**20


@dataclass(frozen=True)
class EffectsSettings:
    """Every choice of the effects step (config ``effects``), recorded in ``effects.nc``.

    Attributes:
        kernel, bandwidth, estimator: see :class:`causalxai.study.estimators.estimate.KernelSpec`.
        cap: at most this many treated and control models per cell (seeded); None: all.
        pool: per image, a seeded subsample of this many of the bucket's models is split
            into treated and control (the public code's 100); None: every model. The cap
            is not applied when pooling.
        min_models: cells with fewer treated or control models are flagged small.
        bootstrap: replicates B of the bootstrap over models (0: no intervals).
        permutations: label permutations per cell for the p-values (0: none).
        ci_level: coverage of the percentile intervals.
        placebo_levels: levels of the placebo hyperparameter.
        global_bucket: add the bucket ``0-100`` of all models.
        log_rounding: continuous hyperparameters rounded to markers in log space.
        seed: seeds the caps, the placebo, the bootstrap and the permutations.
    """

    kernel: str = "rbf"
    bandwidth: str = "fixed"
    estimator: str = "eq4"
    cap: int | None = 100
    pool: int | None = None
    min_models: int = 5
    bootstrap: int = 200
    permutations: int = 100
    ci_level: float = 0.95
    placebo_levels: int = 3
    global_bucket: bool = True
    log_rounding: tuple[str, ...] = field(default=LOG_ROUNDED)
    seed: int = 0

    def __post_init__(self) -> None:
        KernelSpec(self.kernel, self.bandwidth, self.estimator)
        for name, low in (("min_models", 1), ("bootstrap", 0), ("permutations", 0), ("placebo_levels", 2)):
            if int(getattr(self, name)) < low:
                raise ValueError(f"effects.{name} must be at least {low}, got {getattr(self, name)}")
        if self.cap is not None and self.cap < 1:
            raise ValueError(f"effects.max_models_per_group must be at least 1, got {self.cap}")
        if self.pool is not None and self.pool < 2:
            raise ValueError(f"effects.pool must be at least 2 models, got {self.pool}")
        object.__setattr__(self, "log_rounding", tuple(self.log_rounding))

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], seed: int) -> "EffectsSettings":
        """From the config's ``effects`` section (the rule's params) and the seed."""
        keys = {"kernel", "bandwidth", "estimator", "pool", "min_models", "bootstrap", "permutations", "ci_level",
                "placebo_levels", "global_bucket", "log_rounding"}
        kw = {k: cfg[k] for k in keys if k in cfg}
        if "max_models_per_group" in cfg:
            kw["cap"] = cfg["max_models_per_group"]
        return cls(**kw, seed=int(seed))

    @property
    def spec(self) -> KernelSpec:
        return KernelSpec(self.kernel, self.bandwidth, self.estimator)

    def attrs(self) -> dict[str, Any]:
        out = asdict(self)
        out["max_models_per_group"] = out.pop("cap")
        out["log_rounding"] = list(self.log_rounding)
        return out


def _check_inputs(buckets: xr.Dataset, predictions: xr.Dataset, explanations: Mapping[str, Any]) -> None:
    bucket = np.asarray(buckets["bucket"].values)
    sizes = np.bincount(bucket, minlength=buckets.sizes["bucket_label"])
    if (sizes < 2).any():
        few = ", ".join(f"{str(lab)!r}: {n}" for lab, n in zip(buckets["bucket_label"].values, sizes) if n < 2)
        raise ValueError(
            f"buckets with fewer than 2 models ({few}): eq. (4) compares a treated with a control model "
            "within a bucket, so such a bucket has no effect at all; widen buckets.edges or add models (zoo.n_models)"
        )
    for key in ("prob", "prob_direct"):
        if key not in predictions:
            raise ValueError(f"predictions.nc has no {key!r}: it was made by an older version; delete it and re-run")
    for m, e in explanations.items():
        if not isinstance(e, xr.Dataset):
            if not (hasattr(e, "read") and hasattr(e, "n_dropped")):
                raise TypeError(f"explanations[{m!r}] is neither a dataset with E nor a map reader (RawMaps)")
            continue
        if "E" not in e or "effect" not in e["E"].dims or list(e["effect"].values) != list(EFFECTS):
            raise ValueError(f"explanations/{m}.nc has no E with an effect dimension {list(EFFECTS)}: "
                             "it was made by an older version; delete it and re-run")


def _check_same_zoo(zoo: xr.Dataset, buckets: xr.Dataset, predictions: xr.Dataset,
                    explanations: Mapping[str, Any]) -> None:
    """Refuse inputs of different zoos (a stale file next to a new zoo), naming each file's model count."""
    counts: dict[str, int | None] = {
        "zoo.nc": zoo.sizes.get("model"),
        "buckets.nc": int(np.asarray(buckets["bucket"].values).size),
        "predictions.nc": predictions.sizes.get("model"),
    }
    for m, e in explanations.items():
        models = e.sizes.get("model") if isinstance(e, xr.Dataset) else getattr(e, "models", None)
        counts[f"explanations/{m}.nc"] = models if models is None or isinstance(models, int) else len(models)
    if len({n for n in counts.values() if n is not None}) > 1:
        listed = ", ".join(f"{name} {n} models" for name, n in counts.items() if n is not None)
        raise ValueError(
            f"the effects' inputs describe different zoos ({listed}): they must all come from the same zoo.nc; "
            "re-run the steps after the zoo (e.g. snakemake --forcerun predictions buckets explain_gather) or "
            "delete the stale files"
        )


class _OutputReader:
    """``read((effect, method), model indices) -> (n, I, ...)`` float32 (float64 for Y): only
    those models' outputs. A lazily opened file (:func:`causalxai.io.open_lazy`) or a map
    reader (:class:`causalxai.study.explain.RawMaps`) reads only them from disk, so memory
    is a cell's (or a bucket's) models, not the zoo's."""

    def __init__(self, predictions: xr.Dataset, explanations: Mapping[str, Any]):
        arrays: dict[tuple[str, str], Any] = {("total", "identity"): predictions["prob"],
                                              ("direct", "identity"): predictions["prob_direct"]}
        for m, e in explanations.items():
            for eff in EFFECTS:
                arrays[(eff, m)] = e["E"].sel({"effect": eff}, drop=True) if isinstance(e, xr.Dataset) else (e, eff)
        self.arrays = arrays
        self.n_images = int(predictions.sizes["image"])

    def __call__(self, key, idx: np.ndarray) -> np.ndarray:
        src, idx = self.arrays[key], np.asarray(idx, dtype=np.int64)
        if isinstance(src, tuple):
            return src[0].read(src[1], idx)
        values = read_rows(src, "model", idx) if src.dims[0] == "model" else np.asarray(src.isel({"model": idx}).values)
        return values if values.dtype == np.float32 else values.astype(np.float64)

    def row_bytes(self, key) -> int:
        """Bytes of one model's outputs as read (from the shapes: nothing is read)."""
        src = self.arrays[key]
        if isinstance(src, tuple):
            return int(np.prod(src[0].map_shape)) * 4
        per = int(np.prod([n for d, n in src.sizes.items() if d != "model"]))
        return per * (4 if src.dtype == np.float32 else 8)


def _image_chunks(n: int, n_images: int, cell_sizes: list[int], row_bytes: int) -> list[slice] | None:
    """How a bucket of ``n`` models shares its Gram matrix between its cells: one block of every
    image when it fits in :data:`GRAM_BYTES` (``[slice(None)]``); else blocks of a few images at a
    time, when one image's block fits, the bucket's outputs fit in twice that, and the bucket's
    Gram matrix costs no more than its cells' own (``n² ≤ Σ u²``, ``u`` a cell's models; each
    image's estimates depend on that image's block alone, so the numbers are the same); else
    None: each cell computes the Gram matrix of its own models."""
    per_image = n * n * 8
    if per_image * n_images <= GRAM_BYTES:
        return [slice(None)]
    if per_image > GRAM_BYTES or n * row_bytes > 2 * GRAM_BYTES or n * n > sum(u * u for u in cell_sizes):
        return None
    n_chunks = -(-n_images // (GRAM_BYTES // per_image))
    size = -(-n_images // n_chunks)
    return [slice(start, min(start + size, n_images)) for start in range(0, n_images, size)]


def _dropped(explanations: Mapping[str, Any], methods: list[str]) -> np.ndarray:
    """``(effect, method)``: (model, image) maps that are NaN (dropped) in the inputs."""
    out = np.zeros((len(EFFECTS), len(methods)), dtype=np.int64)
    for k, m in enumerate(methods):
        if m == "identity":
            continue
        e = explanations[m]
        if not isinstance(e, xr.Dataset):
            out[:, k] = e.n_dropped()
            continue
        for i, eff in enumerate(EFFECTS):
            if "degenerate" in e and e.attrs.get("zero_maps", "drop") == "drop":
                out[i, k] = int(np.asarray(e["degenerate"].sel({"effect": eff}).values).sum())
            else:  # a block of models at a time
                maps = e["E"].sel({"effect": eff})
                for start in range(0, maps.sizes["model"], 256):
                    blk = np.asarray(maps.isel({"model": slice(start, start + 256)}).values)
                    out[i, k] += int(np.isnan(blk.reshape(*blk.shape[:2], -1)).any(-1).sum())
    return out


def compute_effects(
    zoo: xr.Dataset,
    buckets: xr.Dataset,
    predictions: xr.Dataset,
    explanations: Mapping[str, Any],
    settings: EffectsSettings = EffectsSettings(),
) -> xr.Dataset:
    """Build ``effects.nc`` (see the module docstring) from the earlier steps' results.

    Args:
        zoo, buckets, predictions: ``zoo.nc`` (hyperparameters), ``buckets.nc`` and
            ``predictions.nc`` (``prob``, ``prob_direct``).
        explanations: per method a dataset with ``E(model, effect, image, y, x)``
            (``effect`` = total, direct), best opened lazily (:func:`causalxai.io.open_lazy`:
            only each cell's models are read, and memory does not grow with the zoo), or a
            map reader (:class:`causalxai.study.explain.RawMaps`); NaN maps drop out of
            their (model, image).
        settings: the estimator's choices.

    Raises:
        causalxai.checks.DegenerateResultError: the result carries no information
            (:func:`check_effects`).
    """
    ds = compute_effects_grid(zoo, buckets, predictions, explanations, settings, [settings.spec])[0]
    check_effects(ds)
    return ds


def check_effects(effects: xr.Dataset) -> None:
    """Refuse an ``effects.nc`` whose headline numbers carry no information.

    Over the real hyperparameters (the placebo left out), every bucket, value and image,
    :func:`causalxai.checks.require_informative` refuses

    * ``ite_y`` all NaN (no cell has a treated and a control model) or constant (paper 000
      eq. (4) gives one value everywhere: one model a side, ``effects.max_models_per_group:
      1``, with a median bandwidth makes every ITE ``2 − 2e^(−1/2)``; or every model gives
      the same Y);
    * ``ite_e`` of any (effect, method) all NaN or constant (the method's maps are all
      dropped, or the same for every model);
    * ``corr`` of the total effect of any method all NaN over every bucket and statistic
      (Fig. 3 would be empty: every cell small, or the ITEs constant within every bucket).

    NaN in some cells (small or empty cells, dropped maps) is normal and never refused.

    Raises:
        causalxai.checks.DegenerateResultError: naming the variable, the finding, the
            settings that likely caused it and what to change.
    """
    a = effects.attrs
    real = [str(h) for h, k in zip(effects["hparam"].values, effects["hparam_kind"].values) if str(k) == "real"]
    sizes = ", ".join(f"{b}: {int(n)}" for b, n in zip(effects["bucket"].values, effects["bucket_n_models"].values))
    cells = (f"effects.max_models_per_group={a.get('max_models_per_group')}, effects.pool={a.get('pool')}, "
             f"effects.min_models={a.get('min_models')}, kernel {a.get('kernel')} (bandwidth {a.get('bandwidth')}, "
             f"estimator {a.get('estimator')}); models per bucket {sizes}; {a.get('n_empty_cells')} empty and "
             f"{a.get('n_small_cells')} small cells")
    sel = {"hparam": real}
    require_informative(
        effects["ite_y"].sel(sel), "ite_y (the ITE of every real hyperparameter on Y)", "effects",
        causes=f"too few models per cell or one model a side ({cells}), or every model of the zoo gives the same Y "
               "(a zoo that did not train: zoo.train.epochs, zoo.train.hparams.learning_rate)",
        fix="raise effects.max_models_per_group (at least 2) and zoo.n_models, widen buckets.edges, or train the zoo "
            "longer",
    )
    methods = [str(m) for m in effects["method"].values]
    for eff in [str(e) for e in effects["effect"].values]:
        for m in methods:
            if m == "identity":
                continue  # E := Y: ite_y above, and the direct effect's permuted Y
            require_informative(
                effects["ite_e"].sel({"effect": eff, "method": m, **sel}),
                f"ite_e of method {m!r} ({eff} effect)", "effects",
                causes=f"the {m} maps are dropped or identical for every model (explanations/{m}.nc: n_dropped_maps "
                       f"{int(effects['n_dropped_maps'].sel({'effect': eff, 'method': m}))}; explain.zero_maps), "
                       f"or too few models per cell ({cells})",
                fix=f"check explanations/{m}.nc (its degenerate maps), set explain.zero_maps: keep to see them, or "
                    "raise effects.max_models_per_group and zoo.n_models",
            )
    used = (effects["n_treated"] > 0) & (effects["n_control"] > 0) & ~effects["small_cell"]
    n_used = int(used.sel(sel).sum())
    why = (f"every cell is small: none of the real cells has effects.min_models={a.get('min_models')} treated and "
           f"control models ({cells})" if n_used == 0 else
           f"the ITEs are constant (or NaN) within every bucket ({n_used} cells used; {cells})")
    for m in methods:
        require_informative(
            effects["corr"].sel({"effect": "total", "method": m}),
            f"corr of method {m!r} (total effect, every bucket and statistic)", "effects",
            causes=why, fix="lower effects.min_models, raise zoo.n_models or widen buckets.edges", constant=False,
        )


@dataclass
class _Arrays:
    """What one kernel spec's evaluation fills (see :func:`compute_effects_grid`)."""

    ite: np.ndarray
    null: np.ndarray
    pval: np.ndarray
    cate: np.ndarray
    cate_ci: np.ndarray
    corr_rep: np.ndarray

    @classmethod
    def empty(cls, shape_e: tuple[int, ...], n_i: int, n_groups: int, n_j: int) -> "_Arrays":
        ite = np.full(shape_e + (n_i,), np.nan)
        n_e, n_m, _, _, n_bt = shape_e
        return cls(ite, ite.copy(), ite.copy(), np.full(shape_e, np.nan), np.full(shape_e + (2,), np.nan),
                   np.full((n_e, n_m, n_bt, n_groups, n_j, 2), np.nan))


@dataclass
class _Bucket:
    """One bucket's share of :func:`compute_effects_grid`: its cells ``(hparam index, group)``,
    its models (``members``, their positions ``pos`` in the bucket), bootstrap columns, pooling,
    each cell's permutations and the cells each correlation group uses (``select``)."""

    b: int
    cells: list
    members: np.ndarray
    pos: np.ndarray
    cols: np.ndarray
    pool: np.ndarray | None
    perms: list
    select: list


def _bucket_estimates(plan: _Bucket, key, read: "_OutputReader", everything: np.ndarray | None,
                      specs: list[KernelSpec], by_kernel: dict, seed: int):
    """Every cell's estimates of one output in one bucket, for every spec: per spec ``(J, cells, I)``
    (point estimate, then the bootstrap replicates) and per spec and cell the permutations' ``(P, I)``
    (None without). ``everything``: the output of every model of the zoo, when it was read whole."""
    cells, members, pos, pool, cols = plan.cells, plan.members, plan.pos, plan.pool, plan.cols
    n, n_i, n_j = members.size, read.n_images, cols.shape[0]
    chunks = _image_chunks(n, n_i, [g.treated.size + g.control.size for _, g in cells], read.row_bytes(key))
    if everything is not None:
        outputs = everything if n == everything.shape[0] else everything[members]
    elif chunks is not None or n * read.row_bytes(key) <= 2 * GRAM_BYTES:
        outputs = read(key, members)  # the bucket's outputs, read once for all its cells
    else:
        outputs = None  # each cell reads its own models
    median_b = None
    est = [np.full((n_j, len(cells), n_i), np.nan) for _ in specs]
    perm_est: list[list[np.ndarray | None]] = [[None] * len(cells) for _ in specs]
    for sl in chunks or [None]:
        blk = None  # the Gram matrix of the whole bucket on these images, shared by its cells
        if sl is not None:
            blk = Block.from_outputs(outputs[:, sl])
            if pool is not None:
                blk.valid = blk.valid * torch.as_tensor(pool[sl])
        isl = slice(None) if sl is None else sl
        cache: dict = {}  # each cell's median_cell bandwidth, for every spec of this output
        for (kernel, bandwidth), idx_specs in by_kernel.items():
            spec = specs[idx_specs[0]]
            estimators = [specs[j].estimator for j in idx_specs]
            gamma = None
            if kernel == "rbf" and bandwidth == "median_bucket":
                if median_b is None:
                    median_b = _median_bucket_gamma(
                        blk if chunks == [slice(None)] else None,
                        read if outputs is None else (lambda _key, idx: outputs[pos[idx]]), key, members,
                        [seed, 0x3ED, plan.b])
                gamma = median_b
            bk = BucketKernel(blk, spec, gamma, cache) if blk is not None else None
            for ci, (h, g) in enumerate(cells):
                if bk is not None:
                    results = bk.cell(pos[g.treated], pos[g.control], cols, plan.perms[ci], estimators)
                else:  # a bucket too large to share: the cell's own models only
                    idx = np.concatenate([g.treated, g.control])
                    cb = Block.from_outputs(read(key, idx) if outputs is None else outputs[pos[idx]])
                    if pool is not None:
                        cb.valid = cb.valid * torch.as_tensor(pool[:, pos[idx]])
                    nt = g.treated.size
                    results = BucketKernel(cb, spec, gamma).cell(
                        np.arange(nt), np.arange(nt, idx.size), cols[:, pos[idx]], plan.perms[ci], estimators)
                for j, (e_j, p_j) in zip(idx_specs, results):
                    est[j][:, ci, isl] = e_j.numpy()
                    if p_j is not None:
                        if perm_est[j][ci] is None:
                            perm_est[j][ci] = np.full((p_j.shape[0], n_i), np.nan)
                        perm_est[j][ci][:, isl] = p_j.numpy()
    return est, perm_est


def compute_effects_grid(
    zoo: xr.Dataset,
    buckets: xr.Dataset,
    predictions: xr.Dataset,
    explanations: Mapping[str, Any],
    settings: EffectsSettings,
    specs: list[KernelSpec],
) -> list[xr.Dataset]:
    """:func:`compute_effects` for several kernels, bandwidth rules or estimators at once.

    The groups, resamples and permutations (``settings``) are shared and each bucket's
    outputs are read and their Gram matrix computed once for all ``specs``; returns one
    ``effects.nc`` per spec (its attributes name the spec).
    """
    s = settings
    _check_inputs(buckets, predictions, explanations)
    _check_same_zoo(zoo, buckets, predictions, explanations)
    bucket = np.asarray(buckets["bucket"].values)
    n_models = bucket.size
    labels_b = [str(v) for v in buckets["bucket_label"].values]
    add_global = s.global_bucket and len(labels_b) > 1
    bucket_labels = labels_b + ([GLOBAL_BUCKET] if add_global else [])
    n_b, n_bt = len(labels_b), len(bucket_labels)
    methods = ["identity", *explanations]
    keys = [(eff, m) for eff in EFFECTS for m in methods]
    read = _OutputReader(predictions, explanations)

    levels_all: dict[str, tuple[np.ndarray, list[str]]] = {}
    for name, spec in hparam_specs(zoo.attrs, s.log_rounding).items():
        lv, labels = treatment_levels(name, zoo[name].values, s.log_rounding, spec=spec)
        if len(set(lv.tolist())) > 1:
            levels_all[name] = (lv, labels)
    if not levels_all:
        raise ValueError("no hyperparameter takes two values in this zoo: there is no treatment to estimate")
    n_real = len(levels_all)
    levels_all[PLACEBO] = placebo_levels(n_models, s.placebo_levels, s.seed)
    names = list(levels_all)
    n_h = len(names)
    n_v = max(len(labels) for _, labels in levels_all.values())
    n_i = predictions.sizes["image"]
    n_j = 1 + s.bootstrap
    cap = None if s.pool is not None else s.cap

    # cells per bucket: (hparam index, group)
    cells: list[list[tuple[int, Any]]] = [[] for _ in range(n_bt)]
    value_label = np.full((n_h, n_v), "", dtype=object)
    for h, name in enumerate(names):
        lv, labels = levels_all[name]
        value_label[h, : len(labels)] = labels
        for g in treatment_groups(lv, len(labels), bucket, n_b, cap, s.seed + h):
            cells[g.bucket].append((h, g))
        if add_global:
            for g in treatment_groups(lv, len(labels), np.zeros(n_models, int), 1, cap, [s.seed, h, 0x61]):
                cells[n_b].append((h, g))

    n_t = np.zeros((n_h, n_v, n_bt), dtype=np.int64)
    n_c = np.zeros_like(n_t)
    shape_e = (len(EFFECTS), len(methods), n_h, n_v, n_bt)
    out = [_Arrays.empty(shape_e, n_i, 1 + n_h, n_j) for _ in specs]  # groups: pooled, then each hyperparameter
    by_kernel: dict[tuple[str, str], list[int]] = {}  # specs that share a kernel matrix: only the estimator differs
    for j, spec in enumerate(specs):
        by_kernel.setdefault((spec.kernel, spec.bandwidth if spec.kernel == "rbf" else "-"), []).append(j)

    plans: list[_Bucket | None] = []
    for b in range(n_bt):
        if not cells[b]:
            plans.append(None)
            continue
        members = np.arange(n_models) if b == n_b else np.flatnonzero(bucket == b)
        n = members.size
        pos = np.full(n_models, -1)
        pos[members] = np.arange(n)
        pool = None
        if s.pool is not None:
            rng = np.random.default_rng([s.seed, 0x9001, b])
            keep = np.argsort(rng.random((n_i, n)), axis=1)[:, : min(s.pool, n)]
            pool = np.zeros((n_i, n))
            np.put_along_axis(pool, keep, 1.0, axis=1)
        small = np.zeros(len(cells[b]), dtype=bool)
        perms = []
        for ci, (h, g) in enumerate(cells[b]):
            n_t[h, g.value, b], n_c[h, g.value, b] = g.treated.size, g.control.size
            small[ci] = min(g.treated.size, g.control.size) < s.min_models
            u = g.treated.size + g.control.size
            perms.append(permutation_indicators(g.treated.size, u, s.permutations, [s.seed, 0x9E53, b, ci])
                         if s.permutations else None)
        cell_h = np.array([h for h, _ in cells[b]])
        use = ~small
        plans.append(_Bucket(b, cells[b], members, pos, bootstrap_counts(n, s.bootstrap, [s.seed, 0xB007, b]), pool,
                             perms, [use & (cell_h < n_real)] + [use & (cell_h == h) for h in range(n_h)]))

    progress = Progress(sum(len(c) for c in cells) * len(keys), f"effects of {len(specs)} kernel spec(s)",
                        "cell-outputs", log)
    y_reps: dict[int, list[np.ndarray]] = {}  # per bucket, each spec's replicates of ITE_Y (the first output)
    for key in keys:  # each output is read once, for all the buckets, when it fits
        i_e, k = EFFECTS.index(key[0]), methods.index(key[1])
        everything = read(key, np.arange(n_models)) if n_models * read.row_bytes(key) <= 2 * GRAM_BYTES else None
        for plan in plans:
            if plan is None:
                continue
            b = plan.b
            est, perm_est = _bucket_estimates(plan, key, read, everything, specs, by_kernel, s.seed)
            for j, (arr, rj) in enumerate(zip(out, est)):
                for ci, (h, g) in enumerate(plan.cells):
                    at = (i_e, k, h, g.value, b)
                    arr.ite[at] = rj[0, ci]
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", RuntimeWarning)
                        cate_r = np.nanmean(rj[:, ci], axis=-1)
                        pm = perm_est[j][ci]
                        if pm is not None:
                            arr.null[at] = np.nanmean(pm, axis=0)
                            arr.pval[at] = p_values(rj[0, ci], pm)
                    arr.cate[at] = cate_r[0]
                    arr.cate_ci[at] = percentile_interval(cate_r[1:], s.ci_level)
                # correlations with ITE_Y (the first output), every replicate at once
                y = y_reps.setdefault(b, est)[j]
                for gi, sel in enumerate(plan.select):
                    if sel.any():
                        arr.corr_rep[i_e, k, b, gi] = correlations(y[:, sel].reshape(n_j, -1),
                                                                   rj[:, sel].reshape(n_j, -1))
            progress.update(len(plan.cells))
        del everything

    common = dict(
        names=names, n_real=n_real, n_v=n_v, methods=methods, bucket_labels=bucket_labels, value_label=value_label,
        n_t=n_t, n_c=n_c,
        n_models_b=[int((bucket == b).sum()) for b in range(n_b)] + ([n_models] if add_global else []),
        dropped=_dropped(explanations, methods),
    )
    results = []
    for arr, spec in zip(out, specs):
        st = replace(s, kernel=spec.kernel, bandwidth=spec.bandwidth, estimator=spec.estimator)
        results.append(_assemble({**common, **vars(arr)}, zoo=zoo, predictions=predictions, settings=st))
    return results


def _median_bucket_gamma(blk: Block | None, read: Callable, key, members: np.ndarray, seed) -> float:
    """``median_bucket``: γ from the distinct pairs of (a seeded subsample of) the bucket's models."""
    n = members.size
    sub = np.arange(n)
    if n > MEDIAN_MODELS:
        sub = np.sort(np.random.default_rng(seed).choice(n, MEDIAN_MODELS, replace=False))
    sb = blk.sub(sub) if blk is not None else Block.from_outputs(read(key, members[sub]))
    return float(sb.median_gamma(pooled=True))


def _assemble(
    arrays: dict[str, Any], zoo: xr.Dataset, predictions: xr.Dataset, settings: EffectsSettings
) -> xr.Dataset:
    """The dataset of the module docstring from the arrays :func:`compute_effects` filled."""
    v = arrays
    s = settings
    names, n_real, methods = v["names"], v["n_real"], v["methods"]
    corr_rep = v["corr_rep"]  # (effect, method, bucket, group, replicate, stat)
    n_t, n_c = v["n_t"], v["n_c"]

    def ci(rep: np.ndarray, axis: int) -> np.ndarray:
        return percentile_interval(np.take(rep, np.arange(1, rep.shape[axis]), axis=axis), s.ci_level, axis=axis)

    corr = corr_rep[:, :, :, 0, 0]
    corr_ci = ci(corr_rep[:, :, :, 0], axis=3)
    corr_h = np.moveaxis(corr_rep[:, :, :, 1:, 0], 3, 2)  # (effect, method, hparam, bucket, stat)
    corr_h_ci = np.moveaxis(ci(corr_rep[:, :, :, 1:], axis=4), 3, 2)
    mean_rep, _ = hparam_mean(corr_rep[:, :, :, 1 : 1 + n_real], axis=3)  # (effect, method, bucket, rep, stat)
    corr_mean = mean_rep[:, :, :, 0]
    _, band = hparam_mean(corr_rep[:, :, :, 1 : 1 + n_real, 0], axis=3)
    corr_mean_ci = ci(mean_rep, axis=3)

    def mediation(rep: np.ndarray) -> tuple[np.ndarray, ...]:
        """(effect, method, bucket, rep, stat) -> mediated, its CI, gap, its CI."""
        med = rep[0] - rep[1]
        gap = med[:1] - med
        return med[:, :, 0], ci(med, axis=2), gap[:, :, 0], ci(gap, axis=2)

    med, med_ci, gap, gap_ci = mediation(corr_rep[:, :, :, 0])
    med_m, med_m_ci, gap_m, gap_m_ci = mediation(mean_rep)

    small = (np.minimum(n_t, n_c) < s.min_models) & (n_t > 0) & (n_c > 0)
    real_value = v["value_label"] != ""
    empty = ((n_t == 0) | (n_c == 0)) & real_value[:, :, None]
    cell = ("hparam", "value", "bucket", "image")
    ecell = ("effect", "method", *cell)
    cstat = ("effect", "method", "bucket", "stat")
    mstat = ("method", "bucket", "stat")
    ite, null, pval = v["ite"], v["null"], v["pval"]
    data = {
        "ite_y": (cell, ite[0, 0]),
        "ite_e": (ecell, ite),
        "ite_e_mediated": (("method", *cell), ite[0] - ite[1]),
        "ite_y_null": (cell, null[0, 0]),
        "ite_e_null": (ecell, null),
        "p_value_y": (cell, pval[0, 0]),
        "p_value_e": (ecell, pval),
        "n_treated": (cell[:3], n_t),
        "n_control": (cell[:3], n_c),
        "small_cell": (cell[:3], small),
        "cate_y": (cell[:3], v["cate"][0, 0]),
        "cate_y_ci": (cell[:3] + ("bound",), v["cate_ci"][0, 0]),
        "cate_e": (ecell[:5], v["cate"]),
        "cate_e_ci": (ecell[:5] + ("bound",), v["cate_ci"]),
        "corr": (cstat, corr),
        "corr_ci": (cstat + ("bound",), corr_ci),
        "corr_hparam": (("effect", "method", "hparam", "bucket", "stat"), corr_h),
        "corr_hparam_ci": (("effect", "method", "hparam", "bucket", "stat", "bound"), corr_h_ci),
        "corr_mean": (cstat, corr_mean),
        "corr_mean_band": (cstat, band),
        "corr_mean_ci": (cstat + ("bound",), corr_mean_ci),
        "corr_mediated": (mstat, med),
        "corr_mediated_ci": (mstat + ("bound",), med_ci),
        "gap_to_identity": (mstat, gap),
        "gap_to_identity_ci": (mstat + ("bound",), gap_ci),
        "corr_mean_mediated": (mstat, med_m),
        "corr_mean_mediated_ci": (mstat + ("bound",), med_m_ci),
        "gap_to_identity_mean": (mstat, gap_m),
        "gap_to_identity_mean_ci": (mstat + ("bound",), gap_m_ci),
        "bucket_n_models": (("bucket",), np.asarray(v["n_models_b"], dtype=np.int64)),
        "n_dropped_maps": (("effect", "method"), v["dropped"]),
    }
    ds = xr.Dataset(
        data,
        coords={
            "effect": list(EFFECTS),
            "method": methods,
            "hparam": names,
            "value": np.arange(v["n_v"]),
            "bucket": v["bucket_labels"],
            "image": predictions["image"].values,
            "stat": ["pearson", "spearman"],
            "bound": ["lower", "upper"],
            "value_label": (("hparam", "value"), v["value_label"].astype(str)),
            "hparam_kind": (("hparam",), ["placebo" if h == PLACEBO else "real" for h in names]),
        },
        attrs={
            "dataset": str(zoo.attrs.get("dataset", "")),
            **s.attrs(),
            "n_empty_cells": int(empty.sum()),
            "n_small_cells": int(small[:n_real].sum()),
        },
    )
    desc = {
        "ite_y": "paper 000 eq. (4): mean kernel distance of Y between treated and control pairs",
        "ite_e": "eq. (4) on E; effect=direct: maps of a permuted class, H -> Y -> E severed",
        "ite_e_mediated": "ite_e total - direct: the effect of H on E mediated by Y",
        "ite_y_null": "mean of the estimate over label permutations within the cell: its value for no effect",
        "p_value_y": "one-sided permutation p-value of ite_y, (1 + #perm >= obs) / (1 + P)",
        "small_cell": "fewer than min_models treated or control models: left out of the correlations",
        "cate_y": "mean of ite_y over the probe images (the 0-100 bucket: the ATE)",
        "corr": "correlation of ITE_Y and ITE_E pooled over the bucket's real (hparam, value, image) entries",
        "corr_hparam": "correlation of ITE_Y and ITE_E over one hyperparameter's (value, image) entries",
        "corr_mean": "mean of corr_hparam over the real hyperparameters (the paper's aggregation)",
        "corr_mean_band": "std / sqrt(n) of corr_hparam over the real hyperparameters",
        "corr_mediated": "corr total - corr direct (paper 000 Fig. 4, second column)",
        "gap_to_identity": "corr_mediated of Identity minus the method's (Fig. 4, third column)",
        "n_dropped_maps": "(model, image) maps that are NaN (zero-scale maps dropped) and left out",
    }
    describe(ds, desc)
    for name in ds.data_vars:
        if name.endswith("_ci"):
            ds[name].attrs["description"] = f"{100 * s.ci_level:g} % percentile bootstrap interval of {name[:-3]} " \
                                            f"({s.bootstrap} resamples of each bucket's models)"
    return ds
