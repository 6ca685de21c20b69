"""Downloads are their own local rules (download_images, download_zoo): on a cluster they run where
Snakemake runs (the login node) and the jobs that read the files (dataset, zoo_smallcnnzoo) never
touch the network.

A dry run never says which jobs are local (Snakemake leaves that to the executor), so the paper
config's dry run checks the plan and the dependencies, and a real run under the SLURM executor
(through a deploying workflow that renames the module's rules, where a ``localrules:`` directive
would not follow the new names) checks that the download ran locally, submitted to no cluster.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
PAPER = REPO / "config" / "paper.yaml"
TINY_CONFIG = REPO / ".test" / "config" / "config.yaml"
#: the files of each downloaded image set (causalxai.data.dataset.SOURCES)
IMAGE_FILES = {"mnist": 4, "fashion_mnist": 4, "cifar10": 1, "svhn_cropped": 2}

pytestmark = pytest.mark.workflow

DEPLOYING = """\
configfile: "config.yaml"


module causalxai:
    snakefile:
        "{snakefile}"
    config:
        config


use rule * from causalxai as causalxai_*
"""


def job_blocks(output: str, rule: str) -> list[str]:
    """The dry run's description of each job of ``rule`` (input, output, reason, ...)."""
    chunks = re.split(r"^(?=\[[^\]]+\]\n(?:local)?(?:rule|checkpoint) \w+:$)", output, flags=re.M)
    return [c for c in chunks if re.search(rf"^(?:local)?rule {rule}:$", c, re.M)]


def test_paper_dry_run_downloads_first_and_readers_depend_on_them(snakemake_runner, tmp_path):
    res = snakemake_runner.run(tmp_path, "--dry-run", cores=1, configfiles=[PAPER])
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-3000:]
    jobs = snakemake_runner.planned_jobs(out)
    assert jobs["download_images"] == sum(IMAGE_FILES.values()) and jobs["download_zoo"] == 4, jobs
    assert jobs["dataset"] == 4 and jobs["zoo_smallcnnzoo"] == 4, jobs

    downloads = job_blocks(out, "download_images") + job_blocks(out, "download_zoo")
    assert len(downloads) == 15
    assert all("    input:" not in b for b in downloads)  # no code input: editing the package downloads nothing
    for d, n in IMAGE_FILES.items():
        zoo, dataset = (next(b for b in job_blocks(out, r) if f"results/{d}/" in b) for r in ("zoo_smallcnnzoo",
                                                                                              "dataset"))
        assert f"data_cache/{d}.tar.xz" in zoo
        assert re.search(rf"reason: .*Input files updated by another job: .*data_cache/{d}\.tar\.xz", zoo)
        files = re.findall(rf"data_cache/{d}/[\w.-]+", dataset.split("output:")[0])
        assert len(set(files)) == n, dataset
        assert all(f in dataset.split("reason:")[1] for f in files)  # updated by the download jobs

    # pre-fetching on the login node: only the downloads
    until = snakemake_runner.run(tmp_path, "--dry-run", "--until", "download_images", "download_zoo", cores=1,
                                 configfiles=[PAPER])
    assert until.returncode == 0, (until.stdout + until.stderr)[-3000:]
    assert set(snakemake_runner.planned_jobs(until.stdout + until.stderr)) == {"download_images", "download_zoo"}


def test_digits_needs_no_download(snakemake_runner, tmp_path):
    res = snakemake_runner.run(tmp_path, "--dry-run", cores=1, configfiles=[TINY_CONFIG])
    assert res.returncode == 0, res.stderr[-3000:]
    jobs = snakemake_runner.planned_jobs(res.stdout + res.stderr)
    assert "dataset" in jobs and not {"download_images", "download_zoo"} & set(jobs), jobs


def test_image_files_downloaded_anew_do_not_rerun_the_data_set(snakemake_runner, tmp_path):
    """ancient(): the image files' bytes are pinned by MD5, so a newer copy re-runs nothing."""
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"datasets": ["mnist"], "tracer": {"datasets": []}}))
    cache = tmp_path / "data_cache" / "mnist"
    cache.mkdir(parents=True)
    result = tmp_path / "results" / "mnist" / "dataset.nc"
    result.parent.mkdir(parents=True)
    result.write_bytes(b"")
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
                 "t10k-labels-idx1-ubyte.gz"):
        (cache / name).write_bytes(b"")
        os.utime(cache / name, (result.stat().st_mtime + 60,) * 2)  # downloaded after the data set was made
    res = snakemake_runner.run(tmp_path, "--dry-run", targets=[str(result.relative_to(tmp_path))], cores=1,
                               configfiles=[tmp_path / "config.yaml"])
    assert res.returncode == 0, res.stderr[-3000:]
    assert "Nothing to be done" in res.stdout + res.stderr, (res.stdout + res.stderr)[-3000:]


def test_download_is_a_local_rule_under_a_cluster_executor(snakemake_runner, tmp_path):
    pytest.importorskip("snakemake_executor_plugin_slurm")
    served = tmp_path / "server" / "mnist.tar.xz"
    served.parent.mkdir()
    served.write_bytes(b"not really a zoo archive, but the download does not read it" * 100)
    sha256 = hashlib.sha256(served.read_bytes()).hexdigest()
    work = tmp_path / "work"
    work.mkdir()
    url = f"{served.parent.as_uri()}/{{dataset}}.tar.xz"
    config = {"datasets": ["mnist"], "tracer": {"datasets": []},
              "zoo": {"source": "smallcnnzoo", "smallcnnzoo": {"url": url, "sha256": {"mnist": sha256}}}}
    (work / "config.yaml").write_text(yaml.safe_dump(config))
    (work / "Snakefile").write_text(DEPLOYING.format(snakefile=REPO / "workflow" / "Snakefile"))
    runner = snakemake_runner.deployed(work / "Snakefile")
    # no SLURM here: a job that were submitted would fail (no sbatch, no sacct)
    res = runner.run(work, "--executor", "slurm", "--jobs", "1", "--slurm-init-seconds-before-status-checks", "1",
                     "--seconds-between-status-checks", "1", targets=["data_cache/mnist.tar.xz"], timeout=300)
    log = res.stdout + res.stderr
    assert res.returncode == 0, log[-4000:]
    assert re.search(r"^localrule causalxai_download_zoo:$", log, re.M), log[-4000:]
    assert "submitted with SLURM jobid" not in log
    assert (work / "data_cache" / "mnist.tar.xz").read_bytes() == served.read_bytes()
    assert (work / "logs" / "downloads" / "mnist.tar.xz.log").exists()

    # a changed URL (or pin) downloads again, and the zoo is then read again too (not ancient)
    config["zoo"]["smallcnnzoo"]["url"] = "https://mirror.example.org/{dataset}.tar.xz"
    (work / "config.yaml").write_text(yaml.safe_dump(config))
    dry = runner.run(work, "--dry-run", targets=["results/mnist/zoo.nc"], cores=1)
    out = dry.stdout + dry.stderr
    assert dry.returncode == 0, out[-3000:]
    (download,) = job_blocks(out, "causalxai_download_zoo")
    assert re.search(r"reason: .*[Pp]arams have changed", download), download
    (zoo,) = job_blocks(out, "causalxai_zoo_smallcnnzoo")
    assert "data_cache/mnist.tar.xz" in zoo
