"""Settings objects of paper 004's steps: validation names the field, from_params the config key."""

from __future__ import annotations

import dataclasses

import pytest

from causalxai.compress.compress import CompressSettings
from causalxai.counterfactual.counterfactuals import CounterfactualSettings
from causalxai.counterfactual.gan import GanSettings
from causalxai.tracer.reliability import ReliabilitySettings
from causalxai.tracer.settings import EPS_SWEEP, ClassifierSettings, TracerSettings


def test_tracer_settings_from_params_and_defaults():
    s = TracerSettings.from_params({"layers": ["a", "b"], "patch": [4, 4], "stride": 2, "eps": 0, "eps_sweep": [0, 1]})
    assert s.layers == ("a", "b") and s.patch == 4 and s.stride == 2 and s.eps == 0.0 and s.eps_sweep == (0.0, 1.0)
    assert TracerSettings().eps_sweep == EPS_SWEEP and TracerSettings(patch=(2, 3)).patch == (2, 3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.eps = 0.1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("params", "key"),
    [
        ({"eps": 2}, "tracer.cka.eps must be a number in [0, 1]"),
        ({"eps_sweep": []}, "tracer.cka.eps_sweep"),
        ({"patch": 0}, "tracer.interventions.patch"),
        ({"stride": [1, 2, 3]}, "tracer.interventions.stride"),
        ({"kernel": "cosine"}, "tracer.cka.kernel"),
        ({"mask_threshold": -0.1}, "tracer.ace.mask_threshold"),
        ({"top_k": 0}, "tracer.ace.top_k"),
        ({"batch_size": 1.5}, "tracer.interventions.batch_size"),
        ({"layers": []}, "tracer.layers"),
        ({"unknown": 1}, "unknown key 'unknown'"),
    ],
)
def test_tracer_settings_errors_name_the_config_key(params, key):
    with pytest.raises(ValueError, match=key.replace("[", r"\[").replace("]", r"\]")):
        TracerSettings.from_params(params)


def test_direct_construction_names_the_field():
    with pytest.raises(ValueError, match=r"TracerSettings.eps must be a number in \[0, 1\].*got 2"):
        TracerSettings(eps=2)
    with pytest.raises(ValueError, match="ClassifierSettings.epochs"):
        ClassifierSettings(epochs=-1)


@pytest.mark.parametrize(
    ("cls", "params", "section", "key"),
    [
        (ClassifierSettings, {"lr": -1}, "tracer.model", "tracer.model.lr"),
        (ClassifierSettings, {"batch_size": 0}, "tracer.compress", "tracer.compress.batch_size"),
        (ClassifierSettings, {"seed": -3}, "tracer.model", r"^seed"),
        (GanSettings, {"lam": 2}, None, "tracer.counterfactual_gan.lam"),
        (CounterfactualSettings, {"n_candidates": 0}, None, "tracer.counterfactuals.n_candidates"),
        (CompressSettings, {"levels": []}, None, "tracer.compress.levels"),
        (CompressSettings, {"max_models": 0}, None, "tracer.compress.max_models"),
        (ReliabilitySettings, {"methods": ["anchors"]}, None, "tracer.reliability.methods"),
        (ReliabilitySettings, {"p": 1.5}, None, "tracer.reliability.p"),
        (ReliabilitySettings, {"ci": 1.0}, None, "tracer.reliability.ci"),
        (ReliabilitySettings, {"bootstrap": 0}, None, "tracer.reliability.bootstrap"),
    ],
)
def test_step_settings_errors_name_the_config_key(cls, params, section, key):
    with pytest.raises(ValueError, match=key):
        cls.from_params(params, section=section)


def test_reliability_settings_carry_the_captum_baselines():
    s = ReliabilitySettings.from_params({"methods": ["lrp", "tracer"], "lime_samples": 20, "superpixel": 7}, seed=3)
    assert s.methods == ("tracer", "lrp") and s.seed == 3
    assert s.baselines.n_samples == 20 and s.baselines.superpixel == 7
    assert s.baselines.grad_cam_layer is None and s.bootstrap == 1000 and s.ci == 0.95  # defaults: auto, 1000, 95 %
    s = ReliabilitySettings.from_params({"grad_cam_layer": "conv5", "patch": [3, 5], "stride": 2, "bootstrap": 50,
                                         "ci": 0.9})
    assert s.baselines.grad_cam_layer == "conv5" and s.bootstrap == 50 and s.ci == 0.9
    assert s.baselines.occlusion_patch == (3, 5) and s.baselines.occlusion_stride == (2, 2)
    assert ReliabilitySettings.from_params({"grad_cam_layer": "auto"}).baselines.grad_cam_layer is None
    assert CompressSettings(epochs=2, lr=0.01, seed=5).training == ClassifierSettings(epochs=2, lr=0.01, seed=5)
