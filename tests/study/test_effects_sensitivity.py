"""The sensitivity report: every configuration, and the one that matches a plain run equals it."""

from dataclasses import replace

import numpy as np
import pytest
import xarray as xr

from causalxai.study.effects import EffectsSettings, compute_effects
from causalxai.study.effects_sensitivity import SensitivityGrid, sensitivity_table
from causalxai.study.explain import ExplainSettings, normalise_explanations


def test_grid_rows_and_consistency(tmp_path, effect_inputs):
    zoo, buckets, pred, e = effect_inputs(30, 3, 4, seed=2)
    raw = xr.Dataset({"attribution": e["E"] - 0.5}, coords=e.coords)  # signed raw maps
    grid = SensitivityGrid(bandwidths=["fixed", "median_bucket"], estimators=["eq4", "mmd_unbiased"], bootstrap=10)
    s = EffectsSettings(min_models=2, cap=None)
    table = sensitivity_table(zoo, buckets, pred, {"gradient": raw}, ExplainSettings(), s, grid)
    configs = table[["normalisation", "bandwidth", "estimator"]].drop_duplicates()
    assert len(configs) == 2 * 2 * 2
    assert set(table["quantity"]) == {"corr", "gap_to_identity", "placebo_corr"}
    assert set(table["aggregation"]) == {"hparam_mean", "pooled", "placebo"}
    # the paper-normalised, fixed-bandwidth eq. (4) rows are those of a plain run with the same resamples
    maps = normalise_explanations(raw, "gradient", ExplainSettings())
    ds = compute_effects(zoo, buckets, pred, {"gradient": maps}, replace(s, bootstrap=10, permutations=0))
    rows = table[(table.normalisation == "paper") & (table.bandwidth == "fixed") & (table.estimator == "eq4")
                 & (table.aggregation == "hparam_mean") & (table.quantity == "corr") & (table.method == "gradient")
                 & (table.stat == "pearson")].set_index("bucket")
    ref = ds["corr_mean"].sel({"effect": "total", "method": "gradient", "stat": "pearson"})
    np.testing.assert_allclose(rows.loc[list(ref["bucket"].values), "value"].values, ref.values)
    with pytest.raises(ValueError, match="bandwidths"):
        sensitivity_table(zoo, buckets, pred, {"gradient": raw}, ExplainSettings(), s,
                          SensitivityGrid(bandwidths=["x"]))


def test_raw_maps_from_shards_give_the_same_table(tmp_path, effect_inputs):
    from causalxai.io import write_dataset

    zoo, buckets, pred, e = effect_inputs(30, 3, 4, seed=2)
    raw = xr.Dataset({"attribution": (e["E"] - 0.5).astype(np.float32)}, coords=e.coords)
    raw = raw.assign_coords(model=np.arange(30))
    paths = [tmp_path / "b.nc", tmp_path / "a.nc"]
    write_dataset(raw.isel(model=slice(13, None)), paths[0], step="explain_shard")
    write_dataset(raw.isel(model=slice(0, 13)), paths[1], step="explain_shard")
    grid = SensitivityGrid(normalisations=["paper", "public_code"], bandwidths=["fixed"], estimators=["eq4"],
                           bootstrap=5)
    s = EffectsSettings(min_models=2, cap=None)
    memory = sensitivity_table(zoo, buckets, pred, {"gradient": raw}, ExplainSettings(), s, grid)
    disk = sensitivity_table(zoo, buckets, pred, {"gradient": paths}, ExplainSettings(), s, grid)
    import pandas as pd

    pd.testing.assert_frame_equal(memory, disk)


def test_a_report_without_any_correlation_is_refused(effect_inputs, caplog):
    """Every cell small: every correlation of every configuration NaN, refused (issue 17); one
    configuration's NaN alone is a finding, logged."""
    import pandas as pd

    from causalxai.checks import DegenerateResultError
    from causalxai.study.effects_sensitivity import check_sensitivity

    zoo, buckets, pred, e = effect_inputs(20, 2, 3, seed=2)
    raw = xr.Dataset({"attribution": e["E"] - 0.5}, coords=e.coords)
    grid = SensitivityGrid(normalisations=["paper"], bandwidths=["fixed"], estimators=["eq4"], bootstrap=2)
    s = EffectsSettings(min_models=50, cap=None)
    with pytest.raises(DegenerateResultError, match=r"effects_sensitivity: every correlation of the report .* is all "
                                                    r"NaN.*effects.min_models=50"):
        sensitivity_table(zoo, buckets, pred, {"gradient": raw}, ExplainSettings(), s, grid)
    table = pd.DataFrame({"normalisation": ["paper"] * 3, "bandwidth": ["fixed", "fixed", "median_cell"],
                          "estimator": "eq4", "quantity": "corr", "value": [0.3, 0.5, np.nan]})
    check_sensitivity(table)  # one configuration without correlations: a warning
    assert "normalisation paper, bandwidth median_cell, estimator eq4" in caplog.text
