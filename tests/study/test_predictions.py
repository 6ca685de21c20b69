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
