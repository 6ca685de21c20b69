"""Every check before the first job (issue 17): a config that passes the schema but cannot work
stops the workflow with a message naming the key, before any job runs (no results/, no logs/).

Each case is one snakemake parse of the embedded default with one fault on top; the unit tests of
the same checks are in tests/test_config.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from ..test_config import CUSTOM_NETS, SINGLE_VALUES
from .conftest import copy_repo

pytestmark = pytest.mark.workflow


def refused(runner, workdir: Path, bad: dict, *args: str):
    """Run the default with ``bad`` on top; assert it failed before any job and return its output."""
    path = workdir / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    res = runner.run(workdir, *args, cores=2, configfiles=[path])
    out = res.stdout + res.stderr
    assert res.returncode != 0, out[-3000:]
    assert not (workdir / "results").exists() and not (workdir / "logs").exists(), out[-3000:]
    return out


@pytest.mark.parametrize(
    "bad, needle",
    [
        # tracer.layers resolved on the architecture, built once untrained
        ({"tracer": {"layers": ["fc3", "fc3"]}}, "tracer.layers ['fc3', 'fc3'] on 'alexnet28' (digits inputs "
                                                 "1x28x28): lists ['fc3'] more than once"),
        ({"tracer": {"layers": ["relu1", "fc9"]}}, "['fc9'] is not a module of Sequential; its leaf modules in "
                                                   "forward order are ['conv1', 'relu1'"),
        ({"tracer": {"layers": ["fc3", "relu1"]}}, "but forward runs them as ['relu1', 'fc3']"),
        ({"tracer": {"layers": ["relu1", "relu7"]}}, "ends at 'relu7', which is not the model's output"),
        ({"tracer": {"reliability": {"grad_cam_layer": "conv9"}}},  # was the reliability job's AttributeError
         "tracer.reliability.grad_cam_layer 'conv9' is not a module of 'alexnet28'"),
        # image sizes against the zoo network
        ({"data": {"image_size": 14}}, "data.image_size (14) is too small for the zoo network"),
        # sample counts against the splits; probe sets without some classes
        ({"images": {"n_images": 5}}, "images.n_images (5) is smaller than the 10 classes of digits"),
        ({"images": {"n_images": 400}}, "images.n_images (400) draws 40 test images of class 0 of digits"),
        ({"tracer": {"reliability": {"n_samples": 1000}}}, "tracer.reliability.n_samples (1000) draws 100 test"),
        ({"tracer": {"counterfactuals": {"ynn_k": 2000}}}, "tracer.counterfactuals.ynn_k (2000) exceeds the 1437"),
        # cross checks that jobs made (mechanisms, compress, meta_model, effects)
        ({"tracer": {"mechanisms": {"eps_step": 1.0e-5}}}, "tracer.mechanisms.eps_radius (0.02) / "
                                                           "tracer.mechanisms.eps_step (1e-05)"),
        ({"tracer": {"compress": {"random_weights_samples": 101}}},
         "tracer.compress.random_weights_samples (101) exceeds tracer.n_samples (100)"),
        ({"zoo": {"n_models": 8}, "buckets": {"edges": [0, 50, 100]}, "meta_model": {"top_fraction": 0.05}},
         "meta_model: subset 'top' has 1 model(s)"),
        ({"zoo": {"train": {"hparams": SINGLE_VALUES}}}, "zoo.train.hparams: every hyperparameter takes a single"),
        # trained weights that are not there
        ({"tracer": {"model": {"weights": "mine_{dataset}.pt"}}}, "tracer.model.weights: mine_digits.pt (the weights "
                                                                 "for digits) does not exist"),
        # a custom explanation method that does not exist (issue 18 item 4)
        ({"explain": {"methods": ["gradient", "captum.attr.InputXGradiant"]}},
         "explain.methods[1] (captum.attr.InputXGradiant): captum.attr has no attribution class 'InputXGradiant'"),
        # a figure's hyperparameter that has no control group in this zoo
        ({"zoo": {"train": {"hparams": {"activation": ["relu"]}}}, "effects": {"figures": {"kernel_comparison":
         "activation"}}}, "effects.figures.kernel_comparison 'activation' takes a single value in this zoo"),
    ],
)
def test_bad_config_stops_before_any_job(snakemake_runner, tmp_path, bad, needle):
    assert needle in refused(snakemake_runner, tmp_path, bad)


@pytest.fixture(scope="module")
def nets_copy(tmp_path_factory):
    """A copy of the workflow whose src/ also holds the module checknets (tests/test_config.py)."""
    repo = copy_repo(tmp_path_factory.mktemp("nets"))
    (repo / "src" / "checknets.py").write_text(CUSTOM_NETS)
    return repo


@pytest.mark.parametrize(
    "bad, needle",
    [
        ({"tracer": {"model": {"architecture": "checknets:relu_net"}, "layers": ["act", "fc"]},
          "data": {"image_size": 32}},
         "tracer.model.architecture 'checknets:relu_net' cannot take the digits inputs 1x32x32"),
    ],
)
def test_a_custom_architecture_tracer_cannot_use_stops_before_any_job(snakemake_runner, nets_copy, tmp_path, bad,
                                                                       needle):
    assert needle in refused(snakemake_runner.on(nets_copy), tmp_path, bad)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_device_cuda_without_cuda_stops_a_local_run_before_any_job_but_not_a_dry_run(snakemake_runner, tmp_path):
    out = refused(snakemake_runner, tmp_path, {"device": "cuda"})
    assert "device: 'cuda' was asked for but no CUDA device is present" in out and "jobs run on this machine" in out
    dry = snakemake_runner.run(tmp_path, "--dry-run", cores=2, configfiles=[tmp_path / "bad.yaml"])
    assert dry.returncode == 0, (dry.stdout + dry.stderr)[-3000:]


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_device_cuda_is_not_checked_where_jobs_are_submitted_to_a_cluster(snakemake_runner, tmp_path):
    """A login node has no GPU: under the SLURM executor only the local rules run here (a download)."""
    pytest.importorskip("snakemake_executor_plugin_slurm")
    served = tmp_path / "server" / "mnist.tar.xz"
    served.parent.mkdir()
    served.write_bytes(b"not really a zoo archive" * 100)
    work = tmp_path / "work"
    work.mkdir()
    config = {"device": "cuda", "datasets": ["mnist"], "tracer": {"datasets": []},
              "zoo": {"source": "smallcnnzoo", "smallcnnzoo": {"url": f"{served.parent.as_uri()}/{{dataset}}.tar.xz"}}}
    (work / "config.yaml").write_text(yaml.safe_dump(config))
    res = snakemake_runner.run(work, "--executor", "slurm", "--jobs", "1", "--slurm-init-seconds-before-status-checks",
                               "1", "--seconds-between-status-checks", "1", targets=["data_cache/mnist.tar.xz"],
                               configfiles=[work / "config.yaml"], timeout=300)
    log = res.stdout + res.stderr
    assert res.returncode == 0, log[-4000:]
    assert "no CUDA device" not in log and (work / "data_cache" / "mnist.tar.xz").exists()
