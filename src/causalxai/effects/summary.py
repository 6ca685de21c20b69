"""CATE and ATE tables of the effects step (paper 000 §2.2: "extensions to CATE and ATE,
aggregated over x ~ X, follow naturally").

The conditional average treatment effect of ``hparam = value`` in a bucket is the mean of
its ITE over the probe images (``cate_y``, ``cate_e`` in ``effects.nc``, with bootstrap
intervals); in the bucket ``0-100`` of all models it is the average treatment effect.
:func:`cate_table` lays them out as one row per (hyperparameter, value, bucket, output,
effect; Identity's total effect is the row of ``Y``), next to the cell's group sizes, its small-cell flag and the mean permutation
level of no effect.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

__all__ = ["cate_table"]


def cate_table(effects: xr.Dataset, ate: bool = False) -> pd.DataFrame:
    """CATE rows (every bucket) or, with ``ate``, the ATE rows (the bucket of all models).

    Columns: ``hparam, hparam_kind, value, bucket, output, effect, estimate, lower, upper,
    null_mean, n_treated, n_control, small_cell``; ``output`` is ``Y`` or a method.
    Cells without models (values a hyperparameter does not have) are left out.
    """
    buckets = [str(b) for b in effects["bucket"].values]
    if ate:
        from causalxai.effects.table import GLOBAL_BUCKET

        keep = [GLOBAL_BUCKET] if GLOBAL_BUCKET in buckets else buckets[-1:] if len(buckets) == 1 else []
    else:
        keep = buckets
    rows = []
    ite_null = {"Y": effects["ite_y_null"].mean("image", skipna=True)}
    for eff in effects["effect"].values:
        for m in effects["method"].values:
            ite_null[(str(eff), str(m))] = effects["ite_e_null"].sel({"effect": eff, "method": m}).mean("image", skipna=True)
    outputs = [("Y", "total", effects["cate_y"], effects["cate_y_ci"], ite_null["Y"])]
    for eff in effects["effect"].values:
        for m in effects["method"].values:
            if str(m) == "identity" and str(eff) == "total":
                continue  # that is Y
            sel = {"effect": eff, "method": m}
            outputs.append((str(m), str(eff), effects["cate_e"].sel(sel), effects["cate_e_ci"].sel(sel),
                            ite_null[(str(eff), str(m))]))
    kinds = dict(zip(effects["hparam"].values.tolist(), effects["hparam_kind"].values.tolist()))
    for h in effects["hparam"].values:
        for v in effects["value"].values:
            label = str(effects["value_label"].sel(hparam=h, value=v).values)
            if not label:
                continue
            for b in keep:
                at = {"hparam": h, "value": v, "bucket": b}
                nt, nc = int(effects["n_treated"].sel(at)), int(effects["n_control"].sel(at))
                if nt == 0 or nc == 0:
                    continue
                for out, eff, est, ci, nul in outputs:
                    lo, hi = np.asarray(ci.sel(at).values, dtype=float)
                    rows.append({
                        "hparam": str(h), "hparam_kind": kinds[h], "value": label, "bucket": b, "output": out,
                        "effect": eff, "estimate": float(est.sel(at)), "lower": lo, "upper": hi,
                        "null_mean": float(nul.sel(at)), "n_treated": nt, "n_control": nc,
                        "small_cell": bool(effects["small_cell"].sel(at)),
                    })
    return pd.DataFrame(rows, columns=["hparam", "hparam_kind", "value", "bucket", "output", "effect", "estimate",
                                       "lower", "upper", "null_mean", "n_treated", "n_control", "small_cell"])
