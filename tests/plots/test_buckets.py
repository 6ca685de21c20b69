"""The accuracy-bucket figure (plots.buckets): written atomically from buckets.nc."""

import numpy as np
import xarray as xr
from matplotlib.image import imread

from causalxai.plots.buckets import plot_accuracy_buckets
from causalxai.study.buckets import make_buckets


def test_writes_a_png_and_leaves_no_partial_file(tmp_path):
    rng = np.random.default_rng(1)
    zoo = xr.Dataset({"test_accuracy": ("model", rng.uniform(0.1, 0.99, 200))},
                     coords={"model": np.arange(200)}, attrs={"dataset": "toy"})
    buckets = make_buckets(zoo, [0, 20, 40, 60, 80, 90, 95, 99, 100], seed=0)
    before = buckets.copy(deep=True)
    plot_accuracy_buckets(buckets, tmp_path / "b.png")
    h, w = imread(tmp_path / "b.png").shape[:2]
    assert w > 600 and h > 300
    xr.testing.assert_identical(buckets, before)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.png"]
