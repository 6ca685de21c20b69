"""The compress step (paper 004 §4.3, Tables 1-2): mechanisms selected, built, retrained and measured."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn

from causalxai.compress.compress import TABLE_COLUMNS, CompressSettings, compress_dataset, compress_table
from causalxai.io import open as open_result, write_dataset
from causalxai.tracer.mechanisms import mechanisms_dataset, parse_composition

SHAPE = (1, 8, 8)
LAYERS = ["r1", "r2", "r3", "out"]


def plain(**kw) -> CompressSettings:
    """Settings without controls and with one seed (the compressed models alone)."""
    return CompressSettings(**{"seeds": 1, "random_partitions": 0, "random_weights": False, "paper_table2": False,
                               **kw})


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


def mech_ds():
    # three mechanisms: 2 nodes (60 %), 3 nodes (30 %), 4 nodes (10 %)
    rows = [[0, 0, 1, 1]] * 6 + [[0, 0, 1, 2]] * 3 + [[0, 1, 2, 3]]
    return mechanisms_dataset(np.asarray(rows), layers=LAYERS)


def test_compress_dataset_tiny(tmp_path):
    torch.manual_seed(0)
    orig = tiny().eval()
    x, y = data()
    ds, models = compress_dataset(orig, mech_ds(), (x[:36], y[:36]), (x[36:], y[36:]),
                                  plain(levels=(1.0, 0.6, 0.895), tol=0.005, epochs=1, batch_size=8,
                                                   lr=1e-3, seed=0, latency_repeats=3, latency_warmup=1),
                                  device="cpu")
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
    _, again = compress_dataset(orig, mech_ds(), (x[:36], y[:36]), (x[36:], y[36:]),
                                plain(levels=(0.6,), epochs=1, batch_size=8, lr=1e-3, seed=0,
                                                 latency_repeats=2, latency_warmup=0),
                                device="cpu")
    assert all(torch.equal(a, b) for a, b in zip(again["C1"].state_dict().values(), models["C1"].state_dict().values()))
    # writes and reads back as netCDF
    write_dataset(ds, tmp_path / "compress.nc", step="compress", seed=0)
    back = open_result(tmp_path / "compress.nc")
    assert back["composition"].values.tolist() == ds["composition"].values.tolist()


def test_duplicate_levels_are_noted_not_retrained():
    torch.manual_seed(0)
    x, y = data(24)
    ds, models = compress_dataset(tiny(), mech_ds(), (x[:18], y[:18]), (x[18:], y[18:]),
                                  plain(levels=(0.95, 1.0), epochs=0, batch_size=8, lr=1e-3, seed=1,
                                                   latency_repeats=2, latency_warmup=0),
                                  device="cpu")
    assert ds["duplicate_of"].values.tolist() == ["", "", "C1"]
    assert ds["composition"].values[1] == ds["composition"].values[2]
    assert models["C2"] is not models["C1"]
    with pytest.raises(ValueError, match="composition"):
        compress_dataset(tiny(), mech_ds()[["coverage"]], (x, y), (x, y),
                         plain(epochs=0, batch_size=8, lr=1e-3, seed=0))


def test_default_compresses_every_mechanism_simplest_first():
    torch.manual_seed(0)
    x, y = data(24)
    mech = mech_ds()
    ds, models = compress_dataset(tiny(), mech, (x[:18], y[:18]), (x[18:], y[18:]),
                                  plain(levels=None,
                                                   epochs=0, batch_size=8, lr=1e-3, seed=1, latency_repeats=2,
                                                   latency_warmup=0),
                                  device="cpu")
    n = mech.sizes["mechanism"]
    assert ds["mechanism"].values.tolist() == [-1, *range(min(n, 4))]
    np.testing.assert_allclose(ds["level"].values[1:], mech["coverage"].values[: min(n, 4)])
    one, _ = compress_dataset(tiny(), mech, (x[:18], y[:18]), (x[18:], y[18:]),
                              plain(levels=None, max_models=1, epochs=0, batch_size=8, lr=1e-3, seed=1,
                                               latency_repeats=2, latency_warmup=0),
                              device="cpu")
    assert one["model"].values.tolist() == ["original", "C1"]


def test_controls_seeds_and_mcnemar():
    torch.manual_seed(0)
    orig = tiny().eval()
    x, y = data(60)
    # a random-weight copy's mechanisms, given (the script runs TRACER on one)
    rand_mech = mechanisms_dataset(np.asarray([[0, 1, 1, 1]] * 3 + [[0, 0, 0, 0]]), layers=LAYERS)
    settings = CompressSettings(levels=(0.6,), epochs=1, batch_size=8, lr=1e-3, seed=0, latency_repeats=2,
                                latency_warmup=0, seeds=2, random_partitions=2, budget=10.0, paper_table2=True,
                                distill_epochs=1)
    ds, models = compress_dataset(orig, mech_ds(), (x[:40], y[:40]), (x[40:], y[40:]), settings,
                                  random_mechanisms=rand_mech, device="cpu")
    names = ds["model"].values.tolist()
    assert names == ["original", "C1", "C1_rand1", "C1_rand2", "C1_rw"]  # 8x8 inputs: no paper Table 2
    assert "paper_table2 skipped" in ds.attrs["notes"][0]
    assert ds["kind"].values.tolist() == ["original", "tracer", "random_partition", "random_partition",
                                          "random_weights"]
    assert ds["control_of"].values.tolist() == ["", "", "C1", "C1", "C1"]
    # the random partitions: 2 nodes, not TRACER's mechanisms; the random-weight mechanism of 2 nodes
    comps = ds["composition"].values.tolist()
    for c in comps[2:4]:
        assert len(parse_composition(c)) == 2 and c not in mech_ds()["composition"].values.tolist()
    assert comps[4] == "r1|r2+r3+out"
    # per-seed accuracies: mean and std by hand; each seed's McNemar against the original by hand
    with torch.no_grad():
        orig_ok = (orig(x[40:]).argmax(1) == y[40:]).numpy()
    acc = ds["seed_accuracy"].values
    assert ds.sizes["seed"] == 2 and ds["n_seeds"].values.tolist() == [1, 2, 2, 2, 2]
    np.testing.assert_allclose(ds["accuracy_mean"].values[1:], acc[1:].mean(1))
    np.testing.assert_allclose(ds["accuracy_std"].values[1:], acc[1:].std(1, ddof=1))
    assert acc[0, 0] == pytest.approx(orig_ok.mean()) and np.isnan(acc[0, 1])
    with torch.no_grad():
        ok = (models["C1"](x[40:]).argmax(1) == y[40:]).numpy()
    b, c = int(np.sum(orig_ok & ~ok)), int(np.sum(~orig_ok & ok))
    assert (int(ds["mcnemar_b"][1, 0]), int(ds["mcnemar_c"][1, 0])) == (b, c)
    assert float(ds["mcnemar_p"][1, 0]) == pytest.approx(stats.binomtest(min(b, c), b + c, 0.5).pvalue
                                                         if b + c else 1.0)
    assert acc[1, 0] == pytest.approx(ok.mean())
    # the Welch comparison of each control against C1
    ref = stats.ttest_ind(acc[1], acc[4], equal_var=False)
    assert float(ds["tracer_minus_control"][4]) == pytest.approx(acc[1].mean() - acc[4].mean())
    if np.isfinite(ref.pvalue):
        assert float(ds["welch_p"][4]) == pytest.approx(ref.pvalue)
    assert np.isnan(ds["welch_p"].values[:2]).all()
    # the distillation check: C1 (r1+r2 | r3+out) has two multi-layer nodes
    assert np.isfinite(ds["distill_accuracy"].values[1, :2]).all()
    assert np.isfinite(float(ds["distill_accuracy_all"][1])) and np.isnan(ds["distill_accuracy_all"].values[2:]).all()
    # the table (tables/compress_models.csv): one row per model, McNemar at the first seed
    table = compress_table(ds)
    assert table.index.tolist() == names and list(table.columns) == list(TABLE_COLUMNS)
    assert (int(table.loc["C1", "mcnemar_b0"]), int(table.loc["C1", "mcnemar_c0"])) == (b, c)
    assert table.loc["C1_rw", "accuracy_mean"] == pytest.approx(acc[4].mean())


def test_paper_table2_rows_on_28x28():
    from causalxai.tracer.model import alexnet28

    torch.manual_seed(0)
    orig = alexnet28().eval()
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(20, 1, 28, 28, generator=g), torch.arange(20) % 10
    mech = mechanisms_dataset(np.asarray([[0, 0, 0, 0, 1, 2, 2, 2]]),
                              layers=["relu1", "relu2", "relu3", "relu4", "relu5", "relu6", "relu7", "fc3"])
    ds, _ = compress_dataset(orig, mech, (x, y), (x, y),
                             CompressSettings(levels=(1.0,), epochs=0, batch_size=10, seed=0, latency_repeats=1,
                                              latency_warmup=0, seeds=1, random_partitions=0, distill_epochs=0),
                             device="cpu")
    assert ds["model"].values.tolist()[-3:] == ["paper_C1", "paper_C2", "paper_C3"]
    assert ds["n_params"].values[-3:].tolist() == [11_567_786, 4_749_994, 66_218]
    assert ds["composition"].values[-1] == "" and ds["n_nodes"].values[-1] == -1
    assert int(ds["n_params"].sel(model="C1")) == 73_642  # the module docstring's example of build.py


def test_nothing_compressed_is_flagged_and_no_accuracy_refused(caplog):
    """Every mechanism node a single layer: every TRACER model is the original's size, flagged;
    accuracies NaN everywhere (nothing measured): refused (issue 17)."""
    from causalxai.checks import DegenerateResultError
    from causalxai.compress.compress import _check_compressed

    torch.manual_seed(0)
    x, y = data(24)
    every_layer = mechanisms_dataset(np.asarray([[0, 1, 2, 3]] * 4), layers=LAYERS)
    ds, _ = compress_dataset(tiny(), every_layer, (x[:18], y[:18]), (x[18:], y[18:]),
                             plain(epochs=0, batch_size=8, lr=1e-3, seed=1, latency_repeats=2, latency_warmup=0),
                             device="cpu")
    assert (ds["compression"].values == 0).all()
    assert "every TRACER model keeps all of the original's parameters" in ds.attrs["degenerate"]
    assert "compression 0" in caplog.text
    real, _ = compress_dataset(tiny(), mech_ds(), (x[:18], y[:18]), (x[18:], y[18:]),
                               plain(levels=(0.6,), epochs=0, batch_size=8, lr=1e-3, seed=1, latency_repeats=2,
                                     latency_warmup=0), device="cpu")
    assert "degenerate" not in real.attrs
    with pytest.raises(DegenerateResultError, match=r"compress: seed_accuracy .* is all NaN.*6 test samples"):
        _check_compressed(real.assign(seed_accuracy=real["seed_accuracy"] * np.nan))


def test_retraining_does_not_depend_on_the_thread_count():
    """Every (model, seed) retraining runs in a worker process on one intra-op thread when the job
    has several threads (runtime.process_map), and here on one thread when it has one: the same
    weights and accuracies either way, controls included."""
    torch.manual_seed(0)
    orig = tiny().eval()
    x, y = data()
    settings = CompressSettings(levels=(0.6, 1.0), epochs=1, batch_size=8, lr=1e-3, seed=0, latency_repeats=1,
                                latency_warmup=0, seeds=2, random_partitions=1, random_weights=False,
                                paper_table2=False)
    threads = torch.get_num_threads()
    runs = {}
    try:
        for t in (1, 2):
            torch.set_num_threads(t)
            runs[t] = compress_dataset(orig, mech_ds(), (x[:36], y[:36]), (x[36:], y[36:]), settings, device="cpu")
            assert torch.get_num_threads() == t
    finally:
        torch.set_num_threads(threads)
    (one, m1), (two, m2) = runs[1], runs[2]
    assert one["model"].values.tolist() == two["model"].values.tolist() and one.sizes["model"] >= 4
    np.testing.assert_array_equal(one["seed_accuracy"].values, two["seed_accuracy"].values)
    for name in m1:
        assert all(torch.equal(a, b) for a, b in zip(m1[name].state_dict().values(), m2[name].state_dict().values()))
