"""The explanation step: sharding, chunking and gathering do not change the numbers."""

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

from causalxai.explain.saliency import gradient
from causalxai.explain.suite import (
    ExplainSettings,
    class_permutations,
    explain_zoo,
    gather,
    model_shard,
    normalise_explanations,
    predict_zoo,
)
from causalxai.zoo.dataset import make_zoo_dataset, zoo_params
from causalxai.zoo.hparams import sample_hparams
from causalxai.zoo.network import zoo_layout


@pytest.fixture(scope="module")
def zoo_and_images():
    rng = np.random.default_rng(0)
    n = 7
    hp = sample_hparams(n, {}, seed=1)
    zoo = make_zoo_dataset(
        rng.normal(scale=0.3, size=(n, 4970)).astype(np.float32), hp,
        pd.DataFrame({"test_accuracy": rng.uniform(size=n)}), zoo_layout(1),
        dataset="toy", source="train", input_size=28,
    )
    images = xr.Dataset(
        {"pixels": (("image", "y", "x"), rng.uniform(-1, 1, size=(4, 28, 28)).astype(np.float32)),
         "label": ("image", np.arange(4))},
        coords={"image": np.arange(4)},
    )
    return zoo, images


@pytest.mark.parametrize("method", ["gradient", "smoothgrad", "integrated_gradients", "grad_cam"])
def test_shards_and_chunks_give_the_same_maps(zoo_and_images, method):
    zoo, images = zoo_and_images
    s = ExplainSettings(smoothgrad_samples=3, ig_steps=4, device="cpu", chunk_size=7, seed=2)
    pred = predict_zoo(zoo, images, s)
    whole = explain_zoo(zoo, images, pred, method, s)
    small = ExplainSettings(smoothgrad_samples=3, ig_steps=4, device="cpu", chunk_size=2, seed=2)
    parts = [explain_zoo(zoo, images, pred, method, small, model_shard(7, 3, k), normalise=False) for k in range(3)]
    assert "E" not in parts[0] and "attribution" in parts[0]
    merged = normalise_explanations(gather(parts), method, small)
    np.testing.assert_allclose(merged["attribution"].values, whole["attribution"].values, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(merged["E"].values, whole["E"].values, rtol=1e-4, atol=1e-5)  # float32 maps
    e = whole["E"].values
    ok = ~whole["degenerate"].values
    assert e.shape == (7, 2, 4, 28, 28) and np.isfinite(e[ok]).all() and np.isnan(e[~ok]).all()
    assert np.nanmin(e) >= 0 and np.nanmax(e) <= 1
    assert whole.attrs["n_degenerate"] == {"total": int((~ok)[:, 0].sum()), "direct": int((~ok)[:, 1].sum())}


def test_targets_are_the_predictions_and_maps_follow_them(zoo_and_images):
    zoo, images = zoo_and_images
    s = ExplainSettings(device="cpu", dtype="float64")
    pred = predict_zoo(zoo, images, s)
    np.testing.assert_array_equal(pred["target"].values, pred["prob"].values.argmax(-1))
    np.testing.assert_allclose(pred["prob"].sum("class").values, 1, rtol=1e-5)
    ds = explain_zoo(zoo, images, pred, "gradient", s)
    # model 3 by hand: raw gradient, then App. A.3 on its first image
    p = zoo_params(zoo, np.array([3]))
    x = torch.tensor(images["pixels"].values[:, None], dtype=torch.float64)
    raw = gradient({k: v.double() for k, v in p.items()}, x, str(zoo["activation"].values[3]),
                   torch.tensor(pred["target"].values[3:4]))[0, 0, 0].numpy()
    p99 = np.percentile(np.abs(raw), 99)  # App. A.3, both tails
    expected = np.clip(np.clip(raw, -p99, p99) / p99, 0, None)
    np.testing.assert_allclose(ds["E"].sel(effect="total").values[3, 0], expected, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(ds["attribution"].sel(effect="total").values[3, 0], raw, rtol=1e-5, atol=1e-7)
    # the direct map of the same model and image explains the permuted class σ(target)
    raw = gradient({k: v.double() for k, v in p.items()}, x, str(zoo["activation"].values[3]),
                   torch.tensor(pred["target_direct"].values[3:4]))[0, 0, 0].numpy()
    p99 = np.percentile(np.abs(raw), 99)
    expected = np.clip(np.clip(raw, -p99, p99) / p99, 0, None)
    np.testing.assert_allclose(ds["E"].sel(effect="direct").values[3, 0], expected, rtol=1e-5, atol=1e-7)


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


def test_bad_shards_and_methods(zoo_and_images):
    zoo, images = zoo_and_images
    with pytest.raises(ValueError, match="explain.shards"):
        model_shard(7, 8, 0)
    with pytest.raises(ValueError, match="explain.methods"):
        explain_zoo(zoo, images, None, "lime", ExplainSettings(device="cpu"))
