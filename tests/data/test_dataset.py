"""Image-set loaders: sklearn digits (offline) and the real download formats, rebuilt small
in tmp (IDX gz, CIFAR-10 python tar.gz, SVHN .mat) and served through file:// URLs."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
import xarray as xr

from causalxai.data import dataset as datasets, download
from causalxai.data.dataset import (
    DATASETS,
    DatasetFileError,
    dataset_files,
    download_files,
    fetch_dataset,
    from_raw,
    load_dataset,
    load_digits,
    read_dataset,
    to_raw,
    zoo_preprocess,
)
from causalxai.data.download import ChecksumError, MissingDownloadError


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _serve(monkeypatch, name: str, files: dict[str, Path], md5: dict[str, str | None] | None = None) -> None:
    """Point SOURCES[name] at local files (file:// URLs) with their real md5s."""
    md5 = md5 or {}
    spec = {"files": {f: {"urls": [p.as_uri()], "md5": md5.get(f, _md5(p))} for f, p in files.items()}}
    monkeypatch.setitem(datasets.SOURCES, name, spec)


def _check_contract(ds: xr.Dataset, name: str, n_train: int, n_test: int, size: int) -> None:
    assert tuple(ds["image"].dims) == ("sample", "y", "x")
    assert ds["image"].shape == (n_train + n_test, size, size)
    assert ds["image"].dtype == np.float32
    assert ds["label"].dtype == np.int64 and ds["label"].dims == ("sample",)
    assert ds["split"].values.tolist() == ["train"] * n_train + ["test"] * n_test
    assert ds["source_index"].dtype == np.int64
    assert ds.attrs["dataset"] == name and ds.attrs["n_classes"] == 10 and ds.attrs["image_size"] == size
    assert "255" in ds.attrs["preprocessing"]
    assert float(ds["image"].min()) >= -1.0 and float(ds["image"].max()) <= 1.0


# --------------------------------------------------------------------------- preprocessing


def test_zoo_preprocess_hand_computed():
    rgb = np.array(
        [[[[255, 0, 0], [51, 102, 153]], [[0, 0, 0], [255, 255, 255]]]], dtype=np.uint8
    )  # (1, 2, 2, 3)
    out = zoo_preprocess(rgb)
    assert out.shape == (1, 1, 2, 2) and out.dtype == np.float32
    # (1 - 1 - 1)/3; (-0.6 - 0.2 + 0.2)/3; -1; 1
    np.testing.assert_allclose(out[0, 0], [[-1 / 3, -0.2], [-1.0, 1.0]], atol=1e-6)
    gray = np.array([[[0, 51], [255, 204]]], dtype=np.uint8)  # (1, 2, 2)
    np.testing.assert_allclose(zoo_preprocess(gray)[0, 0], [[-1.0, -0.6], [1.0, 0.6]], atol=1e-6)
    with pytest.raises(ValueError, match="shape"):
        zoo_preprocess(np.zeros((2, 3), np.uint8))


# --------------------------------------------------------------------------- digits


def test_load_digits_shapes_range_and_stratified_split():
    from sklearn.datasets import load_digits as sk

    ds = load_digits()
    _check_contract(ds, "digits", 1437, 360, 28)
    assert ds.attrs["source"] == "sklearn.datasets.load_digits"
    assert float(ds["image"].min()) == -1.0 and float(ds["image"].max()) > 0.9
    labels, split = ds["label"].values, ds["split"].values
    all_counts = np.bincount(labels, minlength=10)
    test_counts = np.bincount(labels[split == "test"], minlength=10)
    assert np.all(np.abs(test_counts - 0.2 * all_counts) <= 1)
    # every sklearn image exactly once, labels match the source
    target = sk().target
    assert sorted(ds["source_index"].values.tolist()) == list(range(1797))
    np.testing.assert_array_equal(labels, target[ds["source_index"].values])


def test_load_digits_native_size_values_are_exact():
    from sklearn.datasets import load_digits as sk

    ds = load_digits(image_size=8, test_fraction=0.25, seed=3)
    raw = sk().images[ds["source_index"].values]
    # 0..16 -> 0..255 -> x/255*2-1 == x/8-1
    np.testing.assert_allclose(ds["image"].values, raw / 8.0 - 1.0, atol=1e-6)
    assert (ds["split"].values == "test").sum() == 450


def test_load_digits_is_deterministic_per_seed():
    a, b, c = load_digits(seed=0), load_digits(seed=0), load_digits(seed=1)
    xr.testing.assert_identical(a, b)
    assert not np.array_equal(a["source_index"].values, c["source_index"].values)
    xr.testing.assert_identical(load_dataset("digits", cache_dir="unused", seed=1), c)


def test_digits_survive_netcdf(tmp_path):
    ds = load_digits(image_size=12)
    ds.to_netcdf(tmp_path / "dataset.nc", engine="netcdf4")
    back = xr.load_dataset(tmp_path / "dataset.nc", engine="netcdf4")
    np.testing.assert_array_equal(back["image"].values, ds["image"].values)
    assert back["split"].values.tolist() == ds["split"].values.tolist()
    assert back.attrs["dataset"] == "digits"


def test_unknown_dataset_lists_choices(tmp_path):
    with pytest.raises(ValueError) as info:
        load_dataset("imagenet", cache_dir=tmp_path)
    for name in DATASETS:
        assert name in str(info.value)


# --------------------------------------------------------------------------- MNIST / Fashion-MNIST


def _write_idx(path: Path, array: np.ndarray, magic: int) -> Path:
    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())
    return path


