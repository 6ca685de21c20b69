"""netCDF conventions: provenance attributes and atomic writes."""

import json

import numpy as np
import pytest
import xarray as xr

import causalxai
from causalxai import io


def test_roundtrip_with_provenance(tmp_path):
    ds = xr.Dataset({"a": (("x",), np.arange(3.0))}, attrs={"flag": True, "table": {"k": [1, 2]}})
    path = io.write_dataset(ds, tmp_path / "sub" / "r.nc", step="demo", config={"edges": [0, 50, 100], "x": None},
                            seed=3)
    back = io.open(path)
    np.testing.assert_array_equal(back["a"].values, ds["a"].values)
    prov = io.provenance(back)
    assert prov == {"step": "demo", "causalxai_version": causalxai.__version__, "seed": 3,
                    "config": {"edges": [0, 50, 100], "x": None}, "inputs": {},
                    "content_id": io.content_id("demo", {"edges": [0, 50, 100], "x": None}, 3)}
    assert list(tmp_path.joinpath("sub").iterdir()) == [path]  # no temporary file left


def test_failed_write_leaves_nothing(tmp_path):
    target = tmp_path / "r.nc"
    with pytest.raises(RuntimeError):
        with io.atomic_path(target) as tmp:
            tmp.write_bytes(b"partial")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_open_missing_file_says_how_to_make_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="snakemake"):
        io.open(tmp_path / "results" / "zoo.nc")


def test_written_files_get_the_usual_permissions(tmp_path):
    import os

    umask = os.umask(0o022)
    try:
        path = io.write_dataset(xr.Dataset({"a": ("x", [1.0])}), tmp_path / "r.nc", step="demo")
    finally:
        os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o644


def test_describe_sets_each_variables_description():
    import numpy as np
    import xarray as xr

    from causalxai.io import describe

    ds = xr.Dataset({"a": ("x", np.arange(3)), "b": ("x", np.ones(3))})
    assert describe(ds, {"a": "the first", "b": "the second"}) is ds
    assert ds["a"].attrs == {"description": "the first"} and ds["b"].attrs == {"description": "the second"}


def test_write_streamed_is_atomic(tmp_path):
    import numpy as np
    import pytest
    import xarray as xr

    from causalxai import io

    skeleton = xr.Dataset(coords={"model": np.arange(5)}, attrs={"note": {"a": 1}})
    with io.write_streamed(skeleton, tmp_path / "a.nc", step="s", config={"k": 2}, seed=3) as nc:
        v = nc.createVariable("w", "f4", ("model",))
        for start in range(0, 5, 2):
            v[start : start + 2] = np.arange(start, min(start + 2, 5))
        io.set_attr(nc, "done", [1, 2])
    back = io.open(tmp_path / "a.nc")
    np.testing.assert_array_equal(back["w"].values, np.arange(5))
    assert io.provenance(back) == {"step": "s", "causalxai_version": back.attrs["causalxai_version"], "seed": 3,
                                   "config": {"k": 2}, "inputs": {}, "content_id": io.content_id("s", {"k": 2}, 3)}
    assert back.attrs["done"] == "[1, 2]" and back.attrs["note"] == '{"a": 1}'
    with pytest.raises(RuntimeError):
        with io.write_streamed(skeleton, tmp_path / "b.nc", step="s") as nc:
            raise RuntimeError("a block failed")
    assert not list(tmp_path.glob("*b.nc*"))


def test_a_lazy_subset_closes_its_file(tmp_path):
    ds = xr.Dataset({"a": ("x", np.arange(3.0)), "b": ("x", np.ones(3))})
    path = io.write_dataset(ds, tmp_path / "f.nc", step="t")
    sub = io.open_lazy(path, variables=["a"])
    # closing the subset closes the file, rather than leaving it to the garbage collector (which
    # closed HDF5 handles in the middle of later netCDF calls: a segmentation fault)
    assert list(sub.data_vars) == ["a"] and sub._close is not None
    sub.close()


# --- consistency: content ids, recorded inputs, refused mismatches (issue 17 item 1) ---


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A working directory (results/ paths relative to it), and no job's inputs left over."""
    monkeypatch.chdir(tmp_path)
    io.end_job()
    yield tmp_path
    io.end_job()


def _result(path, step, config=None, inputs=None, value=1.0):
    """A small result written as a step of a job with ``inputs`` (name -> path) would write it."""
    if inputs is not None:
        io.begin_job(inputs, wildcards={"dataset": "digits"})
    try:
        return io.write_dataset(xr.Dataset({"a": ("x", np.full(3, value))}), path, step=step,
                                config=config or {}, seed=1)
    finally:
        io.end_job()


def _attrs(path):
    import netCDF4

    with netCDF4.Dataset(path) as nc:
        return {k: nc.getncattr(k) for k in nc.ncattrs()}


def _chain(config=None):
    """results/zoo.nc <- results/buckets.nc <- results/effects.nc (each made from the one before)."""
    zoo = _result("results/zoo.nc", "zoo", config or {"n_models": 8})
    buckets = _result("results/buckets.nc", "buckets", {"edges": [0, 100]}, inputs={"zoo": "results/zoo.nc"})
    effects = _result("results/effects.nc", "effects", {"kernel": "rbf"},
                      inputs={"zoo": "results/zoo.nc", "buckets": "results/buckets.nc"})
    return zoo, buckets, effects


