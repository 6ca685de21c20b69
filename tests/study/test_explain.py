"""The explanation step: sharding, chunking and gathering do not change the numbers."""

import netCDF4
import numpy as np
import pytest
import torch
import xarray as xr

import causalxai.study.explain as explain_module
from causalxai.attribution.gradient import Gradient
from causalxai.io import open_lazy, write_dataset
from causalxai.study.explain import (
    ExplainSettings,
    RawMaps,
    explain_zoo,
    gather,
    gather_to_file,
    model_shard,
    normalise_explanations,
    pack_maps,
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


@pytest.mark.parametrize("method", ["smoothgrad", "grad_cam"])
def test_the_maps_do_not_depend_on_the_thread_count(zoo_and_images, method):
    """Chunks run one per torch thread, each on one intra-op thread (runtime.chunk_map): 1, 2 and 3
    threads give the same maps, bit for bit, and the job's thread count is restored."""
    zoo, images = zoo_and_images
    s = ExplainSettings(smoothgrad_samples=3, ig_steps=4, device="cpu", chunk_size=2, seed=2)
    pred = predict_zoo(zoo, images, s)
    threads = torch.get_num_threads()
    maps = {}
    try:
        for t in (1, 2, 3):
            torch.set_num_threads(t)
            maps[t] = explain_zoo(zoo, images, pred, method, s, normalise=False)["attribution"].values
            assert torch.get_num_threads() == t
    finally:
        torch.set_num_threads(threads)
    np.testing.assert_array_equal(maps[2], maps[1])
    np.testing.assert_array_equal(maps[3], maps[1])
    assert np.abs(maps[1]).max() > 0


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


#: the packed maps' worst-case error: half a step of 1/65534, plus float32 rounding of the decoded value
PACK_BOUND = 0.5 / 65534 + 1e-7


def _shard_files(tmp_path, zoo_and_images, method="gradient"):
    """Three shard files of the test zoo (one map set to zero: a degenerate map), and their parts."""
    zoo, images = zoo_and_images
    s = ExplainSettings(device="cpu", chunk_size=3)
    pred = predict_zoo(zoo, images, s)
    parts = [explain_zoo(zoo, images, pred, method, s, model_shard(7, 3, k), normalise=False) for k in range(3)]
    parts[1]["attribution"][0, 1, 2] = 0.0  # model 3's direct map of image 2
    paths = []
    for k, part in enumerate(parts):
        paths.append(tmp_path / f"{method}.{k + 1}-of-3.nc")
        write_dataset(part, paths[-1], step="explain_shard", seed=0)
    return paths, parts


def test_gather_to_file_streams_the_shards_into_packed_maps(tmp_path, zoo_and_images, monkeypatch):
    paths, parts = _shard_files(tmp_path, zoo_and_images)
    s = ExplainSettings(device="cpu")
    whole = normalise_explanations(gather(parts), "gradient", s)
    monkeypatch.setattr(explain_module, "GATHER_BLOCK_BYTES", 1)  # one model per block: many blocks per shard
    out = gather_to_file(paths[::-1], tmp_path / "gradient.nc", "gradient", s, config={"method": "gradient"})
    with open_lazy(out) as ds:
        got = ds.load()
    np.testing.assert_array_equal(got["model"].values, whole["model"].values)
    np.testing.assert_array_equal(got["degenerate"].values, whole["degenerate"].values)
    assert got["degenerate"].dtype == bool and got["degenerate"].values[3, 1, 2]
    e, ref = got["E"].values, whole["E"].values
    assert e.dtype == np.float32 and (np.isnan(e) == np.isnan(ref)).all()
    assert np.nanmax(np.abs(e - ref)) <= PACK_BOUND
    assert got.attrs["n_degenerate"] == '{"direct": 1, "total": 0}' and got.attrs["step"] == "explain"
    assert "attribution" not in got  # the raw maps stay in the shards
    with netCDF4.Dataset(out) as nc:  # 16 bits on disk, one chunk per (model, effect), all images
        assert nc["E"].dtype == np.uint16 and nc["E"].chunking() == [1, 1, 4, 28, 28]
    # the reader of the raw shards gives the in-memory maps exactly, and counts the dropped ones
    with RawMaps(paths, "gradient", s) as raw:
        for eff in ("total", "direct"):
            idx = np.array([5, 0, 2, 6])
            np.testing.assert_array_equal(raw.read(eff, idx), whole["E"].sel(effect=eff).values[idx])
        np.testing.assert_array_equal(raw.n_dropped(), [0, 1])
    # reads of every model (in any order) count the dropped maps on the way: the same counts, no pass of their own
    with RawMaps(paths, "gradient", s) as raw:
        n = raw.models.size
        for eff in ("total", "direct"):
            raw.read(eff, np.arange(n)[::-1])
        monkeypatch.setattr(explain_module, "_block_models", None)  # n_dropped's own pass would fail
        np.testing.assert_array_equal(raw.n_dropped(), [0, 1])


def test_packing_bound_and_dropped_maps():
    x = np.array([0.0, 1.0, 0.5, 1 / 3, np.nan, 2e-6, 0.99999], dtype=np.float32)
    q = pack_maps(x)
    assert q.dtype == np.uint16 and q[4] == 65535 and q[0] == 0 and q[1] == 65534
    decoded = q[np.isfinite(x)].astype(np.float64) / 65534
    assert np.abs(decoded - x[np.isfinite(x)]).max() <= 0.5 / 65534


def test_gather_refuses_bad_shards_and_leaves_no_file(tmp_path, zoo_and_images):
    paths, parts = _shard_files(tmp_path, zoo_and_images)
    s = ExplainSettings(device="cpu")
    out = tmp_path / "out.nc"
    with pytest.raises(ValueError, match="overlap"):
        gather_to_file([paths[0], paths[0]], out, "gradient", s)
    with pytest.raises(ValueError, match="not 'smoothgrad'"):
        gather_to_file(paths, out, "smoothgrad", s)
    other = parts[2].assign_coords(image=parts[2]["image"].values + 100)
    write_dataset(other, tmp_path / "other.nc", step="explain_shard")
    with pytest.raises(ValueError, match="different image"):
        gather_to_file([paths[0], tmp_path / "other.nc"], out, "gradient", s)
    xr.Dataset({"E": parts[0]["attribution"]}).to_netcdf(tmp_path / "gathered.nc")
    with pytest.raises(ValueError, match="not an explain_shard output"):
        gather_to_file([tmp_path / "gathered.nc"], out, "gradient", s)
    assert not out.exists() and not list(tmp_path.glob(".out.nc.*"))


@pytest.mark.parametrize("zero_maps", ["drop", "keep"])
def test_gather_refuses_a_method_whose_every_map_has_zero_scale(tmp_path, zoo_and_images, zero_maps):
    """Every map of an effect degenerate (here all zero): E all NaN (drop) or all 0 (keep), refused with
    the method and the effect named, and no file left; some degenerate maps (above) are normal."""
    from causalxai.checks import DegenerateResultError

    paths, parts = _shard_files(tmp_path, zoo_and_images)
    s = ExplainSettings(device="cpu", zero_maps=zero_maps)
    for part, path in zip(parts, paths):
        part["attribution"].loc[{"effect": "total"}] = 0.0
        write_dataset(part, path, step="explain_shard", seed=0)
    out = tmp_path / "gradient.nc"
    with pytest.raises(DegenerateResultError, match=r"explain_gather: E of method 'gradient' \(total effect\) "
                                                    rf"is degenerate in all its 28 .*zero_maps: {zero_maps}"
                                                    r".*explain.output"):
        gather_to_file(paths, out, "gradient", s)
    assert not out.exists() and not list(tmp_path.glob(".gradient.nc.*"))


def test_the_auto_chunk_keeps_a_cpu_pass_near_400_model_images():
    """explain.chunk_size auto: about 400 model-images per pass on the CPU (larger passes fall out of
    the caches), at least one model; 4096 models on a GPU."""
    from causalxai.study.explain import auto_chunk

    cpu = torch.device("cpu")
    assert [auto_chunk(cpu, n) for n in (100, 20, 400, 1000, 1)] == [4, 20, 1, 1, 400]
    assert auto_chunk(torch.device("cuda"), 100) == 4096
