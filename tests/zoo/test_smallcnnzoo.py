"""The real Small CNN Zoo source, tested offline on archives built here in exactly the
zoo's format (DESIGN.md, "Small CNN Zoo format"): a folder ``mnist/`` holding
``weights.npy`` (rows x 4970 float32, one row per checkpoint), ``metrics.csv.gz`` and
``layout.csv``, packed as ``.tar.xz`` and fetched through ``file://`` URLs."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from causalxai.data import download
from causalxai.data.download import ChecksumError, MissingDownloadError
from causalxai.zoo import smallcnnzoo
from causalxai.zoo.dataset import model_from_zoo, zoo_params
from causalxai.zoo.hparams import HPARAMS, sample_hparams
from causalxai.zoo.network import ZooCNN, batched_logits, flatten, zoo_layout
from causalxai.zoo.smallcnnzoo import (
    CHECKPOINT_STEPS,
    STAMP,
    ZOO_DATASETS,
    ZooArchiveError,
    extract_zoo_archive,
    fetch_zoo_archive,
    load_smallcnnzoo,
    load_smallcnnzoo_archive,
    read_zoo,
    zoo_url,
)

N_RUNS = 6
FILES = ("weights.npy", "metrics.csv.gz", "layout.csv")


# ----------------------------------------------------------------------------- builders


def make_zoo_tables(n_runs: int = N_RUNS, seed: int = 0) -> tuple[np.ndarray, pd.DataFrame, pd.DataFrame]:
    """Weights, metrics and layout of ``n_runs`` runs x 9 checkpoints, rows grouped by run.

    Every row is a real (randomly initialised) ZooCNN flattened into the zoo layout.
    """
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    layout = zoo_layout(1)
    hp = sample_hparams(n_runs, {}, seed)
    rows, records = [], []
    for run in range(n_runs):
        for k, step in enumerate(CHECKPOINT_STEPS):
            model = ZooCNN(1, hp.activation[run])
            params = {name: t.detach()[None] for name, t in model.state_dict().items()}
            rows.append(flatten(params, layout)[0].numpy())
            progress = (k + 1) / len(CHECKPOINT_STEPS)
            acc = float(0.1 + 0.85 * progress * rng.uniform(0.5, 1.0))
            rec = {f"config.{name}": hp[name][run] for name in HPARAMS}
            rec.update(
                {
                    "config.dataset": "mnist",
                    "config.epochs": 86,
                    "config.batch_size": 32,
                    "modeldir": f"/runs/{run}",
                    "step": step,
                    "test_accuracy": acc,
                    "test_loss": float(2.3 * (1 - acc) + rng.uniform(0, 0.1)),
                    "train_accuracy": min(1.0, acc + float(rng.uniform(0, 0.05))),
                    "train_loss": float(2.3 * (1 - acc)),
                    "laststep": step == 86,
                }
            )
            records.append(rec)
    metrics = pd.DataFrame(records)
    # the real table lists the config columns alphabetically among others
    metrics = metrics[sorted(metrics.columns)]
    return np.stack(rows).astype(np.float32), metrics, layout


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def write_zoo_archive(
    path: Path,
    weights: np.ndarray,
    metrics: pd.DataFrame,
    layout: pd.DataFrame,
    *,
    folder: str = "mnist",
    skip: tuple[str, ...] = (),
    extra: tuple[tarfile.TarInfo, ...] = (),
    extra_last: bool = False,
) -> Path:
    """Pack the three files into ``folder/`` of a ``.tar.xz`` at ``path`` (``extra``
    members before them, or after them with ``extra_last``)."""
    npy = io.BytesIO()
    np.save(npy, weights)
    csv = metrics.to_csv(index=False).encode()
    gz = io.BytesIO()
    with gzip.GzipFile(fileobj=gz, mode="wb", mtime=0) as fh:
        fh.write(csv)
    contents = {
        "layout.csv": layout.to_csv(index=False).encode(),
        "metrics.csv.gz": gz.getvalue(),
        "weights.npy": npy.getvalue(),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, mode="w:xz", preset=0) as tar:
        info = tarfile.TarInfo(folder)
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
        tar.addfile(info)
        if not extra_last:
            _add_extra(tar, extra)
        for name, data in contents.items():
            if name not in skip:
                _add_bytes(tar, f"{folder}/{name}", data)
        if extra_last:
            _add_extra(tar, extra)
    return path


def _add_extra(tar: tarfile.TarFile, extra: tuple[tarfile.TarInfo, ...]) -> None:
    for member in extra:
        tar.addfile(member, io.BytesIO(b"x" * member.size) if member.isfile() else None)


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def all_files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


@pytest.fixture(scope="module")
def tables():
    return make_zoo_tables()


@pytest.fixture(scope="module")
def archive(tmp_path_factory, tables) -> Path:
    return write_zoo_archive(tmp_path_factory.mktemp("remote") / "mnist.tar.xz", *tables)


def load(archive: Path, cache: Path, **kw):
    """load_smallcnnzoo from a file:// URL, verified with the archive's digest."""
    return load_smallcnnzoo("mnist", cache, url=archive.as_uri(), sha256=sha256_of(archive), progress=False, **kw)


