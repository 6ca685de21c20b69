"""Cost and accuracy of a model (paper 004 Table 1) on tiny models and synthetic data."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from causalxai.compress.measure import METRICS, count_flops, model_metrics, predict, size_mb, time_forward


def test_flops_params_and_size_of_a_linear():
    lin = nn.Linear(7, 5)
    assert count_flops(lin, (7,)) == 2 * 7 * 5
    x, y = torch.randn(4, 7), torch.tensor([0, 1, 2, 3])
    m = model_metrics(lin, (7,), x_test=x, y_test=y, device="cpu", repeats=3, warmup=1)
    assert set(m) == set(METRICS)
    assert m["n_params"] == 7 * 5 + 5
    assert m["size_mb"] == pytest.approx(40 * 4 / 1e6)
    assert m["flops"] == 70 and m["macs"] == 35
    assert m["latency_cpu_ms_mean"] > 0 and m["latency_cpu_ms_std"] >= 0
    assert np.isnan(m["latency_gpu_ms_mean"])
    assert 0.0 <= m["test_accuracy"] <= 1.0


def test_size_counts_buffers_and_conv_flops():
    bn = nn.BatchNorm1d(10)
    assert size_mb(bn) == pytest.approx((20 + 20 + 1 * 2) * 4 / 1e6)  # running_mean/var float32, num_batches int64
    conv = nn.Conv2d(2, 3, 3)  # 6x6 -> 4x4 output: 3*16 outputs x 2*9 MACs
    assert count_flops(conv, (2, 6, 6)) == 2 * 3 * 16 * 2 * 9
    mean, std = time_forward(conv, torch.zeros(2, 2, 6, 6), repeats=4, warmup=0)
    assert mean > 0 and std >= 0
    with pytest.raises(ValueError):
        time_forward(conv, torch.zeros(1, 2, 6, 6), repeats=0)


def test_predict_is_the_argmax_of_the_logits():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 5))
    x = torch.randn(7, 1, 4, 4)
    w, b = model[1].weight.detach().double().numpy(), model[1].bias.detach().double().numpy()
    ref = np.argmax(x.flatten(1).double().numpy() @ w.T + b, axis=1)
    np.testing.assert_array_equal(predict(model, x, batch_size=3), ref)
