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


#: test modules that share the session's finished tiny run (``finished_run``, tests/workflow/conftest.py)
SHARED_RUN_MODULES = (
    "tests/workflow/test_workflow.py", "tests/workflow/test_reruns.py", "tests/workflow/test_consistency.py",
)


@pytest.hookimpl(tryfirst=True)
def pytest_xdist_make_scheduler(config, log):
    """Under ``pytest -n N`` (``--dist loadscope``, pyproject.toml) each test module is one unit of work;
    the modules of :data:`SHARED_RUN_MODULES` form one unit, so one worker runs the tiny config for them
    all (a session fixture is per worker: apart, each worker would run it)."""
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class SharedRunScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            scope = super()._split_scope(nodeid)
            return SHARED_RUN_MODULES[0] if scope in SHARED_RUN_MODULES else scope

    return SharedRunScheduling(config, log)


# ---------------------------------------------------------------------------------------
# paper 000's effects: synthetic study results and NumPy references of eq. (4)
# (tests/study, tests/study/estimators, tests/plots/test_effect_figures.py)


def _effect_inputs(m, i, side, seed, effect=0.0):
    """A zoo of ``m`` models; ``effect`` > 0 makes Y and E depend on the optimizer."""
    from causalxai.study.buckets import make_buckets

    rng = np.random.default_rng(seed)
    hp = sample_hparams(m, {}, seed=seed)
    zoo = make_zoo_dataset(
        np.zeros((m, 4970), np.float32), hp, pd.DataFrame({"test_accuracy": rng.uniform(size=m)}),
        zoo_layout(1), dataset="toy", source="train", input_size=28,
    )
    buckets = make_buckets(zoo, [0, 50, 100])
    shift = effect * (hp["optimizer"].values == "sgd")[:, None, None]
    logits = rng.normal(size=(m, i, 10)) + 3 * shift * np.eye(10)[0]
    prob = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    perm = rng.permuted(np.broadcast_to(np.arange(10), prob.shape), axis=-1)
    prob_direct = np.empty_like(prob)
    np.put_along_axis(prob_direct, perm, prob, axis=-1)
    pred = xr.Dataset(
        {"prob": (("model", "image", "class"), prob), "prob_direct": (("model", "image", "class"), prob_direct)},
        coords={"image": np.arange(i)},
    )
    maps = rng.uniform(size=(m, 2, i, side, side)) + shift[:, :, :, None, None]
    e = xr.Dataset({"E": (("model", "effect", "image", "y", "x"), maps)}, coords={"effect": ["total", "direct"]})
    return zoo, buckets, pred, e


def _k(a, b, kernel, gamma):
    if kernel == "rbf":
        return np.exp(-gamma * np.sum((a - b) ** 2))
    if kernel == "linear":
        return float(a @ b)
    if kernel == "poly":
        return (a @ b / a.size + 1) ** 3
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    return 0.0 if na == 0 or nb == 0 else float(a @ b / (na * nb))


def _median_gamma(t, c):
    pooled = np.concatenate([t, c])
    d = [np.sum((pooled[i] - pooled[j]) ** 2) for i in range(len(pooled)) for j in range(i + 1, len(pooled))]
    m = float(np.median(d)) if d and np.median(d) > 0 else 1.0
    return 1 / (2 * m)


def _numpy_ite(t, c, kernel="rbf", gamma=None, estimator="eq4"):
    """The definition, pair by pair: eq. (4) or the unbiased MMD²."""
    if gamma is None:
        gamma = 1 / t.shape[-1]
    elif gamma == "median_cell":
        gamma = _median_gamma(t, c)
    if estimator == "eq4":
        total = sum(_k(a, a, kernel, gamma) + _k(b, b, kernel, gamma) - 2 * _k(a, b, kernel, gamma)
                    for a in t for b in c)
        return total / (len(t) * len(c))
    kt = np.mean([_k(t[i], t[j], kernel, gamma) for i in range(len(t)) for j in range(len(t)) if i != j])
    kc = np.mean([_k(c[i], c[j], kernel, gamma) for i in range(len(c)) for j in range(len(c)) if i != j])
    kx = np.mean([_k(a, b, kernel, gamma) for a in t for b in c])
    return kt + kc - 2 * kx


@pytest.fixture(scope="session")
def effect_inputs():
    """``(m, i, side, seed, effect=0.0) -> (zoo, buckets, predictions, E)``: a synthetic
    study of ``m`` models, ``i`` images and ``side × side`` maps; ``effect`` > 0 makes Y
    and E depend on the optimizer."""
    return _effect_inputs


@pytest.fixture(scope="session")
def fast_effects():
    """Effects settings small enough for unit tests (20 resamples and permutations)."""
    from causalxai.study.effects import EffectsSettings

    return EffectsSettings(bootstrap=20, permutations=20, min_models=2)


@pytest.fixture(scope="session")
def numpy_kernel():
    """``(a, b, kernel, gamma) -> k(a, b)``: the kernels of eq. (4), one pair of vectors."""
    return _k


@pytest.fixture(scope="session")
def numpy_ite():
    """``(t, c, kernel="rbf", gamma=None, estimator="eq4") -> ITE``: the definition, pair by pair."""
    return _numpy_ite


# ---------------------------------------------------------------------------------------
# the workflow: one snakemake runner (tests/workflow, tests/cluster)

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

    @staticmethod
    def planned_outputs(output: str, rule: str) -> list[str]:
        """The output paths of a dry run's planned jobs of `rule` (from each job's 'output:' line)."""
        paths = []
        for block in re.split(r"\n(?=(?:local)?rule \w+:)", output):
            if re.match(rf"(?:local)?rule {rule}:", block.strip()):
                m = re.search(r"^\s*output: (.*)$", block, re.M)
                if m:
                    paths += [p.strip() for p in m.group(1).split(",")]
        return paths

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
