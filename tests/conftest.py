"""Fixtures shared by the tests of several modules."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from causalxai.zoo.dataset import make_zoo_dataset
from causalxai.zoo.hparams import sample_hparams
from causalxai.zoo.network import zoo_layout


@pytest.fixture(scope="module")
def zoo_and_images():
    rng = np.random.default_rng(0)
    n = 7
    hp = sample_hparams(n, {}, seed=1)
    zoo = make_zoo_dataset(
        rng.normal(scale=0.3, size=(n, 4970)).astype(np.float32), hp,
        pd.DataFrame({"test_accuracy": rng.uniform(size=n)}), zoo_layout(1),
        dataset="toy", source="train", input_size=28,
    )
    images = xr.Dataset(
        {"pixels": (("image", "y", "x"), rng.uniform(-1, 1, size=(4, 28, 28)).astype(np.float32)),
         "label": ("image", np.arange(4))},
        coords={"image": np.arange(4)},
    )
    return zoo, images


REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class SnakemakeRunner:
    """``python -m snakemake`` on the workflow of a checkout (``repo``), run in a working directory.

    The package is imported from ``repo/src`` (``PYTHONPATH``), so a test can run a copy of the
    workflow whose modules it edits; ``snakefile`` (default ``repo/Snakefile``) may be another
    workflow that uses this one as a module. Every call names its working directory, targets,
    cores and config files; other arguments pass through.
    """

    repo: Path = REPO
    snakefile: Path | None = None

    def on(self, repo: Path) -> SnakemakeRunner:
        """The same runner for the workflow of another checkout (e.g. a copy)."""
        return replace(self, repo=repo)

    def deployed(self, snakefile: Path) -> SnakemakeRunner:
        """The runner for ``snakefile``, a workflow that deploys this checkout's (a module of it)."""
        return replace(self, snakefile=snakefile)

    @staticmethod
    def planned_jobs(output: str) -> dict[str, int]:
        """Rule -> count from a dry run's 'Job stats' table."""
        m = re.search(r"Job stats:\n(.*?)\ntotal", output, re.S)
        if not m:
            return {}
        jobs = {}
        for line in m.group(1).splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1].isdigit():
                jobs[parts[0]] = int(parts[1])
        return jobs

    def command(self, workdir: Path, *args: str, targets: Sequence[str] = (), cores: int | None = None,
                configfiles: Sequence[Path] = ()) -> list[str]:
        snakefile = self.snakefile or self.repo / "Snakefile"
        cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(snakefile),
               "--directory", str(workdir), *targets]  # targets first: --set-resources and the like take lists
        if cores is not None:
            cmd += ["--cores", str(cores)]
        if configfiles:
            cmd += ["--configfile", *map(str, configfiles)]
        return [*cmd, *args]

    def env(self) -> dict[str, str]:
        return {**os.environ, "PYTHONPATH": str(self.repo / "src")}

    def run(self, workdir: Path, *args: str, targets: Sequence[str] = (), cores: int | None = None,
            configfiles: Sequence[Path] = (), timeout: float = 900) -> subprocess.CompletedProcess:
        """Run to the end, output captured (arguments as :meth:`command`)."""
        cmd = self.command(workdir, *args, targets=targets, cores=cores, configfiles=configfiles)
        return subprocess.run(cmd, capture_output=True, text=True, env=self.env(), timeout=timeout)

    def start(self, workdir: Path, *args: str, targets: Sequence[str] = (), cores: int | None = None,
              configfiles: Sequence[Path] = ()) -> subprocess.Popen:
        """Start in the background in its own process group (killable as a whole); stdout and stderr merged."""
        cmd = self.command(workdir, *args, targets=targets, cores=cores, configfiles=configfiles)
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=self.env(),
                                start_new_session=True)


@pytest.fixture(scope="session")
def snakemake_runner() -> SnakemakeRunner:
    """Runs snakemake on this checkout's workflow; ``snakemake_runner.on(copy)`` on a copy's."""
    return SnakemakeRunner()
