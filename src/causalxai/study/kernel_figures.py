"""What the kernel of eq. (4) sees: the inputs of paper 000 Fig. 7 and Fig. 8.

* :func:`kernel_examples` (Fig. 7): for one probe image and one treatment (by default
  dropout = 0 against dropout ≠ 0, as the paper), in a low, a mid and a top bucket, a few
  treated and control models' outputs and their pairwise dissimilarities
  ``‖φ(a) − φ(b)‖² = k(a, a) + k(b, b) − 2 k(a, b)``, whose mean is the cell's ITE.
* :func:`kernel_comparison` (Fig. 8): the ITE of one hyperparameter's values on each
  method's maps, over all models, under each kernel of :data:`causalxai.study.estimators.ite.KERNELS`,
  on the same (capped, seeded) groups.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
import xarray as xr

from causalxai.io import read_rows
from causalxai.study.estimators.ite import KERNELS, gram, ite
from causalxai.study.estimators.treatments import LOG_ROUNDED, treatment_groups, treatment_levels
from causalxai.zoo.hparams import hparam_specs

__all__ = ["KernelExampleSettings", "kernel_examples", "kernel_comparison"]


@dataclass(frozen=True)
class KernelExampleSettings:
    """What Fig. 7 shows (paper 000: dropout = 0 against dropout ≠ 0 on the first probe image).

    Attributes:
        hparam: the treated hyperparameter.
        value: its treated value (a label of
            :func:`causalxai.study.estimators.treatments.treatment_levels`); the control is every other value.
        image: the probe image (index).
        n: treated and control models drawn per bucket (at most).
        seed: seeds the draw.
        log_rounding: hyperparameters rounded to markers in log space.
    """

    hparam: str = "dropout"
    value: str = "0"
    image: int = 0
    n: int = 10
    seed: int = 0
    log_rounding: Sequence[str] = LOG_ROUNDED

    @classmethod
    def from_params(cls, fig7: Mapping[str, Any], seed: int, log_rounding: Sequence[str]) -> KernelExampleSettings:
        """From the rule's params: ``fig7`` (``hparam``, ``value``, ``image``, optional ``n``), ``seed``
        and the effects' ``log_rounding``."""
        keys = ("hparam", "value", "image", "n")
        return cls(**{k: fig7[k] for k in keys if k in fig7}, seed=int(seed), log_rounding=tuple(log_rounding))


def _dissimilarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """RBF (fixed γ = 1/d) ``‖φ(a) − φ(b)‖²`` between rows of ``a (n, d)`` and ``b (m, d)``."""
    k = gram(torch.as_tensor(a[None], dtype=torch.float64), torch.as_tensor(b[None], dtype=torch.float64), "rbf")[0]
    return (2 - 2 * k).numpy()


