"""App. A.3 post-processing: a hand-computed case and NumPy's percentile."""

import numpy as np
import pytest
import torch

from causalxai.explain.postprocess import normalize_maps, percentile


def test_percentile_matches_numpy():
    x = np.random.default_rng(0).normal(size=(3, 4, 101))
    for q in (0, 37.5, 99, 100):
        np.testing.assert_allclose(percentile(torch.tensor(x), q).numpy(), np.percentile(x, q, axis=-1, keepdims=True))


def test_signed_map_by_hand():
    # 2x2 map [-4, 1, 2, 10]: p99 of sorted [-4, 1, 2, 10] = 2 + 0.97 * 8 = 9.76 (clips 10)
    m = torch.tensor([[-4.0, 1.0], [2.0, 10.0]], dtype=torch.float64)
    out = normalize_maps(m, signed=True)
    # max |v| after clipping = 9.76; negatives to 0
    np.testing.assert_allclose(out.numpy(), [[0, 1 / 9.76], [2 / 9.76, 1.0]])


def test_grad_cam_map_and_zero_maps():
    m = torch.tensor([[[0.0, 1.0], [3.0, 2.0]], [[0.0, 0.0], [0.0, 0.0]]], dtype=torch.float64)
    out = normalize_maps(m, signed=False)
    p = 2 + 0.97 * 1  # p99 of [0, 1, 2, 3]
    np.testing.assert_allclose(out[0].numpy(), [[0, 1 / p], [1.0, 2 / p]])
    assert float(out[1].abs().max()) == 0
    with pytest.raises(ValueError, match="signed=True"):
        normalize_maps(-m, signed=False)
