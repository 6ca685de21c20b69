"""The effects step: ITE_Y and ITE_E for every hyperparameter, value, bucket and image,
their correlations, and the split into direct and mediated effects (paper 000 eq. 4, Fig. 2-4).

``effects.nc`` holds

* ``ite_y(hparam, value, bucket, image)``: the effect of ``hparam = value`` (w.r.t. every
  other value, within the bucket) on the prediction Y;
* ``ite_e(effect, method, hparam, value, bucket, image)``: the same on each explanation
  E, with ``identity`` (E := Y) as the reference method. ``effect="total"`` uses the
  maps of each model's predicted class; ``effect="direct"`` those of a randomly permuted
  class (:mod:`causalxai.explain.suite`), the H → Y → E path severed (for Identity: the
  permuted score vector). ``ite_e_mediated(method, ...)`` = total − direct;
* ``n_treated``/``n_control(hparam, value, bucket)``: the models each cell used (after
  the cap); cells without a treated or a control model are NaN, counted in the attribute
  ``n_empty_cells`` and left out of the correlations; a bucket of fewer than 2 models (no
  cell at all) is an error that names it;
* ``corr(effect, method, bucket, stat)``: Pearson and Spearman correlation of ITE_Y and
  ITE_E over all (hyperparameter, value, image) entries of the bucket, and
  ``corr_hparam(effect, method, hparam, bucket, stat)`` per hyperparameter (paper Fig. 3
  right, Fig. 4 first column, Fig. 16);
* ``corr_mediated(method, bucket, stat)`` = corr(total) − corr(direct): how much of E's
  agreement with Y flows through Y (Fig. 4, second column), and ``gap_to_identity(method,
  bucket, stat)`` = corr_mediated(identity) − corr_mediated(method), each method's
  distance from the ideal explanation (Fig. 4, third column);
* coordinate ``value_label(hparam, value)``: the value's label ('' where a hyperparameter
  has fewer values than the widest one).

Hyperparameters with a single value in the zoo (e.g. ``b_init``) have no control group
and are left out. Select a method with ``ds.sel({"method": "gradient"})``: ``method=`` is a
keyword of :meth:`xarray.Dataset.sel` itself.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import xarray as xr

from causalxai.effects.estimate import BucketGrams, bucket_cell_effects, bucket_correlations, cell_effects
from causalxai.effects.groups import treatment_groups, treatment_levels
from causalxai.explain.suite import EFFECTS
from causalxai.zoo.hparams import HPARAMS

__all__ = ["compute_effects", "MAX_GRAM_MODELS"]

#: buckets up to this many models share one Gram matrix per output; larger ones are
#: evaluated cell by cell on the capped groups (memory grows with the bucket squared)
MAX_GRAM_MODELS = 512


def compute_effects(
    zoo: xr.Dataset,
    buckets: xr.Dataset,
    predictions: xr.Dataset,
    explanations: Mapping[str, xr.Dataset],
    *,
    kernel: str = "rbf",
    cap: int = 100,
    seed: int = 0,
) -> xr.Dataset:
    """Build ``effects.nc`` (see the module docstring) from the earlier steps' results.

    ``predictions`` needs ``prob`` and ``prob_direct``; each explanation dataset
    ``E(model, effect, image, y, x)`` with ``effect`` = total, direct.
    """
    bucket = np.asarray(buckets["bucket"].values)
    n_b = buckets.sizes["bucket_label"]
    sizes = np.bincount(bucket, minlength=n_b)
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
        if "effect" not in e["E"].dims or list(e["effect"].values) != list(EFFECTS):
            raise ValueError(f"explanations/{m}.nc has no effect dimension {list(EFFECTS)}: "
                             "it was made by an older version; delete it and re-run")
    methods = ["identity", *explanations]
    # every output compared across models: (effect, method) -> array (model, image, ...)
    outputs = {("total", "identity"): np.asarray(predictions["prob"].values),
               ("direct", "identity"): np.asarray(predictions["prob_direct"].values)}
    for m, e in explanations.items():
        for eff in EFFECTS:
            outputs[(eff, m)] = np.asarray(e["E"].sel(effect=eff).values)
    levels_all = {}
    for name in HPARAMS:
        lv, labels = treatment_levels(name, zoo[name].values)
        if len(set(lv.tolist())) > 1:
            levels_all[name] = (lv, labels)
    if not levels_all:
        raise ValueError("no hyperparameter takes two values in this zoo: there is no treatment to estimate")
    names = list(levels_all)
    n_v = max(len(labels) for _, labels in levels_all.values())
    n_i = predictions.sizes["image"]
    ite_e = np.full((len(EFFECTS), len(methods), len(names), n_v, n_b, n_i), np.nan)
    n_t = np.zeros((len(names), n_v, n_b), dtype=np.int64)
    n_c = np.zeros_like(n_t)
    value_label = np.full((len(names), n_v), "", dtype=object)
    # Small buckets: one Gram matrix per (output, bucket), shared by every hyperparameter's
    # cells. Large buckets (the paper's 30k-model zoos): each cell's capped groups only,
    # since a bucket's Gram matrix grows with its models squared.
    shared_grams = np.bincount(bucket).max() <= MAX_GRAM_MODELS
    grams = {key: BucketGrams(v, bucket) for key, v in outputs.items()} if shared_grams else {}

    def effects_of(key, groups):
        if shared_grams:
            return bucket_cell_effects(grams[key], groups, bucket, kernel)
        return cell_effects(outputs[key], groups, kernel)

    for h, name in enumerate(names):
        lv, labels = levels_all[name]
        value_label[h, : len(labels)] = labels
        groups = treatment_groups(lv, len(labels), bucket, n_b, cap, seed + h)
        if not groups:
            continue
        v_idx = np.array([g.value for g in groups])
        b_idx = np.array([g.bucket for g in groups])
        n_t[h, v_idx, b_idx] = [g.treated.size for g in groups]
        n_c[h, v_idx, b_idx] = [g.control.size for g in groups]
        for i, eff in enumerate(EFFECTS):
            for k, method in enumerate(methods):
                ite_e[i, k, h, v_idx, b_idx] = effects_of((eff, method), groups)
    ite_y = ite_e[0, 0]

    def corr(h: int | None) -> np.ndarray:
        """(effect, method, bucket, stat) over all hyperparameters, or hyperparameter h."""
        sel = slice(None) if h is None else slice(h, h + 1)
        # cells x images per bucket, NaN cells (no treated or control model) left out
        cells_y = np.moveaxis(ite_y[sel], 2, 0).reshape(n_b, -1)
        out = np.full((len(EFFECTS), len(methods), n_b, 2), np.nan)
        for i in range(len(EFFECTS)):
            for k in range(len(methods)):
                cells_e = np.moveaxis(ite_e[i, k][sel], 2, 0).reshape(n_b, -1)
                for b in range(n_b):
                    ok = np.isfinite(cells_y[b]) & np.isfinite(cells_e[b])
                    out[i, k, b] = bucket_correlations(cells_y[b][ok][None], cells_e[b][ok][None], np.zeros(1, int), 1)[0]
        return out

    c = corr(None)
    mediated = c[0] - c[1]
    cell = ("hparam", "value", "bucket", "image")
    ds = xr.Dataset(
        {
            "ite_y": (cell, ite_y),
            "ite_e": (("effect", "method", *cell), ite_e),
            "ite_e_mediated": (("method", *cell), ite_e[0] - ite_e[1]),
            "n_treated": (cell[:3], n_t),
            "n_control": (cell[:3], n_c),
            "corr": (("effect", "method", "bucket", "stat"), c),
            "corr_hparam": (("effect", "method", "hparam", "bucket", "stat"),
                            np.stack([corr(h) for h in range(len(names))], axis=2)),
            "corr_mediated": (("method", "bucket", "stat"), mediated),
            "gap_to_identity": (("method", "bucket", "stat"), mediated[:1] - mediated),
        },
        coords={
            "effect": list(EFFECTS),
            "method": methods,
            "hparam": names,
            "value": np.arange(n_v),
            "bucket": list(buckets["bucket_label"].values),
            "image": predictions["image"].values,
            "stat": ["pearson", "spearman"],
            "value_label": (("hparam", "value"), value_label.astype(str)),
        },
        attrs={
            "dataset": str(zoo.attrs.get("dataset", "")),
            "kernel": kernel,
            "max_models_per_group": cap,
            "n_empty_cells": int(((n_t == 0) | (n_c == 0)).sum()),
        },
    )
    ds["ite_y"].attrs["description"] = "paper 000 eq. (4): mean kernel distance of Y between treated and control pairs"
    ds["ite_e"].attrs["description"] = "eq. (4) on E; effect=direct: maps of a permuted class, H -> Y -> E severed"
    ds["ite_e_mediated"].attrs["description"] = "ite_e total - direct: the effect of H on E mediated by Y"
    ds["corr"].attrs["description"] = "correlation of ITE_Y and ITE_E over the bucket's (hparam, value, image) entries"
    ds["corr_mediated"].attrs["description"] = "corr total - corr direct (paper 000 Fig. 4, second column)"
    ds["gap_to_identity"].attrs["description"] = "corr_mediated of Identity minus the method's (Fig. 4, third column)"
    return ds
