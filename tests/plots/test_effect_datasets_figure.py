"""Paper 000 Fig. 16 (rule effect_datasets_figure): one row of correlation panels per data set."""

from __future__ import annotations

from dataclasses import replace

import pytest
import xarray as xr

from causalxai.plots.effect_datasets_figure import plot_correlations_by_dataset
from causalxai.study.effects import compute_effects

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def effects(fast_effects, effect_inputs):
    zoo, buckets, pred, e = effect_inputs(40, 4, 4, seed=0, effect=1.0)
    return compute_effects(zoo, buckets, pred, {"gradient": e, "grad_cam": e.copy()}, replace(fast_effects, cap=None))


def test_writes_png_and_leaves_its_inputs_untouched(effects, tmp_path):
    before = effects.copy(deep=True)
    fig = plot_correlations_by_dataset({"a": effects, "b": effects}, tmp_path / "datasets.png")
    xr.testing.assert_identical(effects, before)
    data = (tmp_path / "datasets.png").read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 10_000
    assert len(fig.axes) >= 4  # two rows (data sets) of two panels (Pearson, Spearman)


def test_no_dataset_raises(tmp_path):
    with pytest.raises(ValueError, match="at least one"):
        plot_correlations_by_dataset({}, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