def _idx_files(folder: Path, n_train: int = 7, n_test: int = 5, seed: int = 0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train-images-idx3-ubyte.gz": (rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8), 2051),
        "train-labels-idx1-ubyte.gz": (rng.integers(0, 10, n_train, dtype=np.uint8), 2049),
        "t10k-images-idx3-ubyte.gz": (rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8), 2051),
        "t10k-labels-idx1-ubyte.gz": (rng.integers(0, 10, n_test, dtype=np.uint8), 2049),
    }
    paths = {f: _write_idx(folder / f, a, m) for f, (a, m) in arrays.items()}
    return paths, {f: a for f, (a, _) in arrays.items()}


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_idx_datasets(name, tmp_path, monkeypatch):
    paths, arrays = _idx_files(tmp_path / "server")
    _serve(monkeypatch, name, paths)
    ds = load_dataset(name, cache_dir=tmp_path / "cache", progress=False)
    _check_contract(ds, name, 7, 5, 28)
    images = np.concatenate([arrays["train-images-idx3-ubyte.gz"], arrays["t10k-images-idx3-ubyte.gz"]])
    labels = np.concatenate([arrays["train-labels-idx1-ubyte.gz"], arrays["t10k-labels-idx1-ubyte.gz"]])
    np.testing.assert_allclose(ds["image"].values, images / 255.0 * 2 - 1, atol=1e-6)
    np.testing.assert_array_equal(ds["label"].values, labels)
    assert ds["source_index"].values.tolist() == list(range(7)) + list(range(5))
    assert json.loads(ds.attrs["md5"]) == {f: _md5(p) for f, p in paths.items()}
    assert paths["t10k-images-idx3-ubyte.gz"].as_uri() in ds.attrs["source"]
    assert sorted(p.name for p in (tmp_path / "cache" / name).iterdir()) == sorted(paths)
    # cached: loading again does not need the server
    for p in paths.values():
        p.unlink()
    xr.testing.assert_identical(load_dataset(name, cache_dir=tmp_path / "cache", progress=False), ds)


