"""CATE and ATE tables of the effects step (paper 000 §2.2: "extensions to CATE and ATE,
aggregated over x ~ X, follow naturally").

The conditional average treatment effect of ``hparam = value`` in a bucket is the mean of
its ITE over the probe images (``cate_y``, ``cate_e`` in ``effects.nc``, with bootstrap
intervals); in the bucket ``0-100`` of all models it is the average treatment effect.
:func:`cate_table` lays them out as one row per (hyperparameter, value, bucket, output,
effect; Identity's total effect is the row of ``Y``), next to the cell's group sizes, its small-cell
flag and the mean permutation level of no effect.
"""

from __future__ import annotations

import pandas as pd
import xarray as xr

__all__ = ["cate_table"]


def cate_table(effects: xr.Dataset, ate: bool = False) -> pd.DataFrame:
    """CATE rows (every bucket) or, with ``ate``, the ATE rows (the bucket of all models).

    Columns: ``hparam, hparam_kind, value, bucket, output, effect, estimate, lower, upper,
    null_mean, n_treated, n_control, small_cell``; ``output`` is ``Y`` or a method.
    Cells without models (values a hyperparameter does not have) are left out.
    """
    from causalxai.study.effects import GLOBAL_BUCKET

    buckets = [str(b) for b in effects["bucket"].values]
    keep = (buckets if not ate else [GLOBAL_BUCKET] if GLOBAL_BUCKET in buckets
            else buckets[-1:] if len(buckets) == 1 else [])
    ds = effects.sel({"bucket": keep})
    cell = ["hparam", "value", "bucket"]
    # Y (Identity's total effect) as one more "method" of effect total, then every (effect, method)
    y = xr.Dataset({"estimate": ds["cate_y"], "lower": ds["cate_y_ci"].sel(bound="lower", drop=True),
                    "upper": ds["cate_y_ci"].sel(bound="upper", drop=True),
                    "null_mean": ds["ite_y_null"].mean("image", skipna=True)})
    e = xr.Dataset({"estimate": ds["cate_e"], "lower": ds["cate_e_ci"].sel(bound="lower", drop=True),
                    "upper": ds["cate_e_ci"].sel(bound="upper", drop=True),
                    "null_mean": ds["ite_e_null"].mean("image", skipna=True)})
    frame_y = y.to_dataframe().reset_index().assign(output="Y", effect="total")
    frame_e = e.to_dataframe().reset_index().rename(columns={"method": "output"})
    frame_e = frame_e[~((frame_e["output"] == "identity") & (frame_e["effect"] == "total"))]  # that is Y
    cells = xr.Dataset({"n_treated": ds["n_treated"], "n_control": ds["n_control"], "small_cell": ds["small_cell"],
                        "label": ds["value_label"], "kind": ds["hparam_kind"]}).to_dataframe().reset_index()
    cells = cells[(cells["label"] != "") & (cells["n_treated"] > 0) & (cells["n_control"] > 0)]
    out = pd.concat([frame_y, frame_e], ignore_index=True).merge(cells, on=cell)
    rank_h = {h: i for i, h in enumerate(effects["hparam"].values)}
    rank_b = {b: i for i, b in enumerate(keep)}
    out = out.assign(_h=out["hparam"].map(rank_h), _b=out["bucket"].map(rank_b))
    out = out.sort_values(["_h", "value", "_b"], kind="stable")  # hparam, value, bucket; outputs as listed
    out = out.assign(value=out["label"], hparam_kind=out["kind"], hparam=out["hparam"].astype(str),
                     bucket=out["bucket"].astype(str))
    columns = ["hparam", "hparam_kind", "value", "bucket", "output", "effect", "estimate", "lower", "upper",
               "null_mean", "n_treated", "n_control", "small_cell"]
    return out[columns].reset_index(drop=True)
