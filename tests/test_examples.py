"""The scripts under ``examples/`` run as the README says, and give sound results."""

from __future__ import annotations

import runpy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _load(name: str) -> dict:
    return runpy.run_path(str(EXAMPLES / name), run_name="example")


def _run_script(name: str) -> subprocess.CompletedProcess:
    """``python examples/<name>`` from the repository root, as the scripts' docstrings say."""
    res = subprocess.run([sys.executable, str(EXAMPLES / name)], capture_output=True, text=True,
                         cwd=EXAMPLES.parent, timeout=300)
    assert res.returncode == 0, res.stderr
    return res


def test_tracer_example_runs_as_a_script():
    res = _run_script("tracer_on_your_model.py")
    assert "causal nodes per sample" in res.stdout and "random_foreground" in res.stdout


def test_tracer_example_results():
    out = _load("tracer_on_your_model.py")["main"](n_samples=6)
    assert out["accuracy"] > 0.5  # a trained model, not chance (0.1)
    nodes, mech, rel = out["nodes"], out["mechanisms"], out["reliability"]
    groups = nodes["group"].values
    assert groups.shape == (6, 4)
    # a causal node is a run of consecutive layers (Def. 3): ids start at 0 and step by 0 or 1
    assert (groups[:, 0] == 0).all() and np.isin(np.diff(groups, axis=1), [0, 1]).all()
    assert nodes["n_groups"].values.tolist() == (groups.max(axis=1) + 1).tolist()
    assert mech["n_samples"].sum() == 6
    assert mech["share"].sum() == pytest.approx(1.0)
    score = rel["mean"].sel(protocol="paper")
    assert set(score["method"].values) == {"tracer", "gradient", "occlusion", "random_foreground"}
    assert ((score >= 0) & (score <= 1)).all()


def test_zoo_study_example_runs_as_a_script():
    res = _run_script("zoo_study_on_your_models.py")
    assert "identity 1.000" in res.stdout and "learning_rate" in res.stdout


def test_zoo_study_example_results():
    import torch

    mod = _load("zoo_study_on_your_models.py")
    out = mod["main"](n_seeds=2, bootstrap=10)
    zoo, predictions, effects = out["zoo"], out["predictions"], out["effects"]
    assert zoo.sizes["model"] == 12
    assert sorted(set(zoo["optimizer"].values.tolist())) == ["adam", "sgd"]
    # the zoo's batched (vmap) predictions equal each model rebuilt by hand from its flat row and run alone
    images = torch.tensor(mod["select_probe_images"](mod["assemble"]("d", _digits8(), n_classes=10, kind="image",
                                                                      value_range=(0, 16)), 20, seed=0)
                          ["pixels"].values[:, None])
    weights = zoo["weights"].values
    for m in (0, 7, 11):
        net = mod["small_cnn"]()
        state, start = {}, 0
        for name, t in net.state_dict().items():
            state[name] = torch.tensor(weights[m, start:start + t.numel()]).reshape(t.shape)
            start += t.numel()
        net.load_state_dict(state)
        with torch.no_grad():
            expected = torch.softmax(net(images), -1).numpy()
        np.testing.assert_allclose(predictions["prob"].values[m], expected, atol=1e-5)
    # eq. (4) with E := Y correlates perfectly with itself (the Identity reference)
    corr = effects["corr_hparam"].sel({"effect": "total", "bucket": "0-100", "stat": "pearson", "method": "identity"})
    assert np.allclose(corr.sel(hparam=["optimizer", "learning_rate"]).values, 1.0)
    grad = effects["corr"].sel({"effect": "total", "method": "gradient", "stat": "pearson"}).values
    assert np.all(np.isnan(grad) | (np.abs(grad) <= 1 + 1e-9))


def _digits8() -> dict:
    """The example's split of the 8x8 digits (the same call as the example)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    itr, ite = train_test_split(np.arange(len(d.target)), test_size=0.3, random_state=0, stratify=d.target)
    return {"x_train": d.images[itr], "y_train": d.target[itr], "x_test": d.images[ite], "y_test": d.target[ite]}


def test_the_breast_cancer_example_config_is_valid():
    """``examples/breast_cancer.yaml`` on top of the default passes the schema and every check."""
    import copy

    import yaml
    from snakemake.utils import validate

    from causalxai.config import check_config

    root = EXAMPLES.parent
    cfg = yaml.safe_load((root / "config" / "config.yaml").read_text())
    extra = yaml.safe_load((EXAMPLES / "breast_cancer.yaml").read_text())

    def merge(a: dict, b: dict) -> dict:
        out = copy.deepcopy(a)
        for k, v in b.items():
            out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
        return out

    cfg = merge(cfg, extra)
    schema = str(root / "config" / "schema.yaml")
    validate(cfg, schema, set_default=True)
    check_config(cfg, schema=yaml.safe_load(Path(schema).read_text()))
    assert cfg["tracer"]["datasets"] == ["breast_cancer"] and cfg["tracer"]["tabular"]["architecture"] == "mlp"