def kernel_examples(
    zoo: xr.Dataset,
    buckets: xr.Dataset,
    predictions: xr.Dataset,
    maps: xr.Dataset | None = None,
    settings: KernelExampleSettings = KernelExampleSettings(),
    label: int | None = None,
) -> xr.Dataset:
    """Fig. 7's data: per chosen bucket (low, mid, top) up to ``n`` treated and ``n``
    control models' Y (and E, if ``maps`` is given) on probe image ``image``, and their
    dissimilarity matrices ``d_y(bucket, treated, control)``, ``d_e``.

    The top bucket is the best one with at least two treated and two control models;
    ``label`` is the image's true class (framed in the figure); ``settings`` the treatment,
    image and draw (:class:`KernelExampleSettings`).
    """
    hparam, value, image, n, seed = settings.hparam, settings.value, settings.image, settings.n, settings.seed
    log_rounding = settings.log_rounding
    lv, labels = treatment_levels(hparam, zoo[hparam].values, log_rounding,
                                  spec=hparam_specs(zoo.attrs, log_rounding).get(hparam))
    if value not in labels:
        raise ValueError(f"{hparam} has no value {value!r} in this zoo; its values: {labels}")
    v = labels.index(value)
    bucket = np.asarray(buckets["bucket"].values)
    names = [str(b) for b in buckets["bucket_label"].values]
    ok = [b for b in range(len(names))
          if ((bucket == b) & (lv == v)).sum() >= 2 and ((bucket == b) & (lv != v)).sum() >= 2]
    if not ok:
        raise ValueError(f"no bucket has two models with {hparam} = {value} and two without")
    chosen = list(dict.fromkeys([ok[0], ok[len(ok) // 2], ok[-1]]))
    rng = np.random.default_rng([seed, 0xF167])
    prob = np.asarray(predictions["prob"].values[:, image])
    t_sel, c_sel = [], []
    for b in chosen:
        t = np.flatnonzero((bucket == b) & (lv == v))
        c = np.flatnonzero((bucket == b) & (lv != v))
        t_sel.append(np.sort(rng.choice(t, min(n, t.size), replace=False)))
        c_sel.append(np.sort(rng.choice(c, min(n, c.size), replace=False)))
    e = None
    if maps is not None:  # only the drawn models' maps (a lazily opened file reads only them)
        drawn = np.unique(np.concatenate(t_sel + c_sel))
        e = np.full((prob.shape[0], maps.sizes["y"] * maps.sizes["x"]), np.nan, dtype=np.float32)
        e[drawn] = read_rows(maps["E"].sel({"effect": "total"}).isel({"image": image}), "model", drawn
                             ).reshape(drawn.size, -1)
    k = max(max(len(t) for t in t_sel), max(len(c) for c in c_sel))
    shape = (len(chosen), k, k)
    d_y = np.full(shape, np.nan)
    d_e = np.full(shape, np.nan)
    y_t = np.full((len(chosen), k, prob.shape[-1]), np.nan)
    y_c = np.full_like(y_t, np.nan)
    model_t = np.full((len(chosen), k), -1)
    model_c = np.full((len(chosen), k), -1)
    for i, (t, c) in enumerate(zip(t_sel, c_sel)):
        d_y[i, : t.size, : c.size] = _dissimilarity(prob[t], prob[c])
        y_t[i, : t.size], y_c[i, : c.size] = prob[t], prob[c]
        model_t[i, : t.size], model_c[i, : c.size] = t, c
        if e is not None:
            ok_t, ok_c = np.isfinite(e[t]).all(-1), np.isfinite(e[c]).all(-1)
            d = np.full((t.size, c.size), np.nan)
            if ok_t.any() and ok_c.any():
                d[np.ix_(ok_t, ok_c)] = _dissimilarity(e[t][ok_t], e[c][ok_c])
            d_e[i, : t.size, : c.size] = d
    ds = xr.Dataset(
        {
            "d_y": (("bucket", "treated", "control"), d_y),
            "d_e": (("bucket", "treated", "control"), d_e),
            "y_treated": (("bucket", "treated", "class"), y_t),
            "y_control": (("bucket", "control", "class"), y_c),
            "model_treated": (("bucket", "treated"), model_t),
            "model_control": (("bucket", "control"), model_c),
        },
        coords={"bucket": [names[b] for b in chosen], "class": np.arange(prob.shape[-1])},
        attrs={"hparam": hparam, "value": value, "image": int(image), "label": -1 if label is None else int(label),
               "method": "" if maps is None else str(maps.attrs.get("method", "")), "kernel": "rbf, gamma = 1/d"},
    )
    return ds


def _image_major(maps: xr.DataArray, models: np.ndarray) -> torch.Tensor:
    """``maps(model, image, y, x)`` of ``models`` as ``(image, model, pixel)``."""
    e = read_rows(maps, "model", models) if maps.dims[0] == "model" else np.asarray(maps.isel({"model": models}).values)
    return torch.as_tensor(e.reshape(e.shape[0], e.shape[1], -1).transpose(1, 0, 2))


def kernel_comparison(
    zoo: xr.Dataset,
    explanations: Mapping[str, xr.Dataset],
    hparam: str = "optimizer",
    cap: int = 100,
    seed: int = 0,
    kernels=KERNELS,
    log_rounding=LOG_ROUNDED,
) -> pd.DataFrame:
    """Fig. 8's data: rows (kernel, method, value, image, ite) for every value of ``hparam``
    (treated: the value, control: the others, over all models, each capped at ``cap`` by the
    seeded subsample of :func:`causalxai.study.estimators.treatments.treatment_groups`, shared by every
    kernel and method). Maps that are NaN are left out of their image's groups."""
    lv, labels = treatment_levels(hparam, zoo[hparam].values, log_rounding,
                                  spec=hparam_specs(zoo.attrs, log_rounding).get(hparam))
    groups = treatment_groups(lv, len(labels), np.zeros(lv.size, int), 1, cap, [seed, 0xF168])
    maps = {m: ds["E"].sel({"effect": "total"}) for m, ds in explanations.items()}
    rows = []
    for g in groups:
        for m, da in maps.items():  # only the group's models (a lazily opened file reads only them)
            t, c = _image_major(da, g.treated), _image_major(da, g.control)
            for kern in kernels:  # every image at once; a NaN map drops out of its image
                rows += [{"kernel": kern, "method": m, "value": labels[g.value], "image": i, "ite": float(x)}
                         for i, x in enumerate(ite(t, c, kern).numpy())]
    return pd.DataFrame(rows, columns=["kernel", "method", "value", "image", "ite"])
