"""Re-runs only when results change (issue 17 item 4): settings that cannot change a result are not
`params`, so changing one on a finished run re-runs nothing; the settings that do change results
(a training batch size) still re-run their step. Dry runs on the finished tiny run (seconds each)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.workflow

#: settings that cannot change a result, each with another value than the tiny config's
#: (the README's table "Re-running after a change" says why each one cannot)
RESULT_INVARIANT = {
    "device": {"device": "cpu"},  # the tiny config's is auto (the CPU here)
    "zoo.train.chunk_size": {"zoo": {"train": {"chunk_size": 8}}},
    "explain.chunk_size": {"explain": {"chunk_size": 5}},
    "tracer.interventions.batch_size": {"tracer": {"interventions": {"batch_size": 100}}},
    "data.cache_dir": {"data": {"cache_dir": "elsewhere/downloads"}},  # a digits run downloads nothing
}


def dry_run(finished_run, copy_runner, name: str, change: dict) -> str:
    """The dry run's output on the finished tiny run with `change` on top of its config."""
    work, cfg = finished_run
    changed = Path(work) / f"reruns-{name}.yaml"
    changed.write_text(yaml.safe_dump(change))
    res = copy_runner.run(work, "--dry-run", cores=2, configfiles=[cfg, changed])
    assert res.returncode == 0, res.stderr[-3000:]
    return res.stdout + res.stderr


@pytest.mark.parametrize("name", sorted(RESULT_INVARIANT))
def test_a_setting_that_cannot_change_results_reruns_nothing(finished_run, copy_runner, name):
    out = dry_run(finished_run, copy_runner, name.replace(".", "_"), RESULT_INVARIANT[name])
    assert "Nothing to be done" in out, copy_runner.planned_jobs(out)


@pytest.mark.parametrize(
    ("change", "first"),
    [
        ({"zoo": {"train": {"batch_size": 16}}}, "zoo_train"),
        ({"tracer": {"model": {"batch_size": 32}}}, "target_model"),
        ({"meta_model": {"batch_size": 128}}, "meta_model"),
    ],
    ids=["zoo.train.batch_size", "tracer.model.batch_size", "meta_model.batch_size"],
)
def test_a_training_batch_size_reruns_its_step(finished_run, copy_runner, change, first):
    """Training batch sizes change the trained weights: they stay params (not over-removed)."""
    jobs = copy_runner.planned_jobs(dry_run(finished_run, copy_runner, f"train-{first}", change))
    assert jobs.get(first) == 1, jobs


def test_the_shard_count_reruns_the_saliency_not_what_comes_before(finished_run, copy_runner):
    """explain.shards does not change the maps, yet its shard files are named k-of-n: with another n the
    gathers' set of input files changes (Snakemake's `input` trigger), so the shards and what reads the
    gathered maps run again; the zoo, the predictions and TRACER do not."""
    jobs = copy_runner.planned_jobs(dry_run(finished_run, copy_runner, "shards", {"explain": {"shards": 3}}))
    assert {k: v for k, v in jobs.items() if k != "all"} == {
        "explain_shard": 12, "explain_gather": 4, "effects": 1, "effect_figures": 1, "effects_sensitivity": 1,
        "kernel_figures": 1, "effect_datasets_figure": 1}, jobs
