"""The explanation step: sharding, chunking and gathering do not change the numbers."""

import numpy as np
import pytest
import torch

from causalxai.attribution.gradient import Gradient
from causalxai.study.explain import (
    ExplainSettings,
    explain_zoo,
    gather,
    model_shard,
    normalise_explanations,
)
from causalxai.study.predictions import predict_zoo
from causalxai.zoo.dataset import zoo_params
from causalxai.zoo.network import batched_forward


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
    raw = Gradient(batched_forward({k: v.double() for k, v in p.items()}, str(zoo["activation"].values[3])),
                   models=1).attribute(x, torch.tensor(pred["target"].values[3:4]))[0, 0, 0].numpy()
    p99 = np.percentile(np.abs(raw), 99)  # App. A.3, both tails
    expected = np.clip(np.clip(raw, -p99, p99) / p99, 0, None)
    np.testing.assert_allclose(ds["E"].sel(effect="total").values[3, 0], expected, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(ds["attribution"].sel(effect="total").values[3, 0], raw, rtol=1e-5, atol=1e-7)
    # the direct map of the same model and image explains the permuted class σ(target)
    raw = Gradient(batched_forward({k: v.double() for k, v in p.items()}, str(zoo["activation"].values[3])),
                   models=1).attribute(x, torch.tensor(pred["target_direct"].values[3:4]))[0, 0, 0].numpy()
    p99 = np.percentile(np.abs(raw), 99)
    expected = np.clip(np.clip(raw, -p99, p99) / p99, 0, None)
    np.testing.assert_allclose(ds["E"].sel(effect="direct").values[3, 0], expected, rtol=1e-5, atol=1e-7)


def test_bad_shards_and_methods(zoo_and_images):
    zoo, images = zoo_and_images
    with pytest.raises(ValueError, match="explain.shards"):
        model_shard(7, 8, 0)
    with pytest.raises(ValueError, match="explain.methods"):
        explain_zoo(zoo, images, None, "lime", ExplainSettings(device="cpu"))
