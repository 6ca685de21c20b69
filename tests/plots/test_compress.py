"""Figure of the compress step (paper 004 Table 1) on a synthetic compress.nc."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from matplotlib.image import imread

from causalxai.plots.compress import compression_frame, plot_compression

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def make_ds() -> xr.Dataset:
    names = ["original", "C1", "C2", "C3"]
    n = np.array([11_696_202, 73_642, 9_479_274, 9_495_274])
    return xr.Dataset(
        {
            "n_params": ("model", n),
            "test_accuracy": ("model", [0.981, 0.975, 0.978, 0.983]),
            "compression": ("model", 1 - n / n[0]),
            "n_nodes": ("model", [8, 3, 4, 5]),
            "coverage": ("model", [np.nan, 0.08, 0.81, 1.0]),
        },
        coords={"model": names},
    )


def test_frame_holds_the_plotted_numbers():
    df = compression_frame(make_ds())
    assert df["model"].tolist() == ["original", "C1", "C2", "C3"]
    assert df["label"].tolist()[:2] == ["original", "C1\n3 nodes, 8%"]
    assert df["compression"].iloc[0] == 0.0
    assert df["compression"].iloc[1] == pytest.approx(1 - 73_642 / 11_696_202)
    with pytest.raises(ValueError, match="compress.nc"):
        compression_frame(make_ds().drop_vars("test_accuracy"))


def test_plot_writes_a_png(tmp_path):
    path = tmp_path / "figs" / "compress.png"
    fig = plot_compression(make_ds(), path)
    assert path.read_bytes()[:8] == PNG_MAGIC
    assert imread(path).shape[1] > 500
    ax_p, ax_a = fig.axes[:2]
    assert ax_p.get_yscale() == "log"
    heights = [r.get_height() for r in ax_a.patches]
    np.testing.assert_allclose(heights, [0.981, 0.975, 0.978, 0.983])
    texts = [t.get_text() for t in ax_p.texts]
    assert any("99.4%" in t for t in texts)


def test_plot_with_controls(tmp_path):
    ds = make_ds()
    ds["kind"] = ("model", ["original", "tracer", "random_partition", "paper_table2"])
    ds["accuracy_mean"] = ("model", [0.981, 0.97, 0.96, 0.975])
    ds["accuracy_std"] = ("model", [0.0, 0.01, 0.02, 0.005])
    df = compression_frame(ds)
    assert df["kind"].tolist() == ["original", "tracer", "random_partition", "paper_table2"]
    assert df["label"].tolist()[2:] == ["C2\n4 nodes", "C3"]
    fig = plot_compression(ds, tmp_path / "c.png")
    ax_a, ax_s = fig.axes[1:3]
    np.testing.assert_allclose([r.get_height() for r in ax_a.patches], [0.981, 0.97, 0.96, 0.975])
    assert ax_s.get_xscale() == "log" and len(ax_s.get_legend().get_texts()) == 4
