"""Fixtures of the workflow tests: the tiny config run to the end once per test process, from a
copy of the workflow (so a test may edit a package module without touching the checkout)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]

#: the tiny config (both papers' steps in minutes), a file as the public Snakemake workflows keep it
TINY_CONFIG = REPO / ".test" / "config" / "config.yaml"
TINY = yaml.safe_load(TINY_CONFIG.read_text())


def copy_repo(dest: Path) -> Path:
    """The workflow's own files (Snakefile, workflow/, config/, src/, envs/) copied to ``dest``, so a
    test can edit a package module without touching the checkout other tests run from."""
    for name in ("Snakefile", "workflow", "config", "src", "envs"):
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(src, dest / name)
    return dest


@pytest.fixture(scope="session")
def code_copy(tmp_path_factory):
    return copy_repo(tmp_path_factory.mktemp("repo"))


@pytest.fixture(scope="session")
def copy_runner(snakemake_runner, code_copy):
    """snakemake on the copy of the workflow (``code_copy``)."""
    return snakemake_runner.on(code_copy)


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory, copy_runner):
    """The tiny config run to the end from a copy of the workflow (``code_copy``)."""
    work = tmp_path_factory.mktemp("wf")
    cfg = work / "tiny.yaml"
    shutil.copy2(TINY_CONFIG, cfg)
    res = copy_runner.run(work, cores=2, configfiles=[cfg])
    assert res.returncode == 0, res.stderr[-4000:]
    return work, cfg
