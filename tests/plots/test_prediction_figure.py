"""Paper 000 Fig. 6 (plots.prediction_figure): the plotted rows are the models' predictions."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from matplotlib.image import imread

from causalxai.plots.prediction_figure import plot_prediction_distributions, prediction_frame


@pytest.fixture()
def inputs():
    rng = np.random.default_rng(0)
    n_models, n_images, n_classes = 6, 7, 10
    logits = rng.normal(size=(n_models, n_images, n_classes))
    prob = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    predictions = xr.Dataset({"prob": (("model", "image", "class"), prob)})
    zoo = xr.Dataset(coords={"model": np.arange(n_models),
                             "optimizer": ("model", ["adam", "sgd", "rmsprop", "adam", "sgd", "adam"])},
                     attrs={"dataset": "toy"})
    images = xr.Dataset({"label": ("image", np.array([3, 1, 3, 0, 1, 2, 0]))})
    return predictions, zoo, images


def test_frame_has_the_first_image_of_each_class(inputs):
    predictions, zoo, images = inputs
    df = prediction_frame(predictions, zoo, images)
    prob = predictions["prob"].values
    labels = images["label"].values
    firsts = [int(np.flatnonzero(labels == c)[0]) for c in np.unique(labels)]  # classes 0,1,2,3 -> images 3,1,5,0
    assert firsts == [3, 1, 5, 0]
    assert len(df) == len(firsts) * prob.shape[0]
    for i in firsts:
        rows = df[df["label"] == labels[i]].sort_values("model")
        np.testing.assert_array_equal(rows["predicted"], prob[:, i].argmax(-1))
        np.testing.assert_allclose(rows["p_true"], prob[:, i, labels[i]], rtol=0)
        assert (rows["value"].to_numpy() == zoo["optimizer"].values.astype(str)).all()
    means = df.groupby("value")["p_true"].mean()
    ref = pd.Series({v: np.mean([prob[m, i, labels[i]] for i in firsts for m in range(6)
                                 if zoo["optimizer"].values[m] == v]) for v in ("adam", "rmsprop", "sgd")})
    np.testing.assert_allclose(means.sort_index(), ref.sort_index(), rtol=1e-12)


def test_writes_a_png_and_names_a_missing_hparam(inputs, tmp_path):
    predictions, zoo, images = inputs
    plot_prediction_distributions(predictions, zoo, images, tmp_path / "f.png")
    h, w = imread(tmp_path / "f.png").shape[:2]
    assert w > 600 and h > 300
    with pytest.raises(ValueError, match="'dropout' is not in zoo.nc"):
        prediction_frame(predictions, zoo, images, hparam="dropout")


def test_prediction_figure_is_the_papers_fig6(tmp_path, effect_inputs):
    zoo, buckets, pred, e = effect_inputs(30, 20, 3, seed=2)
    images = xr.Dataset({"label": ("image", np.repeat(np.arange(10), 2))}, coords={"image": np.arange(20)})
    df = prediction_frame(pred, zoo, images)
    assert df["image"].nunique() == 10 and len(df) == 10 * 30
    row = df.iloc[35]
    i = int(row.image.split()[0][1:])
    assert row.predicted == int(pred["prob"].values[row.model, i].argmax())
    assert row.p_true == pred["prob"].values[row.model, i, row.label]
    plot_prediction_distributions(pred, zoo, images, tmp_path / "f6.png")
    assert (tmp_path / "f6.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
