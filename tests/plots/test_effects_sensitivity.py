"""The sensitivity figure (rule effects_sensitivity): drawn from the sensitivity table."""

import xarray as xr

from causalxai.plots.effects_sensitivity import plot_sensitivity
from causalxai.study.effects import EffectsSettings
from causalxai.study.effects_sensitivity import SensitivityGrid, sensitivity_table
from causalxai.study.explain import ExplainSettings


def test_sensitivity_figure_is_written(tmp_path, effect_inputs):
    zoo, buckets, pred, e = effect_inputs(30, 3, 4, seed=2)
    raw = xr.Dataset({"attribution": e["E"] - 0.5}, coords=e.coords)  # signed raw maps
    grid = SensitivityGrid(bandwidths=["fixed", "median_bucket"], estimators=["eq4", "mmd_unbiased"], bootstrap=10)
    table = sensitivity_table(zoo, buckets, pred, {"gradient": raw}, ExplainSettings(),
                              EffectsSettings(min_models=2, cap=None), grid)
    before = table.copy()
    path = tmp_path / "s.png"
    plot_sensitivity(table, path)
    assert table.equals(before)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
