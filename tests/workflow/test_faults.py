"""Interruption, concurrency and determinism of whole runs (the model-zoo study up to the effects).

* Two runs of the same config in two directories, at the same time: they do not interfere,
  and every netCDF file is identical (values and attributes; CPU); a third ``snakemake`` in
  the first directory while it runs is refused by Snakemake's lock with a clear message.
* A different seed gives a different zoo.
* Kill and resume: the zoo training is killed with SIGKILL mid-way (the whole process group,
  as a cluster's time limit or an OOM killer would); no readable partial ``zoo.nc`` is left,
  the next run says how to remove the stale lock, and after ``--unlock`` a plain re-run
  finishes without recomputing the finished dataset, and equals the uninterrupted run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import xarray as xr
import yaml

from causalxai import io

REPO = Path(__file__).resolve().parents[2]
CONFIG_FILE = REPO / ".test" / "config_faults" / "config.yaml"  # ~13-30 s of zoo training to kill
CONFIG = yaml.safe_load(CONFIG_FILE.read_text())
TARGET = "results/digits/effects.nc"

pytestmark = pytest.mark.workflow


def start(snakemake_runner, workdir: Path, config: dict, *args: str) -> subprocess.Popen:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    return snakemake_runner.start(workdir, *args, targets=[TARGET], cores=1, configfiles=[workdir / "config.yaml"])


def run(snakemake_runner, workdir: Path, *args: str, target: str = TARGET) -> subprocess.CompletedProcess:
    return snakemake_runner.run(workdir, *args, targets=[target], cores=1, configfiles=[workdir / "config.yaml"])


def wait_for(predicate, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def netcdf_files(workdir: Path) -> list[Path]:
    return sorted(p.relative_to(workdir) for p in (workdir / "results").rglob("*.nc"))


def zoo_training_started(workdir: Path) -> bool:
    log = workdir / "logs" / "digits" / "zoo.log"
    return log.exists() and "training" in log.read_text(errors="replace")


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, snakemake_runner):
    """Runs ``a`` and ``b`` at once (same config, two directories); while ``a`` trains its zoo a
    third snakemake in ``a`` is tried."""
    base = tmp_path_factory.mktemp("faults")
    a, b = base / "a", base / "b"
    pa, pb = start(snakemake_runner, a, CONFIG), start(snakemake_runner, b, CONFIG)
    try:
        wait_for(lambda: zoo_training_started(a) or pa.poll() is not None, 300, "run a's zoo training")
        intruder = run(snakemake_runner, a)
    finally:
        out_a, _ = pa.communicate(timeout=900)
        out_b, _ = pb.communicate(timeout=900)
    assert pa.returncode == 0, out_a[-4000:]
    assert pb.returncode == 0, out_b[-4000:]
    return a, b, intruder


def test_second_snakemake_in_a_running_directory_is_refused(two_runs):
    _, _, intruder = two_runs
    out = intruder.stdout + intruder.stderr
    assert intruder.returncode != 0
    assert "Directory cannot be locked" in out and "--unlock" in out, out[-2000:]


def test_two_runs_in_two_directories_are_identical(two_runs):
    a, b, _ = two_runs
    files = netcdf_files(a)
    assert files == netcdf_files(b) and len(files) >= 9, files
    for rel in files:
        xr.testing.assert_identical(io.open(a / rel), io.open(b / rel))  # values and attributes


def test_another_seed_changes_the_zoo(two_runs, snakemake_runner, tmp_path):
    a, _, _ = two_runs
    c = tmp_path / "c"
    c.mkdir()
    (c / "config.yaml").write_text(yaml.safe_dump({**CONFIG, "seed": 6}))
    res = run(snakemake_runner, c, target="results/digits/zoo.nc")
    assert res.returncode == 0, res.stderr[-3000:]
    za, zc = io.open(a / "results" / "digits" / "zoo.nc"), io.open(c / "results" / "digits" / "zoo.nc")
    assert za["weights"].shape == zc["weights"].shape
    assert not (za["weights"].values == zc["weights"].values).all()
    assert io.provenance(zc)["seed"] == 6


def test_kill_and_resume_equals_the_uninterrupted_run(two_runs, snakemake_runner, tmp_path):
    a, _, _ = two_runs
    work = tmp_path / "killed"
    proc = start(snakemake_runner, work, CONFIG)
    dataset = work / "results" / "digits" / "dataset.nc"
    try:
        wait_for(lambda: zoo_training_started(work) or proc.poll() is not None, 300, "the zoo training")
        assert proc.poll() is None, proc.communicate()[0][-3000:]
        time.sleep(1.0)  # mid-way through the training
        os.killpg(proc.pid, signal.SIGKILL)  # snakemake and the job's script at once
    finally:
        proc.wait(timeout=60)
    # the atomic write never leaves a readable partial zoo.nc: only steps that had finished are
    # there (dataset.nc, maybe images.nc), plus at most the killed write's hidden .zoo.nc.*.tmp
    finished = {p: p.stat().st_mtime for p in (work / "results" / "digits").iterdir() if p.name.endswith(".nc")}
    assert dataset in finished and (work / "results" / "digits" / "zoo.nc") not in finished, finished
    for path in finished:
        io.open(path)  # whole and readable

    locked = run(snakemake_runner, work)
    assert locked.returncode != 0 and "--unlock" in locked.stdout + locked.stderr  # the stale lock is named
    assert run(snakemake_runner, work, "--unlock").returncode == 0
    resumed = run(snakemake_runner, work)
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    assert {p: p.stat().st_mtime for p in finished} == finished  # finished work was not recomputed
    assert "rule dataset:" not in resumed.stdout + resumed.stderr
    files = netcdf_files(a)
    assert netcdf_files(work) == files
    for rel in files:
        xr.testing.assert_identical(io.open(a / rel), io.open(work / rel))