def test_truncated_idx_in_cache_is_named(tmp_path, monkeypatch):
    paths, _ = _idx_files(tmp_path / "cache" / "mnist")
    bad = paths["train-images-idx3-ubyte.gz"]
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])  # half-written gzip
    _serve(monkeypatch, "mnist", paths, md5={"train-images-idx3-ubyte.gz": None})
    with pytest.raises(DatasetFileError) as info:
        load_dataset("mnist", cache_dir=tmp_path / "cache", progress=False)
    assert str(bad) in str(info.value) and "delete" in str(info.value)

    # complete gzip, but fewer pixels than the IDX header announces
    with gzip.open(bad, "wb") as f:
        f.write((2051).to_bytes(4, "big") + (7).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2 + b"\0" * 100)
    with pytest.raises(DatasetFileError, match="header says 7x28x28"):
        load_dataset("mnist", cache_dir=tmp_path / "cache", progress=False)

    # wrong magic number (a label file where images belong)
    _write_idx(bad, np.zeros(7, np.uint8), 2049)
    with pytest.raises(DatasetFileError, match="magic number 2049, expected 2051"):
        load_dataset("mnist", cache_dir=tmp_path / "cache", progress=False)


def test_md5_mismatch_raises_and_keeps_nothing(tmp_path, monkeypatch):
    paths, _ = _idx_files(tmp_path / "server")
    _serve(monkeypatch, "fashion_mnist", paths, md5={"t10k-labels-idx1-ubyte.gz": "0" * 32})
    with pytest.raises(ChecksumError, match="t10k-labels-idx1-ubyte.gz"):
        load_dataset("fashion_mnist", cache_dir=tmp_path / "cache", progress=False)
    cached = {p.name for p in (tmp_path / "cache" / "fashion_mnist").iterdir()}
    assert "t10k-labels-idx1-ubyte.gz" not in cached and not any(n.endswith(".part") for n in cached)


# --------------------------------------------------------------------------- no network (rule dataset)


def _no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError(f"fetch called with {args}: read_dataset must not download")

    monkeypatch.setattr(download, "fetch", refuse)
    monkeypatch.setattr(datasets, "fetch", refuse)


def test_fetch_then_read_is_load_and_read_never_fetches(tmp_path, monkeypatch):
    """What rules download_images and dataset do: download into the cache, then read it offline."""
    paths, _ = _idx_files(tmp_path / "server")
    _serve(monkeypatch, "mnist", paths)
    cache = tmp_path / "cache"
    fetched = fetch_dataset("mnist", cache, progress=False)
    assert fetched == dataset_files("mnist", cache) == {f: cache / "mnist" / f for f in paths}
    assert download_files("mnist")["t10k-images-idx3-ubyte.gz"]["urls"] == [paths["t10k-images-idx3-ubyte.gz"].as_uri()]
    assert download_files("digits") == {} and dataset_files("digits", cache) == {}
    expected = load_dataset("mnist", cache_dir=tmp_path / "other", progress=False)
    _no_network(monkeypatch)
    for p in paths.values():
        p.unlink()  # and no server either
    xr.testing.assert_identical(read_dataset("mnist", {f: str(p) for f, p in fetched.items()}), expected)


def test_read_dataset_names_the_missing_file_and_the_download_rule(tmp_path, monkeypatch):
    paths, _ = _idx_files(tmp_path / "cache" / "mnist")
    _serve(monkeypatch, "mnist", paths)
    _no_network(monkeypatch)
    gone = paths["t10k-labels-idx1-ubyte.gz"]
    gone.unlink()
    with pytest.raises(MissingDownloadError) as info:
        read_dataset("mnist", dataset_files("mnist", tmp_path / "cache"))
    assert str(gone) in str(info.value) and "download_images" in str(info.value)
    with pytest.raises(ValueError, match="lacks.*t10k-labels-idx1-ubyte.gz"):
        read_dataset("mnist", {f: p for f, p in paths.items() if p != gone})
    with pytest.raises(ValueError, match="load_digits"):
        read_dataset("digits", {})


def test_read_dataset_verifies_the_md5(tmp_path, monkeypatch):
    paths, _ = _idx_files(tmp_path / "cache" / "fashion_mnist")
    _serve(monkeypatch, "fashion_mnist", paths, md5={"train-labels-idx1-ubyte.gz": "0" * 32})
    _no_network(monkeypatch)
    with pytest.raises(ChecksumError, match=r"labels-idx1-ubyte.gz is not the expected file \(md5 expected 0{32}"):
        read_dataset("fashion_mnist", paths)
    ds = read_dataset("fashion_mnist", paths, verify=False)  # the caller verified them (load_dataset)
    assert json.loads(ds.attrs["md5"])["train-labels-idx1-ubyte.gz"] == "0" * 32


