"""The effects step: ITE_Y and ITE_E for every hyperparameter, value, bucket and image,
and their correlations (paper 000 eq. 4, Fig. 2-3).

``effects.nc`` holds

* ``ite_y(hparam, value, bucket, image)``: the effect of ``hparam = value`` (w.r.t. every
  other value, within the bucket) on the prediction Y;
* ``ite_e(method, hparam, value, bucket, image)``: the same on each explanation E, with
  ``identity`` (E := Y) as the reference method;
* ``n_treated``/``n_control(hparam, value, bucket)``: the models each cell used (after
  the cap); cells without a treated or a control model are NaN, and counted;
* ``corr(method, bucket, stat)``: Pearson and Spearman correlation of ITE_Y and ITE_E over
  all (hyperparameter, value, image) entries of the bucket, and ``corr_hparam(method,
  hparam, bucket, stat)`` per hyperparameter;
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
    """Build ``effects.nc`` (see the module docstring) from the earlier steps' results."""
    bucket = np.asarray(buckets["bucket"].values)
    n_b = buckets.sizes["bucket_label"]
    y = np.asarray(predictions["prob"].values)
    methods = ["identity", *explanations]
    levels_all = {}
    for name in HPARAMS:
        lv, labels = treatment_levels(name, zoo[name].values)
        if len(set(lv.tolist())) > 1:
            levels_all[name] = (lv, labels)
    if not levels_all:
        raise ValueError("no hyperparameter takes two values in this zoo: there is no treatment to estimate")
    names = list(levels_all)
    n_v = max(len(labels) for _, labels in levels_all.values())
    n_i = y.shape[1]
    ite_y = np.full((len(names), n_v, n_b, n_i), np.nan)
    ite_e = np.full((len(methods), len(names), n_v, n_b, n_i), np.nan)
    n_t = np.zeros((len(names), n_v, n_b), dtype=np.int64)
    n_c = np.zeros_like(n_t)
    value_label = np.full((len(names), n_v), "", dtype=object)
    # Small buckets: one Gram matrix per (output, bucket), shared by every hyperparameter's
    # cells. Large buckets (the paper's 30k-model zoos): each cell's capped groups only,
    # since a bucket's Gram matrix grows with its models squared.
    if np.bincount(bucket).max() <= MAX_GRAM_MODELS:
        grams_y = BucketGrams(y, bucket)
        grams_e = {m: BucketGrams(np.asarray(explanations[m]["E"].values), bucket) for m in methods[1:]}

        def effects_of(output, groups):
            return bucket_cell_effects(grams_y if output is None else grams_e[output], groups, bucket, kernel)
    else:

        def effects_of(output, groups):
            values = y if output is None else np.asarray(explanations[output]["E"].values)
            return cell_effects(values, groups, kernel)

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
        ite_y[h, v_idx, b_idx] = effects_of(None, groups)
        ite_e[0, h, v_idx, b_idx] = ite_y[h, v_idx, b_idx]
        for k, method in enumerate(methods[1:], start=1):
            ite_e[k, h, v_idx, b_idx] = effects_of(method, groups)

    def corr(sel: slice | int) -> np.ndarray:
        out = np.full((len(methods), n_b, 2), np.nan)
        yy = ite_y[sel].reshape(-1, n_b, n_i) if isinstance(sel, slice) else ite_y[sel]
        for k in range(len(methods)):
            ee = ite_e[k][sel].reshape(-1, n_b, n_i) if isinstance(sel, slice) else ite_e[k][sel]
            # cells x images per bucket, NaN cells (no treated or control model) left out
            cells_y = np.moveaxis(yy, 1, 0).reshape(n_b, -1)
            cells_e = np.moveaxis(ee, 1, 0).reshape(n_b, -1)
            for b in range(n_b):
                ok = np.isfinite(cells_y[b]) & np.isfinite(cells_e[b])
                out[k, b] = bucket_correlations(cells_y[b][ok][None], cells_e[b][ok][None], np.zeros(1, int), 1)[0]
        return out

    ds = xr.Dataset(
        {
            "ite_y": (("hparam", "value", "bucket", "image"), ite_y),
            "ite_e": (("method", "hparam", "value", "bucket", "image"), ite_e),
            "n_treated": (("hparam", "value", "bucket"), n_t),
            "n_control": (("hparam", "value", "bucket"), n_c),
            "corr": (("method", "bucket", "stat"), corr(slice(None))),
            "corr_hparam": (("method", "hparam", "bucket", "stat"), np.stack([corr(h) for h in range(len(names))], axis=1)),
        },
        coords={
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
    ds["corr"].attrs["description"] = "correlation of ITE_Y and ITE_E over the bucket's (hparam, value, image) entries"
    return ds
