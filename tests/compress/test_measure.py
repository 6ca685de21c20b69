"""Cost, accuracy and the compress step (paper 004 Tables 1-2) on tiny models and synthetic data."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch import nn

from causalxai.compress.measure import METRICS, compress_dataset, count_flops, model_metrics, size_mb, time_forward
from causalxai.io import open as open_result, write_dataset
from causalxai.tracer.mechanisms import mechanisms_dataset

SHAPE = (1, 8, 8)
LAYERS = ["r1", "r2", "r3", "out"]


def tiny() -> nn.Sequential:
    return nn.Sequential(OrderedDict([
        ("c1", nn.Conv2d(1, 4, 3, padding=1)), ("r1", nn.ReLU()),
        ("c2", nn.Conv2d(4, 6, 3)), ("r2", nn.ReLU()), ("pool", nn.MaxPool2d(2)),
        ("flat", nn.Flatten()), ("drop", nn.Dropout(0.2)), ("fc", nn.Linear(6 * 3 * 3, 12)), ("r3", nn.ReLU()),
        ("out", nn.Linear(12, 3)),
    ]))


def data(n=48, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    x = torch.randn(n, *SHAPE, generator=g) * 0.3
    x[torch.arange(n), 0, 2 * y, 2 * y] += 2.0  # a learnable cue
    return x, y


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


def mech_ds():
    # three mechanisms: 2 nodes (60 %), 3 nodes (30 %), 4 nodes (10 %)
    rows = [[0, 0, 1, 1]] * 6 + [[0, 0, 1, 2]] * 3 + [[0, 1, 2, 3]]
    return mechanisms_dataset(np.asarray(rows), layers=LAYERS)


def test_compress_dataset_tiny(tmp_path):
    torch.manual_seed(0)
    orig = tiny().eval()
    x, y = data()
    ds, models = compress_dataset(
        orig, mech_ds(), levels=(1.0, 0.6, 0.895), tol=0.005, x_train=x[:36], y_train=y[:36], x_test=x[36:],
        y_test=y[36:], epochs=1, batch_size=8, lr=1e-3, seed=0, device="cpu", latency_repeats=3, latency_warmup=1,
    )
    assert list(ds["model"].values) == ["original", "C1", "C2", "C3"]
    assert set(models) == {"original", "C1", "C2", "C3"}
    assert ds["composition"].values.tolist() == ["r1|r2|r3|out", "r1+r2|r3+out", "r1+r2|r3|out", "r1|r2|r3|out"]
    assert ds["n_nodes"].values.tolist() == [4, 2, 3, 4]
    np.testing.assert_allclose(ds["coverage"].values[1:], [0.6, 0.9, 1.0])
    assert np.isnan(float(ds["coverage"][0]))
    for k in ("n_params", "size_mb", "flops", "latency_cpu_ms_mean", "test_accuracy", "compression"):
        assert np.all(np.isfinite(ds[k].values)), k
    assert np.all(np.isnan(ds["latency_gpu_ms_mean"].values))
    assert float(ds["compression"][0]) == 0.0
    # C3 (every layer its own node) has the original's size; C1 is the smallest
    assert int(ds["n_params"][3]) == int(ds["n_params"][0])
    assert int(ds["n_params"][1]) < int(ds["n_params"][2]) < int(ds["n_params"][0])
    for name in ("C1", "C2", "C3"):
        assert sum(p.numel() for p in models[name].parameters()) == int(ds["n_params"].sel(model=name))
    # the original is evaluated as given (not retrained)
    assert all(torch.equal(a, b) for a, b in zip(models["original"].state_dict().values(), orig.state_dict().values()))
    assert ds["test_accuracy_curve"].sizes["epoch"] == 1 and np.isnan(ds["test_accuracy_curve"].values[0]).all()
    # layer tables (Table 2), padded
    n = ds["n_layers"].values
    assert n[0] == 10 and n[1] == len(models["C1"]._modules)
    assert ds["layer_name"].values[1, n[1]:].tolist() == [""] * (ds.sizes["layer_index"] - n[1])
    assert (ds["layer_params"].values[1, n[1]:] == -1).all()
    assert ds["layer_output_shape"].values[0, 0] == "4x8x8"
    assert ds["node_replacement"].values[1, 0].startswith("Conv2d(1→6")
    # seeded: the same call gives the same weights
    _, again = compress_dataset(
        orig, mech_ds(), levels=(0.6,), x_train=x[:36], y_train=y[:36], x_test=x[36:], y_test=y[36:], epochs=1,
        batch_size=8, lr=1e-3, seed=0, device="cpu", latency_repeats=2, latency_warmup=0,
    )
    assert all(torch.equal(a, b) for a, b in zip(again["C1"].state_dict().values(), models["C1"].state_dict().values()))
    # writes and reads back as netCDF
    write_dataset(ds, tmp_path / "compress.nc", step="compress", seed=0)
    back = open_result(tmp_path / "compress.nc")
    assert back["composition"].values.tolist() == ds["composition"].values.tolist()


def test_duplicate_levels_are_noted_not_retrained():
    torch.manual_seed(0)
    x, y = data(24)
    ds, models = compress_dataset(
        tiny(), mech_ds(), levels=(0.95, 1.0), x_train=x[:18], y_train=y[:18], x_test=x[18:], y_test=y[18:], epochs=0,
        batch_size=8, lr=1e-3, seed=1, device="cpu", latency_repeats=2, latency_warmup=0,
    )
    assert ds["duplicate_of"].values.tolist() == ["", "", "C1"]
    assert ds["composition"].values[1] == ds["composition"].values[2]
    assert models["C2"] is not models["C1"]
    with pytest.raises(ValueError, match="composition"):
        compress_dataset(tiny(), mech_ds()[["coverage"]], x_train=x, y_train=y, x_test=x, y_test=y, epochs=0,
                         batch_size=8, lr=1e-3, seed=0)


def test_default_compresses_every_mechanism_simplest_first():
    torch.manual_seed(0)
    x, y = data(24)
    mech = mech_ds()
    ds, models = compress_dataset(
        tiny(), mech, x_train=x[:18], y_train=y[:18], x_test=x[18:], y_test=y[18:], epochs=0,
        batch_size=8, lr=1e-3, seed=1, device="cpu", latency_repeats=2, latency_warmup=0,
    )
    n = mech.sizes["mechanism"]
    assert ds["mechanism"].values.tolist() == [-1, *range(min(n, 4))]
    np.testing.assert_allclose(ds["level"].values[1:], mech["coverage"].values[: min(n, 4)])
    one, _ = compress_dataset(
        tiny(), mech, max_models=1, x_train=x[:18], y_train=y[:18], x_test=x[18:], y_test=y[18:], epochs=0,
        batch_size=8, lr=1e-3, seed=1, device="cpu", latency_repeats=2, latency_warmup=0,
    )
    assert one["model"].values.tolist() == ["original", "C1"]