# --------------------------------------------------------------------------- CIFAR-10


def _cifar_batch(n: int, rng, label: str) -> dict:
    return {
        b"batch_label": label.encode(),
        b"labels": [int(v) for v in rng.integers(0, 10, n)],
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        b"filenames": [f"img_{i}.png".encode() for i in range(n)],
    }


def _cifar_archive(path: Path, batches: dict[str, dict], extra: list[tarfile.TarInfo] = ()) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, batch in batches.items():
            raw = batch if isinstance(batch, bytes) else pickle.dumps(batch, protocol=2)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
        for info in extra:
            tar.addfile(info, io.BytesIO(b"x" * info.size) if info.isfile() else None)
    return path


def _cifar_batches(rng) -> dict[str, dict]:
    batches = {f"data_batch_{i}": _cifar_batch(3, rng, f"training batch {i} of 5") for i in range(1, 6)}
    batches["test_batch"] = _cifar_batch(4, rng, "testing batch 1 of 1")
    batches["data_batch_1"][b"data"][0, [0, 1024, 2048]] = [255, 0, 0]  # pixel (0,0) pure red
    return batches


def test_cifar10(tmp_path, monkeypatch):
    batches = _cifar_batches(np.random.default_rng(1))
    meta = {b"label_names": [b"airplane"] * 10, b"num_cases_per_batch": 10000, b"num_vis": 3072}
    # the real batches were pickled by Python 2 / numpy 1 and name numpy.core.multiarray
    old_names = pickle.dumps(batches["data_batch_2"], protocol=2).replace(b"numpy._core.", b"numpy.core.")
    assert b"numpy.core.multiarray" in old_names
    archive = _cifar_archive(
        tmp_path / "cifar-10-python.tar.gz", {**batches, "data_batch_2": old_names, "batches.meta": meta}
    )
    _serve(monkeypatch, "cifar10", {"cifar-10-python.tar.gz": archive})
    ds = load_dataset("cifar10", cache_dir=tmp_path / "cache", progress=False)
    _check_contract(ds, "cifar10", 15, 4, 32)
    order = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    data = np.concatenate([batches[b][b"data"] for b in order]).astype(np.float64)
    labels = np.concatenate([batches[b][b"labels"] for b in order])
    np.testing.assert_array_equal(ds["label"].values, labels)
    # rows are channel-major: pixel (y, x) of channel c is column c*1024 + y*32 + x
    y, x = 5, 17
    want = np.mean([data[:, c * 1024 + y * 32 + x] / 255 * 2 - 1 for c in range(3)], axis=0)
    np.testing.assert_allclose(ds["image"].values[:, y, x], want, atol=1e-6)
    full = (data.reshape(-1, 3, 32, 32) / 255 * 2 - 1).mean(axis=1)
    np.testing.assert_allclose(ds["image"].values, full, atol=1e-6)
    assert ds["image"].values[0, 0, 0] == pytest.approx(-1 / 3, abs=1e-6)
    assert ds["source_index"].values.tolist() == list(range(15)) + list(range(4))
    assert not (tmp_path / "cache" / "cifar10" / "cifar-10-batches-py").exists()  # read in place


@pytest.mark.parametrize(
    "member, reason",
    [("../evil", "'..'"), ("/etc/evil", "absolute path"), ("cifar-10-batches-py/link", "link")],
)
def test_cifar10_unsafe_archive_is_refused(member, reason, tmp_path, monkeypatch):
    info = tarfile.TarInfo(member)
    if member.endswith("link"):
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
    else:
        info.size = 1
    archive = _cifar_archive(tmp_path / "cifar-10-python.tar.gz", _cifar_batches(np.random.default_rng(0)), [info])
    _serve(monkeypatch, "cifar10", {"cifar-10-python.tar.gz": archive})
    with pytest.raises(DatasetFileError, match=reason) as exc:
        load_dataset("cifar10", cache_dir=tmp_path / "cache", progress=False)
    assert member in str(exc.value) and "cifar-10-python.tar.gz" in str(exc.value)


