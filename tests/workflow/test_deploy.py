"""The workflow deployed the Snakemake way: used as a module by another workflow, and by snakedeploy.

A deploying workflow in a temp dir, with the tiny config as its own ``config/config.yaml``,
uses this checkout's ``workflow/Snakefile`` as a module: by its local path, and as
``github("example/causal-xai", path="workflow/Snakefile", tag="v0")``, which Snakemake reads from
its source cache's git clone (offline there is no GitHub, so the test puts a clone of a
repository of the workflow's files there: Snakemake fetches only a tag it does not have). It
plans exactly the jobs the checkout plans, with and without renamed rules, and runs a script
rule (its log opened by ``workflow/scripts/common``, found next to the cached scripts).
snakedeploy deploy-workflow from a local path writes the deployment (config, LICENSE, module);
its local provider names the module's Snakefile relative to the source repository, which
Snakemake reads relative to the deploying Snakefile, so the test points it at the source.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from snakedeploy.deploy import deploy

from causalxai import io

REPO = Path(__file__).resolve().parents[2]
TINY_CONFIG = REPO / ".test" / "config" / "config.yaml"

pytestmark = pytest.mark.workflow

DEPLOYING = """\
configfile: "config/config.yaml"


module causalxai:
    snakefile:
        {snakefile}
    config:
        config


use rule * from causalxai{rename}
"""
WORKFLOW_FILES = ("Snakefile", "workflow", "config", "envs", "LICENSE", "pyproject.toml")


def deploying_workflow(dest: Path, snakefile: str = f'"{REPO / "workflow" / "Snakefile"}"', rename: str = "") -> Path:
    """A workflow in ``dest`` that uses this checkout's (``snakefile``: the module's source) as a
    module, with the tiny config."""
    (dest / "config").mkdir(parents=True)
    shutil.copy2(TINY_CONFIG, dest / "config" / "config.yaml")
    path = dest / "Snakefile"
    path.write_text(DEPLOYING.format(snakefile=snakefile, rename=rename))
    return path


def workflow_files(dest: Path) -> Path:
    """The workflow's own files copied to ``dest`` (a checkout may hold a .venv, results, caches)."""
    dest.mkdir(parents=True)
    for name in WORKFLOW_FILES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(REPO / name, dest / name)
    return dest


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=test", "-c", "user.email=test@example.org", *args], cwd=cwd, check=True,
                   capture_output=True)


@pytest.fixture
def github_module(tmp_path, monkeypatch) -> str:
    """``github("example/causal-xai", ..., tag="v0")``, the workflow's files at tag v0 in Snakemake's
    source cache (its git clone of the repository), under a fresh XDG_CACHE_HOME."""
    source = workflow_files(tmp_path / "source")
    git(source, "init", "-q", "-b", "main")
    git(source, "add", "-A")
    git(source, "commit", "-q", "-m", "v0")
    git(source, "tag", "v0")
    cache = tmp_path / "cache"
    clones = cache / "snakemake" / "snakemake" / "source-cache" / "snakemake-git-cache" / "github.com" / "example"
    clones.mkdir(parents=True)
    git(tmp_path, "clone", "-q", "--bare", str(source), str(clones / "causal-xai"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    return 'github("example/causal-xai", path="workflow/Snakefile", tag="v0")'


@pytest.fixture(scope="module")
def checkout_jobs(snakemake_runner, tmp_path_factory) -> dict[str, int]:
    """The jobs the checkout itself plans for the tiny config."""
    res = snakemake_runner.run(tmp_path_factory.mktemp("checkout"), "--dry-run", cores=1, configfiles=[TINY_CONFIG])
    assert res.returncode == 0, res.stderr[-3000:]
    return snakemake_runner.planned_jobs(res.stdout + res.stderr)


@pytest.mark.parametrize("rename", ["", " as causalxai_*"])
def test_module_plans_the_checkouts_jobs(snakemake_runner, checkout_jobs, tmp_path, rename):
    work = tmp_path / "work"
    runner = snakemake_runner.deployed(deploying_workflow(work, rename=rename))
    res = runner.run(work, "--dry-run", cores=1)
    assert res.returncode == 0, res.stderr[-3000:]
    prefix = "causalxai_" if rename else ""
    assert runner.planned_jobs(res.stdout + res.stderr) == {prefix + k: v for k, v in checkout_jobs.items()}
    assert "shards/gradient.1-of-2.nc" in res.stdout + res.stderr  # the scattergather of the shards


def test_module_runs_a_script_rule(snakemake_runner, tmp_path):
    work = tmp_path / "work"
    runner = snakemake_runner.deployed(deploying_workflow(work))
    res = runner.run(work, targets=["results/digits/images.nc"], cores=1)
    assert res.returncode == 0, res.stderr[-3000:]
    images = io.open(work / "results" / "digits" / "images.nc")
    assert images.sizes["image"] == 20 and io.provenance(images)["seed"] == 1
    assert (work / "logs" / "digits" / "images.log").exists()


def test_github_module_plans_the_checkouts_jobs_and_runs_a_script(snakemake_runner, checkout_jobs, github_module,
                                                                   tmp_path):
    work = tmp_path / "work"
    runner = snakemake_runner.deployed(deploying_workflow(work, github_module))
    dry = runner.run(work, "--dry-run", cores=1)
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert runner.planned_jobs(dry.stdout + dry.stderr) == checkout_jobs
    res = runner.run(work, targets=["results/digits/images.nc"], cores=1)
    assert res.returncode == 0, res.stderr[-3000:]  # the cached script found workflow/scripts/common
    assert io.open(work / "results" / "digits" / "images.nc").sizes["image"] == 20
    hosted = tmp_path / "cache" / "snakemake" / "snakemake" / "source-cache" / "hosted-git" / "githubfile"
    cached = hosted / "github.com" / "example" / "causal-xai" / "v0" / "workflow" / "scripts"
    assert (cached / "images.py").is_file() and (cached / "common" / "__init__.py").is_file()


def test_snakedeploy_deployment_plans_the_checkouts_jobs(snakemake_runner, checkout_jobs, tmp_path):
    source = workflow_files(tmp_path / "source")  # snakedeploy copies the whole source folder
    dest = tmp_path / "deployment"
    deploy(str(source), name="causalxai", tag=None, branch="main", dest_path=dest)
    assert (dest / "LICENSE").read_text() == (REPO / "LICENSE").read_text()
    assert (dest / "config" / "config.yaml").read_text() == (REPO / "config" / "config.yaml").read_text()
    snakefile = dest / "workflow" / "Snakefile"
    text = snakefile.read_text()
    assert "module causalxai:" in text and '"workflow/Snakefile"' in text and "use rule * from causalxai" in text
    snakefile.write_text(text.replace('"workflow/Snakefile"', f'"{source / "workflow" / "Snakefile"}"'))

    shutil.copy2(TINY_CONFIG, dest / "config" / "config.yaml")  # the user's config
    res = snakemake_runner.deployed(snakefile).run(dest, "--dry-run", cores=1)
    assert res.returncode == 0, res.stderr[-3000:]
    assert snakemake_runner.planned_jobs(res.stdout + res.stderr) == checkout_jobs
