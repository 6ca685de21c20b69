"""The predictions step: targets are the predictions; the direct effect's targets a seeded permutation."""

import numpy as np

from causalxai.study.explain import ExplainSettings
from causalxai.study.predictions import class_permutations, predict_zoo


def test_direct_targets_are_a_seeded_permutation_of_the_predictions(zoo_and_images):
    zoo, images = zoo_and_images
    pred = predict_zoo(zoo, images, ExplainSettings(device="cpu", seed=5))
    perm = pred["permutation"].values
    # a permutation of the classes for every (model, image)
    np.testing.assert_array_equal(np.sort(perm, axis=-1), np.broadcast_to(np.arange(10), perm.shape))
    prob, prob_d = pred["prob"].values, pred["prob_direct"].values
    m, i, c = 2, 1, 4
    assert prob_d[m, i, perm[m, i, c]] == prob[m, i, c]
    np.testing.assert_array_equal(pred["target_direct"].values, prob_d.argmax(-1))
    np.testing.assert_array_equal(np.sort(prob_d, -1), np.sort(prob, -1))
    # seeded: same seed same σ, another seed another σ
    again = predict_zoo(zoo, images, ExplainSettings(device="cpu", seed=5))
    np.testing.assert_array_equal(again["permutation"].values, perm)
    other = predict_zoo(zoo, images, ExplainSettings(device="cpu", seed=6))
    assert (other["permutation"].values != perm).any()


def test_permuted_targets_are_uniform_and_independent_of_the_prediction():
    perm = class_permutations(2000, 50, 10, seed=0)
    target = np.zeros((2000, 50), dtype=int)  # every model predicts class 0
    direct = np.take_along_axis(perm, target[..., None], -1)[..., 0]
    share = np.bincount(direct.ravel(), minlength=10) / direct.size
    np.testing.assert_allclose(share, 0.1, atol=0.005)


def test_streamed_predictions_equal_the_in_memory_ones_block_by_block(zoo_and_images, tmp_path, monkeypatch):
    import causalxai.study.predictions as predictions
    from causalxai.io import open as open_result, open_lazy, write_dataset
    from causalxai.study.predictions import predict_zoo_to_file

    zoo, images = zoo_and_images
    settings = ExplainSettings(device="cpu", seed=3)
    whole = predict_zoo(zoo, images, settings)
    write_dataset(zoo, tmp_path / "zoo.nc", step="zoo")
    monkeypatch.setattr(predictions, "ZOO_BLOCK", 3)  # several blocks, the last one short
    with open_lazy(tmp_path / "zoo.nc") as lazy:
        blocked = predict_zoo(lazy, images, settings)
        predict_zoo_to_file(lazy, images, settings, tmp_path / "predictions.nc", config={"seed": 3})
    streamed = open_result(tmp_path / "predictions.nc")
    for name in ("prob", "target", "permutation", "prob_direct", "target_direct"):
        np.testing.assert_array_equal(blocked[name].values, whole[name].values, err_msg=name)
        np.testing.assert_array_equal(streamed[name].values, whole[name].values, err_msg=name)
        assert streamed[name].dims == whole[name].dims
        assert streamed[name].attrs["description"] == whole[name].attrs["description"]
    assert streamed.attrs["step"] == "predictions" and streamed.attrs["seed"] == 3
    # σ drawn in blocks from one generator equals σ drawn for the whole zoo at once
    np.testing.assert_array_equal(streamed["permutation"].values,
                                  class_permutations(zoo.sizes["model"], images.sizes["image"], 10, seed=3))


# --- degenerate predictions (issue 17) -----------------------------------------------------

DENSE_BIAS = slice(160 + 2320 + 2320, 160 + 2320 + 2320 + 10)  # the zoo layout: 3 convs (bias, kernel), then dense bias


def _with_weights(zoo, weights):
    return zoo.assign(weights=(zoo["weights"].dims, np.asarray(weights, dtype=np.float32)))


def test_a_zoo_whose_models_all_give_the_same_y_is_refused_and_nothing_is_written(zoo_and_images, tmp_path):
    import pytest

    from causalxai.checks import DegenerateResultError
    from causalxai.study.predictions import predict_zoo_to_file

    zoo, images = zoo_and_images
    untrained = _with_weights(zoo, np.zeros(zoo["weights"].shape))  # every logit 0: Y = 1/10 for every model
    with pytest.raises(DegenerateResultError, match=r"predictions: prob .* is the same for all 7 models .*every "
                                                    r"ITE_Y would be 0.*zoo.train.epochs"):
        predict_zoo(untrained, images, ExplainSettings(device="cpu"))
    with pytest.raises(DegenerateResultError, match="the same for all 7 models"):
        predict_zoo_to_file(untrained, images, ExplainSettings(device="cpu"), tmp_path / "p.nc")
    assert not (tmp_path / "p.nc").exists()
    broken = _with_weights(zoo, np.full(zoo["weights"].shape, np.nan))
    with pytest.raises(DegenerateResultError, match=r"prob .* is all NaN \(no model of 7 gives a finite output\)"):
        predict_zoo(broken, images, ExplainSettings(device="cpu"))


def test_one_class_everywhere_is_flagged_not_refused(zoo_and_images, tmp_path, caplog):
    from causalxai.io import open as open_result
    from causalxai.study.predictions import predict_zoo_to_file

    zoo, images = zoo_and_images
    w = np.zeros(zoo["weights"].shape)
    w[:, DENSE_BIAS.start + 3] = 5 + np.arange(zoo.sizes["model"])  # class 3 wins everywhere, Y differs per model
    one_class = _with_weights(zoo, w)
    pred = predict_zoo(one_class, images, ExplainSettings(device="cpu"))
    assert (pred["target"].values == 3).all()
    assert "every model predicts class 3 on every probe image" in pred.attrs["degenerate"]
    assert "every model predicts class 3" in caplog.text
    predict_zoo_to_file(one_class, images, ExplainSettings(device="cpu"), tmp_path / "p.nc")
    assert open_result(tmp_path / "p.nc").attrs["degenerate"] == pred.attrs["degenerate"]
    # a real zoo (random weights, some NaN models among them) is neither refused nor flagged
    assert "degenerate" not in predict_zoo(zoo, images, ExplainSettings(device="cpu")).attrs
    some_nan = zoo["weights"].values.copy()
    some_nan[2] = np.nan
    assert "degenerate" not in predict_zoo(_with_weights(zoo, some_nan), images, ExplainSettings(device="cpu")).attrs
