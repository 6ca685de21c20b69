"""The workflow deployed the Snakemake way: used as a module by another workflow, and by snakedeploy.

Offline there is no GitHub, so the module's ``snakefile:`` is this checkout's
``workflow/Snakefile`` by its local path (what ``github("owner/causal-xai", path="workflow/Snakefile",
tag=...)`` fetches). A deploying workflow in a temp dir, with the tiny config as its own
``config/config.yaml``, plans exactly the jobs the checkout plans, with and without renamed
rules, and runs a script rule (its log opened by ``workflow/scripts/common``, the package found).
snakedeploy deploy-workflow from a local path writes the deployment (config, LICENSE, module);
its local provider names the module's Snakefile relative to the source repository, which
Snakemake reads relative to the deploying Snakefile, so the test points it at the source.
"""

from __future__ import annotations

import shutil
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
        "{snakefile}"
    config:
        config


use rule * from causalxai{rename}
"""


def deploying_workflow(dest: Path, rename: str = "") -> Path:
    """A workflow in ``dest`` that uses this checkout's as a module, with the tiny config."""
    (dest / "config").mkdir(parents=True)
    shutil.copy2(TINY_CONFIG, dest / "config" / "config.yaml")
    snakefile = dest / "Snakefile"
    snakefile.write_text(DEPLOYING.format(snakefile=REPO / "workflow" / "Snakefile", rename=rename))
    return snakefile


@pytest.fixture(scope="module")
def checkout_jobs(snakemake_runner, tmp_path_factory) -> dict[str, int]:
    """The jobs the checkout itself plans for the tiny config."""
    res = snakemake_runner.run(tmp_path_factory.mktemp("checkout"), "--dry-run", cores=1, configfiles=[TINY_CONFIG])
    assert res.returncode == 0, res.stderr[-3000:]
    return snakemake_runner.planned_jobs(res.stdout + res.stderr)


@pytest.mark.parametrize("rename", ["", " as causalxai_*"])
def test_module_plans_the_checkouts_jobs(snakemake_runner, checkout_jobs, tmp_path, rename):
    runner = snakemake_runner.deployed(deploying_workflow(tmp_path, rename))
    res = runner.run(tmp_path, "--dry-run", cores=1)
    assert res.returncode == 0, res.stderr[-3000:]
    prefix = "causalxai_" if rename else ""
    assert runner.planned_jobs(res.stdout + res.stderr) == {prefix + k: v for k, v in checkout_jobs.items()}
    assert "shards/gradient.1-of-2.nc" in res.stdout + res.stderr  # the scattergather of the shards


def test_module_runs_a_script_rule(snakemake_runner, tmp_path):
    runner = snakemake_runner.deployed(deploying_workflow(tmp_path))
    res = runner.run(tmp_path, targets=["results/digits/images.nc"], cores=1)
    assert res.returncode == 0, res.stderr[-3000:]
    images = io.open(tmp_path / "results" / "digits" / "images.nc")
    assert images.sizes["image"] == 20 and io.provenance(images)["seed"] == 1
    assert (tmp_path / "logs" / "digits" / "images.log").exists()


def test_snakedeploy_deployment_plans_the_checkouts_jobs(snakemake_runner, checkout_jobs, tmp_path):
    source = tmp_path / "source"  # the workflow's files (a checkout may hold a .venv snakedeploy would copy)
    source.mkdir()
    for name in ("Snakefile", "workflow", "config", "envs", "LICENSE"):
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(REPO / name, source / name)
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
