"""The workflow on a real SLURM through Snakemake's executor plugin and workflow/profiles/slurm.

Needs a running SLURM whose config ``SLURM_CONF`` names: ``bash tests/cluster/slurm_up.sh``
starts a one-node one on this host (``.ci/run`` does, and stops it afterwards). Without one
the test is skipped, unless ``CAUSALXAI_REQUIRE_SLURM=1`` (set by ``.ci/run``) turns the skip
into a failure, so CI cannot pass without having run it.

A tiny config runs to the treatment effects and to TRACER's causal nodes twice, once with
``--cores 2`` and once with ``--profile workflow/profiles/slurm``; the test checks that every
non-local job was an sbatch submission (its SLURM job id in Snakemake's log), that exactly the
rules with ``resources: gpu=1`` asked SLURM for a GPU (``scontrol show job``), and that the two
runs' netCDF files hold the same values.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import xarray as xr

from causalxai import io

REPO = Path(__file__).resolve().parents[2]

CONFIG_FILE = REPO / ".test" / "config_slurm" / "config.yaml"
TARGETS = ["results/digits/effects.nc", "results/digits/tracer/causal_nodes.nc"]
GPU_RULES = {"zoo_train", "predictions", "explain_shard", "target_model", "interventions"}  # resources: gpu=1

pytestmark = pytest.mark.workflow


def slurm_ready() -> str | None:
    """Why SLURM cannot be used here, or None when a node is up."""
    if not os.environ.get("SLURM_CONF"):
        return "SLURM_CONF is not set (start one with: bash tests/cluster/slurm_up.sh)"
    if shutil.which("sbatch") is None:
        return "sbatch is not on PATH"
    try:
        import snakemake_executor_plugin_slurm  # noqa: F401
    except ImportError:
        return "snakemake-executor-plugin-slurm is not installed"
    state = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], capture_output=True, text=True, timeout=30)
    if state.returncode != 0 or not state.stdout.strip():
        return f"sinfo found no node: {state.stderr.strip()[-300:]}"
    return None


@pytest.fixture(scope="module")
def slurm():
    why = slurm_ready()
    if why is not None:
        if os.environ.get("CAUSALXAI_REQUIRE_SLURM") == "1":
            pytest.fail(f"CAUSALXAI_REQUIRE_SLURM=1 but SLURM is not usable: {why}")
        pytest.skip(why)


def run(snakemake_runner, workdir: Path, *args: str) -> subprocess.CompletedProcess:
    return snakemake_runner.run(workdir, *args, targets=TARGETS, configfiles=[workdir / "config.yaml"], timeout=1200)


def submitted(log: str) -> dict[str, list[int]]:
    """Rule -> SLURM job ids, from Snakemake's log of the SLURM run."""
    jobs: dict[str, str] = {}  # snakemake job id -> rule
    rule = None
    for line in log.splitlines():
        m = re.match(r"^(?:local)?rule (\w+):", line)
        if m:
            rule = m.group(1)
        m = re.match(r"^\s+jobid: (\d+)", line)
        if m and rule:
            jobs[m.group(1)] = rule
    out: dict[str, list[int]] = {}
    for m in re.finditer(r"Job (\d+) has been submitted with SLURM jobid (\d+)", log):
        out.setdefault(jobs[m.group(1)], []).append(int(m.group(2)))
    return out


def test_workflow_on_slurm_equals_local(slurm, snakemake_runner, tmp_path):
    local, cluster = tmp_path / "local", tmp_path / "slurm"
    for d in (local, cluster):
        d.mkdir()
        shutil.copy2(CONFIG_FILE, d / "config.yaml")

    loc = run(snakemake_runner, local, "--cores", "2")
    assert loc.returncode == 0, loc.stderr[-4000:]
    planned = {m.group(1) for m in re.finditer(r"^(?:local)?rule (\w+):", loc.stderr + loc.stdout, re.M)}

    res = run(snakemake_runner, cluster, "--profile", str(REPO / "workflow" / "profiles" / "slurm"),
              "--jobs", "4", "--max-threads", "2",  # one 2-CPU node: no job may ask for more
              "--slurm-status-command", "squeue",  # no accounting here (the profile's note)
              "--slurm-init-seconds-before-status-checks", "2",
              "--slurm-keep-successful-logs",  # the per-job logs, named by SLURM job id, are checked below
              "--default-resources", "mem_mb=1000", "runtime=30",
              "--set-resources", "zoo_train:mem_mb=2000", "zoo_smallcnnzoo:mem_mb=1000")
    log = res.stderr + res.stdout
    assert res.returncode == 0, log[-6000:]

    # every job but the target rule `all` went through sbatch and has a SLURM job id
    local_rules = {m.group(1) for m in re.finditer(r"^localrule (\w+):", log, re.M)}
    assert local_rules <= {"all"}, local_rules
    ids = submitted(log)
    assert set(ids) == planned - {"all"}, (sorted(ids), sorted(planned))
    n_jobs = sum(len(v) for v in ids.values())
    assert n_jobs == len(re.findall(r"has been submitted with SLURM jobid", log)) >= 15
    assert len(ids["explain_shard"]) == 4 * 2  # 4 methods x 2 shards
    # each job's own SLURM log (.snakemake/slurm_logs/rule_<rule>/<wildcards>/<jobid>.log) ran its rule
    for rule, job_ids in ids.items():
        for job_id in job_ids:
            found = list((cluster / ".snakemake" / "slurm_logs" / f"rule_{rule}").rglob(f"{job_id}.log"))
            assert len(found) == 1 and f"rule {rule}:" in found[0].read_text(), (rule, job_id, found)

    # exactly the GPU rules asked SLURM for a GPU
    for rule, job_ids in ids.items():
        for job_id in job_ids:
            show = subprocess.run(["scontrol", "show", "job", str(job_id)], capture_output=True, text=True, timeout=30)
            assert show.returncode == 0, show.stderr
            asks_gpu = bool(re.search(r"gres/gpu[=:]1|gpu:1", show.stdout))
            assert "JobState=COMPLETED" in show.stdout, (rule, show.stdout[:500])
            assert asks_gpu == (rule in GPU_RULES), (rule, show.stdout)

    # same numbers as the local run
    files = sorted(p.relative_to(local) for p in (local / "results").rglob("*.nc"))
    assert len(files) >= 10
    for rel in files:
        a, b = io.open(local / rel), io.open(cluster / rel)
        xr.testing.assert_equal(a, b)
        assert io.provenance(a)["config"] == io.provenance(b)["config"], rel
