"""A results folder that is always consistent (issue 17 item 1), on copies of the finished tiny run.

- A changed config leaves the old config's files in results/: the run lists them (warning and
  logs/stale_files.txt), and the report leaves them out.
- A zoo.nc restored from a backup (another content id, an older mtime: Snakemake has nothing to
  do) is refused by ``causalxai.io.open`` of the files made from the other zoo, by the run (before
  any job starts) and by a job started on its own, each naming both files and the --forcerun.
- A truncated zoo.nc is reported as truncated, with the --forcerun, before any job deletes an output.
"""

from __future__ import annotations

import os
import shutil

import netCDF4
import pytest
import yaml

from causalxai import io

pytestmark = pytest.mark.workflow

FIGURE = "results/digits/figures/predictions_by_optimizer.png"


@pytest.fixture
def work(finished_run, tmp_path, monkeypatch):
    """A copy of the finished tiny run (the working directory, as the user's shell would be), and its config."""
    src, cfg = finished_run
    dest = tmp_path / "work"
    shutil.copytree(src, dest, symlinks=True)
    monkeypatch.chdir(dest)
    return dest, dest / cfg.name


def test_a_changed_config_lists_the_stale_files_and_the_report_leaves_them_out(work, copy_runner):
    work, cfg = work
    old = yaml.safe_load(cfg.read_text())
    planned = ["results/digits/explanations/gradient.nc", "results/digits/figures/tracer/contributions_0.png"]
    # a figure an earlier config (tracer.figures.samples: 8) made, which this one does not
    shutil.copy2(work / "results/digits/figures/tracer/contributions_0.png",
                 work / "results/digits/figures/tracer/contributions_7.png")
    methods = ["gradient", "smoothgrad", "grad_cam"]  # integrated_gradients dropped
    new = work / "new.yaml"
    new.write_text(yaml.safe_dump({**old, "explain": {**old["explain"], "methods": methods}}))

    # --touch: the plan (and the start-of-run listing) of a real run, without recomputing the effects
    res = copy_runner.run(work, "--touch", cores=2, configfiles=[new])
    assert res.returncode == 0, res.stderr[-3000:]
    out = res.stdout + res.stderr
    listing = (work / "logs" / "stale_files.txt").read_text().splitlines()
    expected = {"results/digits/explanations/integrated_gradients.nc",
                "results/digits/explanations/shards/integrated_gradients.1-of-2.nc",
                "results/benchmarks/digits/explain/integrated_gradients.gather.tsv",
                "results/digits/figures/tracer/contributions_7.png"}
    assert expected <= set(listing), listing
    assert not set(planned) & set(listing) and all(p.startswith("results/") for p in listing)
    assert all(not os.path.exists(p) or p in listing for p in expected)
    assert f"{len(listing)} file(s) under results/ are made by no job of this run" in out, out[-3000:]
    assert "results/digits/explanations/integrated_gradients.nc" in out
    assert "xargs -d '\\n' rm -f -- < logs/stale_files.txt" in out

    res = copy_runner.run(work, "--report", str(work / "report.html"), cores=2, configfiles=[new])
    assert res.returncode == 0, res.stderr[-3000:]
    html = (work / "report.html").read_text(errors="replace")
    assert "contributions_0.png" in html and "contributions_7.png" not in html

    # the documented clean-up removes exactly the listed files; then nothing is stale
    for path in listing:
        os.remove(path)
    assert all(os.path.exists(p) for p in planned)
    res = copy_runner.run(work, "--touch", "--forcerun", "effect_datasets_figure", cores=2, configfiles=[new])
    assert res.returncode == 0, res.stderr[-3000:]
    assert "made by no job of this run" not in res.stdout + res.stderr
    assert not (work / "logs" / "stale_files.txt").exists()


