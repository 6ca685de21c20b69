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