# ----------------------------------------------------------------------------- tests


def test_load_keeps_one_final_model_per_run(archive, tables, tmp_path):
    weights, metrics, _ = tables
    zoo = load(archive, tmp_path / "cache")
    final_rows = np.flatnonzero(metrics.step.to_numpy() == 86)
    assert zoo.sizes["model"] == N_RUNS
    assert zoo.source_row.values.tolist() == final_rows.tolist()
    np.testing.assert_array_equal(zoo.weights.values, weights[final_rows])
    for name in HPARAMS:
        expected = metrics[f"config.{name}"].to_numpy()[final_rows]
        if expected.dtype.kind == "f":
            np.testing.assert_allclose(zoo[name].values, expected)
        else:
            assert zoo[name].values.tolist() == expected.astype(str).tolist()
    np.testing.assert_allclose(zoo.test_accuracy.values, metrics.test_accuracy.to_numpy()[final_rows])
    np.testing.assert_allclose(zoo.train_loss.values, metrics.train_loss.to_numpy()[final_rows])
    assert zoo.attrs["source"] == "smallcnnzoo"
    assert zoo.attrs["dataset"] == "mnist"
    assert zoo.attrs["input_size"] == 28
    assert zoo.attrs["n_params"] == 4970
    assert zoo.attrs["n_runs_final_step"] == N_RUNS
    assert zoo.attrs["n_dropped_nonfinite"] == 0
    assert zoo.attrs["final_step"] == 86
    assert zoo.attrs["archive_sha256"] == sha256_of(archive)
    assert zoo.attrs["url"] == archive.as_uri()
    assert (tmp_path / "cache" / "mnist.tar.xz").is_file()
    assert {f"mnist/{f}" for f in FILES} <= set(all_files(tmp_path / "cache"))

    # per-model forward (rebuilt from the zoo) equals the batched forward
    x = torch.randn(5, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    is_tanh = torch.tensor(zoo.activation.values == "tanh")
    with torch.no_grad():
        batched = batched_logits(zoo_params(zoo), x, is_tanh)
        for m in range(zoo.sizes["model"]):
            torch.testing.assert_close(model_from_zoo(zoo, m)(x), batched[m], rtol=1e-5, atol=1e-5)


def test_other_final_step(archive, tables, tmp_path):
    _, metrics, _ = tables
    zoo = load(archive, tmp_path / "cache", final_step=20)
    assert zoo.source_row.values.tolist() == np.flatnonzero(metrics.step.to_numpy() == 20).tolist()
    with pytest.raises(ZooArchiveError, match=r"no row with step == 7 .*steps present: \[0, 1, 2, 3, 20"):
        load(archive, tmp_path / "cache", final_step=7)


def test_crashed_runs_are_dropped_and_counted(tables, tmp_path, caplog):
    weights, metrics, layout = (t.copy() for t in tables)
    final = np.flatnonzero(metrics.step.to_numpy() == 86)
    weights[final[1], 17] = np.nan
    weights[final[3], 4000] = np.inf
    metrics.loc[final[5], "test_accuracy"] = np.nan
    weights[0, 0] = np.nan  # a non-final checkpoint of a kept run: irrelevant
    # run 4 crashed before its last checkpoint: no step-86 row at all
    keep = np.ones(len(metrics), dtype=bool)
    keep[final[4]] = False
    weights, metrics = weights[keep], metrics[keep].reset_index(drop=True)
    arc = write_zoo_archive(tmp_path / "remote" / "mnist.tar.xz", weights, metrics, layout)
    with caplog.at_level("INFO", logger="causalxai.zoo.smallcnnzoo"):
        zoo = load(arc, tmp_path / "cache")
    assert zoo.attrs["n_runs_final_step"] == N_RUNS - 1
    assert zoo.attrs["n_dropped_nonfinite"] == 3
    assert zoo.sizes["model"] == 2
    assert np.isfinite(zoo.weights.values).all()
    new_final = np.flatnonzero(metrics.step.to_numpy() == 86)
    assert zoo.source_row.values.tolist() == [new_final[0], new_final[2]]
    np.testing.assert_array_equal(zoo.weights.values, weights[[new_final[0], new_final[2]]])
    assert "dropped 3" in caplog.text


@pytest.mark.parametrize("damage", ["truncated", "corrupt"])
def test_damaged_archive_gives_a_clear_error_and_leaves_nothing(archive, tmp_path, damage):
    data = archive.read_bytes()
    if damage == "truncated":
        data = data[: len(data) // 2]
    else:
        mid = len(data) // 2
        data = data[:mid] + bytes(b ^ 0xFF for b in data[mid : mid + 64]) + data[mid + 64 :]
    bad = tmp_path / "remote" / "mnist.tar.xz"
    bad.parent.mkdir()
    bad.write_bytes(data)
    dest = tmp_path / "cache" / "mnist"
    with pytest.raises(ZooArchiveError, match=r"mnist\.tar\.xz is truncated or corrupt.*delete it.*download it again"):
        extract_zoo_archive(bad, dest)
    assert all_files(tmp_path / "cache") == []
    # through the whole loader too (fetched from a file:// URL with its digest)
    cache = tmp_path / "cache2"
    with pytest.raises(ZooArchiveError, match="truncated or corrupt"):
        load(bad, cache)
    assert [f for f in all_files(cache) if not f.startswith("mnist.tar.xz")] == []


def test_checksum_mismatch_leaves_nothing_in_the_cache(archive, tmp_path):
    cache = tmp_path / "cache"
    with pytest.raises(ChecksumError):
        load_smallcnnzoo("mnist", cache, url=archive.as_uri(), sha256="0" * 64, progress=False)
    assert all_files(cache) == []


def _member(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.size = 4 if kind == tarfile.REGTYPE else 0
    return info


@pytest.mark.parametrize(
    "member",
    [
        _member("../evil"),
        _member("mnist/../../evil"),
        _member("/tmp/evil"),
        _member("mnist/link", tarfile.SYMTYPE, "/etc/passwd"),
        _member("mnist/hard", tarfile.LNKTYPE, "mnist/layout.csv"),
        _member("mnist/dev", tarfile.CHRTYPE),
    ],
    ids=["dotdot", "nested-dotdot", "absolute", "symlink", "hardlink", "device"],
)
@pytest.mark.parametrize("last", [False, True], ids=["before", "after"])
def test_unsafe_members_are_refused(tables, tmp_path, member, last):
    arc = write_zoo_archive(tmp_path / "remote" / "mnist.tar.xz", *tables, extra=(member,), extra_last=last)
    dest = tmp_path / "cache" / "mnist"
    with pytest.raises(ValueError, match=f"refusing to extract member '{member.name}'"):
        extract_zoo_archive(arc, dest)
    assert all_files(tmp_path / "cache") == []
    assert not (tmp_path / "evil").exists()


def test_any_folder_prefix_is_accepted_and_missing_members_are_named(tables, tmp_path):
    arc = write_zoo_archive(tmp_path / "a" / "mnist.tar.xz", *tables, folder="./smallcnnzoo/mnist")
    files = extract_zoo_archive(arc, tmp_path / "x")
    assert sorted(files) == ["layout", "metrics", "weights"]
    assert {p.name for p in files.values()} == set(FILES)
    arc = write_zoo_archive(tmp_path / "b" / "mnist.tar.xz", *tables, skip=("metrics.csv.gz",))
    with pytest.raises(ZooArchiveError, match=r"lacks \['metrics.csv.gz'\]"):
        extract_zoo_archive(arc, tmp_path / "y")
    assert all_files(tmp_path / "y") == []


def test_layout_that_does_not_match_the_weights_is_an_error(tables, tmp_path):
    weights, metrics, _ = tables
    arc = write_zoo_archive(tmp_path / "r1" / "mnist.tar.xz", weights, metrics, zoo_layout(3))
    with pytest.raises(ZooArchiveError,
                       match=r"layout.csv describes 5258 parameters but .*weights.npy has 4970 columns"):
        load(arc, tmp_path / "c1")
    broken = zoo_layout(1)
    broken.loc[3, "shape"] = "(3, 3, 8, 16)"
    arc = write_zoo_archive(tmp_path / "r2" / "mnist.tar.xz", weights, metrics, broken)
    with pytest.raises(ZooArchiveError, match=r"layout.csv: sequential/conv2d_1/kernel:0 spans"):
        load(arc, tmp_path / "c2")


def test_metrics_that_do_not_match_the_weights_are_an_error(tables, tmp_path):
    weights, metrics, layout = tables
    arc = write_zoo_archive(tmp_path / "r1" / "mnist.tar.xz", weights, metrics.iloc[:-1], layout)
    with pytest.raises(ZooArchiveError, match=r"metrics.csv.gz has 53 rows but .*weights.npy has 54"):
        load(arc, tmp_path / "c1")
    arc = write_zoo_archive(tmp_path / "r2" / "mnist.tar.xz", weights, metrics.drop(columns="config.l2reg"), layout)
    with pytest.raises(ZooArchiveError, match=r"lacks the column\(s\) \['config.l2reg'\]"):
        load(arc, tmp_path / "c2")


def test_extraction_is_reused_and_redone_when_the_archive_changes(tables, tmp_path):
    arc = write_zoo_archive(tmp_path / "mnist.tar.xz", *tables)
    dest = tmp_path / "cache" / "mnist"
    files = extract_zoo_archive(arc, dest)
    before = {k: p.stat().st_mtime_ns for k, p in files.items()}
    assert extract_zoo_archive(arc, dest) == files
    assert {k: p.stat().st_mtime_ns for k, p in files.items()} == before
    # touched but identical bytes: re-hashed, not re-extracted
    os.utime(arc, ns=(arc.stat().st_atime_ns, arc.stat().st_mtime_ns + 10**9))
    extract_zoo_archive(arc, dest)
    assert {k: p.stat().st_mtime_ns for k, p in files.items()} == before
    # a different archive in the same place (overwritten in place: same inode)
    other = write_zoo_archive(tmp_path / "other" / "mnist.tar.xz", *make_zoo_tables(4, seed=1))
    with open(arc, "r+b") as fh:
        fh.truncate(0)
        fh.write(other.read_bytes())
    files2 = extract_zoo_archive(arc, dest)
    assert np.load(files2["weights"]).shape == (4 * 9, 4970)
    assert sha256_of(arc) in (dest / STAMP).read_text()
    # a half-done extraction (no record) is redone
    (dest / STAMP).unlink()
    (dest / "weights.npy").write_bytes(b"junk")
    extract_zoo_archive(arc, dest)
    assert np.load(files2["weights"]).shape == (4 * 9, 4970)
    assert [p.name for p in dest.iterdir() if p.name.startswith(".")] == []


def test_max_models_subsample_is_deterministic(tmp_path):
    arc = write_zoo_archive(tmp_path / "remote" / "mnist.tar.xz", *make_zoo_tables(12, seed=2))
    full = load(arc, tmp_path / "cache")
    a = load(arc, tmp_path / "cache", max_models=5, seed=3)
    b = load(arc, tmp_path / "cache", max_models=5, seed=3)
    c = load(arc, tmp_path / "cache", max_models=5, seed=4)
    rows = a.source_row.values
    assert a.sizes["model"] == 5
    assert rows.tolist() == b.source_row.values.tolist()
    assert rows.tolist() == sorted(rows.tolist())
    assert set(rows) <= set(full.source_row.values)
    assert rows.tolist() != c.source_row.values.tolist()
    pos = np.searchsorted(full.source_row.values, rows)
    np.testing.assert_array_equal(a.weights.values, full.weights.values[pos])
    assert load(arc, tmp_path / "cache", max_models=50).sizes["model"] == 12


def test_unknown_dataset_lists_the_zoo_datasets(tmp_path):
    with pytest.raises(ValueError, match=r"unknown Small CNN Zoo dataset 'kmnist'.*'fashion_mnist'"):
        load_smallcnnzoo("kmnist", tmp_path)
    with pytest.raises(ValueError, match="svhn_cropped"):
        fetch_zoo_archive("imagenet", tmp_path)
    assert all_files(tmp_path) == []
    assert zoo_url("cifar10") == "https://storage.googleapis.com/gresearch/smallcnnzoo-dataset/cifar10.tar.xz"
    assert zoo_url("svhn_cropped", "http://127.0.0.1:1/{dataset}.tar.xz").endswith("/svhn_cropped.tar.xz")
    assert len(ZOO_DATASETS) == 4


def test_download_without_checksum_warns_and_records_the_digest(archive, tmp_path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        path = fetch_zoo_archive("mnist", tmp_path / "cache", url=archive.as_uri(), progress=False)
    assert path == tmp_path / "cache" / "mnist.tar.xz"
    assert path.read_bytes() == archive.read_bytes()
    assert caught, "a download without a checksum must warn"
    assert sha256_of(archive) in (tmp_path / "cache" / "mnist.tar.xz.sha256").read_text()


def test_read_zoo_on_plain_files_drops_missing_hyperparameters(tables, tmp_path):
    weights, metrics, layout = (t.copy() for t in tables)
    final = np.flatnonzero(metrics.step.to_numpy() == 86)
    metrics.loc[final[2], "config.dropout"] = np.nan
    metrics.loc[final[4], "config.optimizer"] = None
    np.save(tmp_path / "weights.npy", weights)
    metrics.to_csv(tmp_path / "metrics.csv.gz", index=False)
    layout.to_csv(tmp_path / "layout.csv", index=False)
    files = {"weights": tmp_path / "weights.npy", "metrics": tmp_path / "metrics.csv.gz",
             "layout": tmp_path / "layout.csv"}
    zoo = read_zoo(files, "mnist")
    assert zoo.source_row.values.tolist() == final[[0, 1, 3, 5]].tolist()
    assert zoo.attrs["n_dropped_missing_hparams"] == 2
    assert zoo.attrs["n_dropped_nonfinite"] == 0
    assert zoo.attrs["archive_sha256"] == ""  # no extraction record next to the files
    with pytest.raises(ValueError, match="read_zoo needs the paths"):
        read_zoo({"weights": files["weights"]}, "mnist")


# ----------------------------------------------------------------------------- no network (rule zoo_smallcnnzoo)


def _no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError(f"fetch called with {args}: the archive reader must not download")

    monkeypatch.setattr(download, "fetch", refuse)
    monkeypatch.setattr(smallcnnzoo, "fetch", refuse)


def test_local_archive_is_read_without_fetching(archive, tmp_path, monkeypatch):
    """What rule zoo_smallcnnzoo does: the archive download_zoo put into the cache, read offline,
    equal to what load_smallcnnzoo downloads and reads."""
    expected = load(archive, tmp_path / "online")
    cache = tmp_path / "cache"
    cache.mkdir()
    local = cache / "mnist.tar.xz"
    local.write_bytes(archive.read_bytes())
    _no_network(monkeypatch)
    got = load_smallcnnzoo_archive(local, "mnist", url=archive.as_uri(), sha256=sha256_of(archive))
    assert got.equals(expected) and got.attrs == expected.attrs  # url and archive_sha256 included
    assert (cache / "mnist" / STAMP).is_file()  # extracted next to the archive, as load_smallcnnzoo does
    # the default url records where the zoo publishes its archives
    assert load_smallcnnzoo_archive(local, "mnist").attrs["url"] == zoo_url("mnist")


def test_missing_archive_names_the_file_and_the_download_rule(tmp_path, monkeypatch):
    _no_network(monkeypatch)
    missing = tmp_path / "cache" / "mnist.tar.xz"
    with pytest.raises(MissingDownloadError) as info:
        load_smallcnnzoo_archive(missing, "mnist")
    msg = str(info.value)
    assert str(missing) in msg and "download_zoo" in msg and "fetch_zoo_archive" in msg
    assert isinstance(info.value, FileNotFoundError)
    assert not (tmp_path / "cache").exists()  # nothing created


def test_local_archive_with_the_wrong_digest_is_refused(archive, tmp_path, monkeypatch):
    local = tmp_path / "cache" / "mnist.tar.xz"
    local.parent.mkdir()
    local.write_bytes(archive.read_bytes())
    _no_network(monkeypatch)
    with pytest.raises(ChecksumError, match=r"sha256 expected 0{64}, got " + sha256_of(archive)):
        load_smallcnnzoo_archive(local, "mnist", sha256="0" * 64)
    # the right pin (any case) passes, from the digest the extraction recorded
    assert load_smallcnnzoo_archive(local, "mnist", sha256=sha256_of(archive).upper()).sizes["model"] == N_RUNS
