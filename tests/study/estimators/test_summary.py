"""CATE and ATE tables against the dataset they are read from."""

from dataclasses import replace

import numpy as np

from causalxai.study.effects import compute_effects
from causalxai.study.estimators.summary import cate_table


def test_cate_and_ate_rows(fast_effects, effect_inputs):
    zoo, buckets, pred, e = effect_inputs(30, 3, 3, seed=0)
    ds = compute_effects(zoo, buckets, pred, {"gradient": e}, replace(fast_effects, cap=None))
    cate = cate_table(ds)
    ate = cate_table(ds, ate=True)
    assert set(ate["bucket"]) == {"0-100"} and set(cate["bucket"]) == {"0-50", "50-100", "0-100"}
    assert set(cate["output"]) == {"Y", "identity", "gradient"}
    assert not ((cate["output"] == "identity") & (cate["effect"] == "total")).any()  # that is Y
    row = cate[(cate.hparam == "optimizer") & (cate.value == "sgd") & (cate.bucket == "0-50")
               & (cate.output == "gradient") & (cate.effect == "direct")].iloc[0]
    sel = {"hparam": "optimizer", "value": 2, "bucket": "0-50"}
    np.testing.assert_allclose(row.estimate,
                               float(ds["ite_e"].sel({"effect": "direct", "method": "gradient", **sel}).mean()))
    lo, hi = ds["cate_e_ci"].sel({"effect": "direct", "method": "gradient", **sel}).values
    assert (row.lower, row.upper) == (lo, hi) and row.lower <= row.estimate <= row.upper
    assert row.n_treated == int(ds["n_treated"].sel(sel))
    assert set(cate[cate.hparam == "placebo"]["hparam_kind"]) == {"placebo"}
