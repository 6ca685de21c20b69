"""netCDF conventions: provenance attributes and atomic writes."""

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
                    "config": {"edges": [0, 50, 100], "x": None}}
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
                                   "config": {"k": 2}}
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