def test_content_ids_are_deterministic_and_follow_what_made_the_file(tmp_path, monkeypatch):
    attrs = []
    for where in ("a", "b"):  # the same config in two folders: the same attributes, no absolute paths
        (tmp_path / where).mkdir()
        monkeypatch.chdir(tmp_path / where)
        _chain()
        attrs.append({name: _attrs(f"results/{name}.nc") for name in ("zoo", "buckets", "effects")})
    assert attrs[0] == attrs[1]
    zoo, buckets, effects = (attrs[0][n] for n in ("zoo", "buckets", "effects"))
    assert len(zoo["content_id"]) == io.CONTENT_ID_LENGTH and zoo["path"] == "results/zoo.nc"
    assert len({zoo["content_id"], buckets["content_id"], effects["content_id"]}) == 3
    assert json.loads(buckets["inputs"]) == {"zoo": {"path": "results/zoo.nc", "id": zoo["content_id"], "step": "zoo"}}
    assert set(json.loads(effects["inputs"])) == {"zoo", "buckets"}

    # another config upstream changes every id downstream (the ids chain)
    (tmp_path / "c").mkdir()
    monkeypatch.chdir(tmp_path / "c")
    _chain({"n_models": 16})
    other = {name: _attrs(f"results/{name}.nc")["content_id"] for name in ("zoo", "buckets", "effects")}
    assert all(other[n] != attrs[0][n]["content_id"] for n in other)

    base = io.content_id("s", {"k": 1}, 1, {"x": {"id": "aa"}}, {"dataset": "digits"})
    assert base == io.content_id("s", {"k": 1}, 1, {"x": {"id": "aa"}}, {"dataset": "digits"})
    changed = [io.content_id("s", {"k": 2}, 1, {"x": {"id": "aa"}}, {"dataset": "digits"}),
               io.content_id("s", {"k": 1}, 2, {"x": {"id": "aa"}}, {"dataset": "digits"}),
               io.content_id("s", {"k": 1}, 1, {"x": {"id": "bb"}}, {"dataset": "digits"}),
               io.content_id("s", {"k": 1}, 1, {"x": {"id": "aa"}}, {"dataset": "mnist"}),
               io.content_id("t", {"k": 1}, 1, {"x": {"id": "aa"}}, {"dataset": "digits"})]
    assert base not in changed and len(set(changed)) == len(changed)


def test_a_job_records_every_input_and_its_id(workdir):
    import hashlib

    _result("results/zoo.nc", "zoo")
    weights = workdir / "results" / "model.pt"
    weights.write_bytes(b"weights" * 100)
    recorded = io.begin_job({"zoo": "results/zoo.nc", "weights": "results/model.pt"}, wildcards={"dataset": "digits"})
    io.write_dataset(xr.Dataset({"a": ("x", [1.0])}), "results/out.nc", step="out")
    io.end_job()
    zoo_id = _attrs("results/zoo.nc")["content_id"]
    expected = {"zoo": {"path": "results/zoo.nc", "id": zoo_id, "step": "zoo"},
                "weights": {"path": "results/model.pt", "id": hashlib.sha256(weights.read_bytes()).hexdigest(),
                            "size": 700}}
    assert recorded == expected and json.loads(_attrs("results/out.nc")["inputs"]) == expected
    assert io.file_id("results/model.pt") == expected["weights"]["id"] and io.file_id("results/zoo.nc") == zoo_id
    # a result re-written from an opened input does not carry the input's provenance over
    io.write_dataset(io.open("results/zoo.nc"), "results/copy.nc", step="copy")
    assert json.loads(_attrs("results/copy.nc")["inputs"]) == {} and _attrs("results/copy.nc")["content_id"] != zoo_id


def test_a_swapped_input_is_refused_naming_both_files(workdir):
    _, _, effects = _chain()
    old = _attrs("results/zoo.nc")["content_id"]
    io.open(effects)  # consistent
    _result("results/zoo.nc", "zoo", {"n_models": 99})  # a zoo.nc of another config (a restored backup)
    new = _attrs("results/zoo.nc")["content_id"]
    for call in (lambda: io.open(effects), lambda: io.open_lazy(effects),
                 lambda: io.begin_job({"effects": "results/effects.nc"})):
        with pytest.raises(io.ProvenanceError) as err:
            call()
        msg = str(err.value)
        assert "results/zoo.nc" in msg and old in msg and new in msg and "step zoo" in msg
        assert "--forcerun results/zoo.nc" in msg and "--forcerun results/effects.nc" in msg
    assert isinstance(err.value, ValueError)
    # the chain is followed: buckets.nc, made from the old zoo.nc, is refused too
    with pytest.raises(io.ProvenanceError, match=r"results/buckets.nc \(step buckets\) was made from another "
                                                 r"results/zoo.nc"):
        io.open("results/buckets.nc")
    assert float(io.open(effects, verify=False)["a"][0]) == 1.0  # verify=False reads it anyway


