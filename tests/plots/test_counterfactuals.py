"""Counterfactual figure (paper 004 App. C, Fig. 8) on synthetic datasets of the steps' schemas."""

import numpy as np
import pytest
import xarray as xr

from causalxai.plots.counterfactuals import counterfactual_frame, plot_counterfactuals

SIDE = 6
SAMPLES = [4, 8, 15]


def cf_dataset():
    rng = np.random.default_rng(0)
    orig = rng.uniform(-1, 1, (3, SIDE, SIDE)).astype(np.float32)
    cf = rng.uniform(-1, 1, (3, SIDE, SIDE)).astype(np.float32)
    return xr.Dataset(
        {
            "original": (("sample", "y", "x"), orig),
            "counterfactual": (("sample", "y", "x"), cf),
            "difference": (("sample", "y", "x"), cf - orig),
            "label": ("sample", [1, 2, 3]),
            "pred": ("sample", [7, 2, 3]),
            "target": ("sample", [1, 5, 0]),
            "pred_counterfactual": ("sample", [1, 5, 9]),
            "valid": ("sample", [True, True, False]),
            "proximity_l1": ("sample", [3.5, 2.0, 9.0]),
        },
        coords={"sample": SAMPLES, "kind": ("sample", ["misclassified", "correct", "correct"])},
    )


def tracer_dataset():
    rng = np.random.default_rng(1)
    attr = rng.normal(size=(2, 3, SIDE, SIDE))
    diff = attr[1] - attr[0]
    changed = np.abs(diff) >= 0.5 * np.abs(diff).max(axis=(1, 2), keepdims=True)
    return xr.Dataset(
        {
            "attribution": (("version", "sample", "y", "x"), attr),
            "difference": (("sample", "y", "x"), diff),
            "changed": (("sample", "y", "x"), changed),
            "n_groups": (("version", "sample"), [[3, 4, 2], [5, 4, 3]]),
        },
        coords={"version": ["original", "counterfactual"], "sample": SAMPLES},
    )


def test_frame_matches_the_datasets():
    frame = counterfactual_frame(cf_dataset(), tracer_dataset(), max_samples=2)
    assert frame["sample"].tolist() == [4, 8] and frame["kind"].tolist() == ["misclassified", "correct"]
    assert frame["n_groups_counterfactual"].tolist() == [5, 4]
    assert frame["n_changed"].tolist() == tracer_dataset()["changed"].sum(("y", "x")).values[:2].tolist()
    assert counterfactual_frame(cf_dataset(), samples=[15])["valid"].tolist() == [False]
    with pytest.raises(ValueError, match="sample 99"):
        counterfactual_frame(cf_dataset(), samples=[99])
    with pytest.raises(ValueError, match="lacks original"):
        counterfactual_frame(cf_dataset().drop_vars("original"))


def test_plot_writes_png(tmp_path):
    path = tmp_path / "cf.png"
    fig = plot_counterfactuals(cf_dataset(), tracer_dataset(), path, max_samples=3)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    gids = {im.get_gid() for ax in fig.axes for im in ax.get_images()}
    assert {"original 4", "counterfactual 15", "attribution counterfactual 8", "attribution difference 15"} <= gids
    axes = [ax for ax in fig.axes if ax.get_images()]
    shown = next(ax for ax in axes if ax.get_images()[0].get_gid() == "attribution original 8")
    assert np.allclose(shown.get_images()[0].get_array(), tracer_dataset()["attribution"].values[0, 1])
    plot_counterfactuals(cf_dataset(), None, tmp_path / "no_tracer.png", samples=[8])
    assert (tmp_path / "no_tracer.png").exists()


def test_plot_adds_the_unrefined_and_wachter_columns(tmp_path):
    cf = cf_dataset()
    raw = np.asarray(cf["original"].values)[:, None] * 0.5
    cf = cf.assign(raw_counterfactual_inputs=(("sample", "channel", "y", "x"), raw),
                   raw_valid=("sample", [True, False, True]), raw_pred_counterfactual=("sample", [1, 3, 0]),
                   raw_proximity_l1=("sample", [7.0, 8.0, 9.0]))
    wachter = xr.Dataset({"counterfactual_inputs": (("sample", "channel", "y", "x"), raw[::-1].copy()),
                          "valid": ("sample", [True, True, True]), "pred_counterfactual": ("sample", [1, 5, 0]),
                          "proximity_l1": ("sample", [1.0, 2.0, 3.0])}, coords={"sample": SAMPLES})
    fig = plot_counterfactuals(cf, tracer_dataset(), tmp_path / "cf.png", max_samples=2, wachter_ds=wachter)
    by_gid = {im.get_gid(): (ax, im) for ax in fig.axes for im in ax.get_images()}
    assert np.allclose(by_gid["Wachter search 8"][1].get_array(), raw[::-1][1, 0])
    assert np.allclose(by_gid["GAN output (unrefined) 4"][1].get_array(), raw[0, 0])
    assert "ℓ1 2.0" in by_gid["Wachter search 8"][0].get_title()
    assert "attribution difference 8" in by_gid  # the TRACER columns follow
    labels = [ax.get_xlabel() for ax in fig.axes if ax.get_xlabel()]
    assert labels[:5] == ["original", "counterfactual", "GAN output (unrefined)", "Wachter search", "difference"]
    with pytest.raises(ValueError, match="Wachter search"):
        plot_counterfactuals(cf, None, tmp_path / "x.png", samples=[4], wachter_ds=wachter.sel(sample=[8, 15]))