def _restore_other_zoo(work):
    """zoo.nc as if restored from a backup of another config: another content id, its old mtime."""
    zoo = work / "results/digits/zoo.nc"
    st = zoo.stat()
    with netCDF4.Dataset(zoo, "a") as nc:
        old = nc.getncattr("content_id")
        nc.setncattr("content_id", "0123456789abcdef")
        nc.setncattr("seed", 99)
    os.utime(zoo, ns=(st.st_atime_ns, st.st_mtime_ns))
    return old


def test_a_restored_zoo_is_refused_naming_both_files(work, copy_runner):
    work, cfg = work
    old = _restore_other_zoo(work)
    res = copy_runner.run(work, "--dry-run", cores=2, configfiles=[cfg])
    assert res.returncode == 0 and "Nothing to be done" in res.stdout + res.stderr  # Snakemake sees nothing

    with pytest.raises(io.ProvenanceError) as err:
        io.open("results/digits/effects.nc")
    msg = str(err.value)
    assert msg.startswith("results/digits/effects.nc (step effects) was made from another results/digits/zoo.nc")
    assert f"recorded content id {old} (step zoo)" in msg and "now has 0123456789abcdef (step zoo)" in msg
    assert "--forcerun results/digits/zoo.nc" in msg and "--forcerun results/digits/effects.nc" in msg
    io.open("results/digits/tracer/ace.nc")  # TRACER's files were not made from the zoo

    # a forced downstream job: the run stops before any job starts (the figure is not deleted)
    res = copy_runner.run(work, "--forcerun", "prediction_figure", targets=[FIGURE], cores=2, configfiles=[cfg])
    out = res.stdout + res.stderr
    assert res.returncode != 0 and "No job was started: results/digits/predictions.nc (step predictions) was " \
                                   "made from another results/digits/zoo.nc" in out, out[-3000:]
    assert os.path.exists(FIGURE)
    # the job's own check (a cluster job, or a run without the start-of-run hooks)
    res = copy_runner.run(work, "--forcerun", "prediction_figure", "--no-hooks", targets=[FIGURE], cores=2,
                          configfiles=[cfg])
    out = res.stdout + res.stderr
    assert res.returncode != 0 and "rule prediction_figure: results/digits/predictions.nc (step predictions) " \
                                   "was made from another results/digits/zoo.nc" in out, out[-3000:]
    assert "ProvenanceError" in (work / "logs/digits/prediction_figure.log").read_text()
    # the advice: --forcerun of a file makes it and every file made from it again
    res = copy_runner.run(work, "--dry-run", "--forcerun", "results/digits/zoo.nc", cores=2, configfiles=[cfg])
    jobs = copy_runner.planned_jobs(res.stdout + res.stderr)
    assert res.returncode == 0 and jobs["zoo_train"] == 1 and jobs["effects"] == 1 and "target_model" not in jobs, jobs


def test_a_truncated_zoo_is_reported_before_any_output_is_deleted(work, copy_runner):
    work, cfg = work
    zoo = work / "results/digits/zoo.nc"
    data = zoo.read_bytes()
    zoo.write_bytes(data[: len(data) // 2])  # newer than what was made from it: the plan re-makes it all
    advice = "Make it again: snakemake --cores N --forcerun results/digits/zoo.nc"

    with pytest.raises(io.CorruptFileError) as err:
        io.open(zoo)
    assert str(err.value).startswith("results/digits/zoo.nc cannot be read: truncated or corrupt (")
    assert "HDF error" in str(err.value) and advice in str(err.value)

    res = copy_runner.run(work, cores=2, configfiles=[cfg])
    out = res.stdout + res.stderr
    assert res.returncode != 0, out[-3000:]
    assert "No job was started: results/digits/zoo.nc cannot be read: truncated or corrupt" in out and advice in out
    assert (work / "results/digits/predictions.nc").exists()  # Snakemake deleted no output
    res = copy_runner.run(work, "--no-hooks", targets=["results/digits/buckets.nc"], cores=2, configfiles=[cfg])
    out = res.stdout + res.stderr
    assert res.returncode != 0 and "rule buckets: results/digits/zoo.nc cannot be read: truncated" in out, out[-3000:]