def test_a_swapped_weights_file_is_refused_and_a_large_one_compared_by_size(workdir, monkeypatch):
    (workdir / "results").mkdir()
    weights = workdir / "results" / "model.pt"
    weights.write_bytes(b"a" * 100)
    out = _result("results/interventions.nc", "interventions", inputs={"model": "results/model.pt"})
    weights.write_bytes(b"b" * 100)
    with pytest.raises(io.ProvenanceError, match="another results/model.pt: it recorded SHA-256"):
        io.open(out)
    monkeypatch.setattr(io, "HASH_CHECK_LIMIT", 10)
    weights.write_bytes(b"c" * 100)
    io.open(out)  # same size, too large to hash again outside a job that reads it: accepted
    weights.write_bytes(b"c" * 101)
    with pytest.raises(io.ProvenanceError, match="a file of 101 bytes"):
        io.open(out)


def test_a_truncated_file_is_reported_as_truncated_with_the_forcerun(workdir):
    zoo, _, effects = _chain()
    data = zoo.read_bytes()
    zoo.write_bytes(data[: len(data) // 2])  # a copy cut short (a full disk, a killed copy)
    for call in (lambda: io.open(zoo), lambda: io.open_lazy(zoo), lambda: io.open(zoo, verify=False),
                 lambda: io.open(effects), lambda: io.begin_job({"zoo": "results/zoo.nc"})):
        with pytest.raises(io.CorruptFileError) as err:
            call()
        msg = str(err.value)
        assert msg.startswith("results/zoo.nc cannot be read: truncated or corrupt (")
        assert "HDF error" in msg and "snakemake --cores N --forcerun results/zoo.nc" in msg
    zoo.write_bytes(b"not a netCDF file")
    with pytest.raises(io.CorruptFileError, match="truncated or corrupt"):
        io.open(zoo)


def test_files_without_provenance_are_accepted(workdir):
    (workdir / "results").mkdir()
    xr.Dataset({"a": ("x", [1.0])}).to_netcdf("results/old.nc")  # an older version's or another tool's file
    recorded = io.begin_job({"old": "results/old.nc"})
    out = io.write_dataset(xr.Dataset({"a": ("x", [2.0])}), "results/new.nc", step="new")
    io.end_job()
    assert recorded == {"old": {"path": "results/old.nc", "id": None, "step": None}}
    xr.Dataset({"a": ("x", [3.0])}).to_netcdf("results/old.nc")  # changed, but it has no id to compare
    io.open(out)
    io.open("results/old.nc")
    # a recorded input that was deleted is not compared; nor is a file copied elsewhere
    _, _, effects = _chain()
    (workdir / "results" / "buckets.nc").unlink()
    io.open(effects)
    _result("results/zoo.nc", "zoo", {"n_models": 99})
    (workdir / "elsewhere").mkdir()
    copied = workdir / "elsewhere" / "effects.nc"
    copied.write_bytes(effects.read_bytes())
    io.open(copied)  # its recorded paths cannot be resolved: read as it is


def test_atomic_path_names_the_temporary_file_without_a_random_part(workdir):
    torch = pytest.importorskip("torch")
    digests = []
    for where in ("a", "b"):
        dest = workdir / where / "model.pt"
        with io.atomic_path(dest) as tmp:
            assert tmp.name == "model.pt.tmp" and tmp.parent.name.endswith(".tmp") and tmp.parent.parent == dest.parent
            torch.save({"w": torch.arange(3.0)}, tmp)  # torch names its archive folder after the file
        assert sorted(p.name for p in dest.parent.iterdir()) == ["model.pt"]
        digests.append(io.file_id(dest))
    assert digests[0] == digests[1]  # equal results, equal bytes, equal ids


@pytest.mark.parametrize("chunks", [(7, 2, 3), None])
def test_read_rows_equals_isel_in_any_order(tmp_path, chunks):
    """read_rows reads whole blocks (the file's chunks along the rows, or block_bytes) and picks
    the rows: the same values as isel, rows unsorted and repeated, chunked or contiguous files."""
    from causalxai.io import open_lazy, read_rows

    data = np.random.default_rng(0).normal(size=(40, 2, 3)).astype(np.float32)
    ds = xr.Dataset({"v": (("model", "a", "b"), data)})
    enc = {"v": {"chunksizes": chunks}} if chunks else {"v": {"contiguous": True}}
    ds.to_netcdf(tmp_path / "f.nc", engine="netcdf4", encoding=enc)
    rows = np.array([33, 2, 2, 17, 39, 0, 8])
    with open_lazy(tmp_path / "f.nc") as lazy:
        for block in (24, 10**6):
            got = read_rows(lazy["v"], "model", rows, block_bytes=block)
            np.testing.assert_array_equal(got, data[rows])
            assert got.dtype == np.float32
        assert read_rows(lazy["v"], "model", np.array([], dtype=int)).shape == (0, 2, 3)
        with pytest.raises(ValueError, match="first dimension"):
            read_rows(lazy["v"].transpose("a", "model", "b"), "model", rows)