def test_cifar10_pickle_cannot_run_code(tmp_path, monkeypatch):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    batches = _cifar_batches(np.random.default_rng(0))
    batches["test_batch"] = pickle.dumps({b"data": Evil()}, protocol=2)
    archive = _cifar_archive(tmp_path / "cifar-10-python.tar.gz", batches)
    _serve(monkeypatch, "cifar10", {"cifar-10-python.tar.gz": archive})
    with pytest.raises(DatasetFileError, match=r"refusing to load (__builtin__|builtins)\.print"):
        load_dataset("cifar10", cache_dir=tmp_path / "cache", progress=False)


def test_cifar10_missing_batch_and_truncated_archive(tmp_path, monkeypatch):
    batches = _cifar_batches(np.random.default_rng(0))
    del batches["data_batch_3"]
    archive = _cifar_archive(tmp_path / "cifar-10-python.tar.gz", batches)
    _serve(monkeypatch, "cifar10", {"cifar-10-python.tar.gz": archive})
    with pytest.raises(DatasetFileError, match="data_batch_3 is missing"):
        load_dataset("cifar10", cache_dir=tmp_path / "cache", progress=False)

    cached = tmp_path / "cache2" / "cifar10" / "cifar-10-python.tar.gz"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(archive.read_bytes()[:-200])
    _serve(monkeypatch, "cifar10", {"cifar-10-python.tar.gz": archive}, md5={"cifar-10-python.tar.gz": None})
    with pytest.raises(DatasetFileError) as info:
        load_dataset("cifar10", cache_dir=tmp_path / "cache2", progress=False)
    assert str(cached) in str(info.value) and "delete" in str(info.value)


# --------------------------------------------------------------------------- SVHN


def _svhn_mat(path: Path, n: int, rng) -> tuple[Path, np.ndarray, np.ndarray]:
    x = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
    y = rng.integers(1, 11, (n, 1)).astype(np.uint8)
    y[0, 0] = 10  # the digit 0
    scipy.io.savemat(path, {"X": x, "y": y})
    return path, x, y


def test_svhn_cropped(tmp_path, monkeypatch):
    rng = np.random.default_rng(2)
    train, xtr, ytr = _svhn_mat(tmp_path / "train_32x32.mat", 6, rng)
    test, xte, yte = _svhn_mat(tmp_path / "test_32x32.mat", 3, rng)
    _serve(monkeypatch, "svhn_cropped", {"train_32x32.mat": train, "test_32x32.mat": test})
    ds = load_dataset("svhn_cropped", cache_dir=tmp_path / "cache", progress=False)
    _check_contract(ds, "svhn_cropped", 6, 3, 32)
    want_labels = np.concatenate([ytr[:, 0], yte[:, 0]]).astype(np.int64) % 10
    np.testing.assert_array_equal(ds["label"].values, want_labels)
    assert ds["label"].values[0] == 0 and ds["label"].values[6] == 0
    x = np.concatenate([xtr, xte], axis=3).astype(np.float64)  # (32, 32, 3, N)
    want = (x / 255 * 2 - 1).mean(axis=2).transpose(2, 0, 1)
    np.testing.assert_allclose(ds["image"].values, want, atol=1e-6)


def test_svhn_bad_file_is_named(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    train, _, _ = _svhn_mat(tmp_path / "train_32x32.mat", 2, rng)
    test = tmp_path / "test_32x32.mat"
    scipy.io.savemat(test, {"images": np.zeros((2, 2), np.uint8)})
    _serve(monkeypatch, "svhn_cropped", {"train_32x32.mat": train, "test_32x32.mat": test})
    with pytest.raises(DatasetFileError, match="variables X and y expected") as info:
        load_dataset("svhn_cropped", cache_dir=tmp_path / "cache", progress=False)
    assert "test_32x32.mat" in str(info.value)


def test_raw_space_round_trip():
    x = torch.linspace(-1, 1, 11)
    torch.testing.assert_close(from_raw(to_raw(x)), x)
    assert to_raw(torch.tensor(-1.0)) == 0 and to_raw(torch.tensor(1.0)) == 1
