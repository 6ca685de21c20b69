"""Custom explanation methods (issue 18 item 4): a Captum class by name or a user function, in the
zoo study (batched or model by model) and in TRACER's reliability, against independent references."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import ndimage

import causalxai.attribution.custom as custom
from causalxai.attribution.custom import check_methods, chunk_attributions, method_spec, rows_forward
from causalxai.config import ConfigError, _check_methods
from causalxai.study.explain import METHODS, ExplainSettings, explain_zoo
from causalxai.study.predictions import predict_zoo
from causalxai.zoo.dataset import model_from_zoo
from causalxai.zoo.network import batched_forward

from .conftest import N

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def examples(monkeypatch):
    """``examples/`` importable (as a user's folder on PYTHONPATH)."""
    monkeypatch.syspath_prepend(str(EXAMPLES))


def batch_scaled_gradient(forward, inputs, target):
    """A method that mixes rows: the gradient scaled by the whole batch's largest |gradient| (what
    the batched path must not accept, as a model's maps then depend on the other models)."""
    x = inputs.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(forward(x).gather(1, target[:, None]).sum(), x)
    return g / g.abs().amax()


def wrong_shape(forward, inputs, target):
    """Attributions cropped to 5 columns: not the inputs' shape."""
    return inputs[..., :5]


def _spec(entry):
    return method_spec(entry, "explain.methods", METHODS)


def _softmax_module(model):
    return torch.nn.Sequential(model, torch.nn.Softmax(dim=-1))


@pytest.mark.parametrize("name, kwargs", [("InputXGradient", {}), ("DeepLift", {}),
                                          ("IntegratedGradients", {"n_steps": 7}), ("GuidedBackprop", {})])
def test_a_captum_class_by_name_equals_captum_on_each_model(zoo_and_images, name, kwargs):
    """Batched (InputXGradient, IG) or model by model (DeepLift, GuidedBackprop hook the layers): every
    model's maps equal Captum's class called directly on that model's own nn.Module."""
    import captum.attr

    zoo, images = zoo_and_images
    s = ExplainSettings(device="cpu", dtype="float64", chunk_size=3,
                        custom={"name": f"captum.attr.{name}", "attribute": kwargs})
    pred = predict_zoo(zoo, images, s)
    ds = explain_zoo(zoo, images, pred, "mine", s)
    assert ds.attrs["method"] == "mine" and ds["E"].shape == (7, 2, 4, 28, 28)
    x = torch.tensor(images["pixels"].values[:, None], dtype=torch.float64)
    for m in range(7):
        model = _softmax_module(model_from_zoo(zoo, m).double())
        for effect, key in (("total", "target"), ("direct", "target_direct")):
            want = getattr(captum.attr, name)(model).attribute(x, target=torch.tensor(pred[key].values[m]), **kwargs)
            got = ds["attribution"].sel(effect=effect).values[m]
            want = want[:, 0].detach().numpy()
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-9 * float(np.abs(want).max()))


@pytest.mark.parametrize("entry", ["captum.attr.InputXGradient", "methods:gradient_times_input",
                                   "methods:edge_detector",
                                   {"name": "captum.attr.IntegratedGradients", "attribute": {"n_steps": 5}},
                                   {"name": "captum.attr.FeatureAblation", "attribute": {"perturbations_per_eval": 3}}])
def test_the_batched_path_equals_the_per_model_loop(zoo_setup, examples, entry):
    """M models in one forward give each model's own maps: the path with ``batched: true`` equals
    the one with ``batched: false`` (each model's nn.Module alone); IG's steps and FeatureAblation's
    perturbations come as k (model, image) layouts in one batch."""
    params, x, is_tanh, models, target = zoo_setup(torch.float64)
    params = {k: v[:4] for k, v in params.items()}  # the relu/tanh mix is not one chunk: take 4 models
    act = torch.tensor([False, True, False, True])
    base = {"name": entry} if isinstance(entry, str) else dict(entry)
    fwd = batched_forward(params, act, "prob")
    both = []
    for flag in (True, False):
        spec = _spec({**base, "batched": flag})
        both.append(chunk_attributions(spec, fwd, lambda i: _softmax_module(models[i]), x, target[:4]))
    assert both[0].shape == (4, N, 1, 28, 28) and spec.label == {
        "captum.attr.IntegratedGradients": "captum_integrated_gradients",  # not the built-in's label
        "captum.attr.InputXGradient": "input_x_gradient"}.get(base["name"], spec.label)
    np.testing.assert_allclose(both[0].numpy(), both[1].numpy(), rtol=1e-7, atol=1e-10 * float(both[1].abs().max()))
    assert float(both[1].abs().max()) > 0


def test_the_example_function_is_captums_input_x_gradient_and_the_edge_detector_is_sobel(zoo_setup, examples):
    import captum.attr
    from methods import edge_detector, gradient_times_input

    params, x, is_tanh, models, target = zoo_setup(torch.float64)
    model = _softmax_module(models[1])
    mine = gradient_times_input(model, x, target[1])
    want = captum.attr.InputXGradient(model).attribute(x, target=target[1])
    np.testing.assert_allclose(mine.numpy(), want.detach().numpy(), rtol=1e-10, atol=1e-14)
    edges = edge_detector(model, x, target[1])[:, 0].numpy()
    for n in range(N):  # scipy's Sobel (zero padding outside the image) along both axes
        img = x[n, 0].numpy()
        gx = ndimage.sobel(img, axis=1, mode="constant")
        gy = ndimage.sobel(img, axis=0, mode="constant")
        np.testing.assert_allclose(edges[n], np.hypot(gx, gy), rtol=1e-10, atol=1e-12)


def test_auto_uses_the_batched_path_only_when_the_first_model_agrees(zoo_setup, caplog, monkeypatch):
    """``batched: auto``: InputXGradient runs batched (no per-model pass besides the check's first and
    last models); a method that mixes rows is caught by the check and runs model by model, warned."""
    params, x, is_tanh, models, target = zoo_setup(torch.float64)
    params = {k: v[:4] for k, v in params.items()}
    act = torch.tensor([False, True, False, True])
    fwd = batched_forward(params, act, "prob")
    built = []

    def module(i):
        built.append(i)
        return _softmax_module(models[i])

    out = chunk_attributions(_spec("captum.attr.InputXGradient"), fwd, module, x, target[:4])
    assert sorted(built) == [0, 3] and out.shape == (4, N, 1, 28, 28)
    monkeypatch.setattr(custom, "_warned", set())
    name = f"{__name__}:batch_scaled_gradient"
    built.clear()
    with caplog.at_level(logging.WARNING, logger="causalxai.attribution.custom"):
        mixed = chunk_attributions(_spec({"name": name, "label": "scaled"}), fwd, module, x, target[:4])
    assert sorted(built) == [0, 1, 2, 3]  # the check's models 0 and 3, then the others, each built once
    assert "scaled" in caplog.text and "model by model" in caplog.text and "differ" in caplog.text
    for i in range(4):  # each model's maps scaled by its own maximum, not the chunk's
        want = batch_scaled_gradient(_softmax_module(models[i]), x, target[i])
        np.testing.assert_allclose(mixed[i].numpy(), want.numpy(), rtol=1e-10, atol=1e-14)


def test_rows_forward_lays_out_k_blocks_of_models_and_images():
    fwd = rows_forward(lambda x: x.flatten(2)[..., :1] + 10 * torch.arange(2.0)[:, None, None], models=2, images=3)
    rows = torch.arange(12.0).view(12, 1)  # k = 2 blocks of (2 models x 3 images)
    out = fwd(rows)
    assert out[:, 0].tolist() == [0, 1, 2, 13, 14, 15, 6, 7, 8, 19, 20, 21]  # model 1's rows get + 10
    with pytest.raises(ValueError, match="not a multiple"):
        fwd(torch.zeros(5, 1))


@pytest.mark.parametrize(
    "entries, needle",
    [
        (["captum.attr.InputXGradiant"], r"explain.methods\[0\].*no attribution class 'InputXGradiant'"),
        (["no_such_package.mod:fn"], r"explain.methods\[0\].*cannot import 'no_such_package.mod'"),
        (["methods:no_such_function"], r"explain.methods\[0\].*no function 'no_such_function'"),
        (["json:dumps"], r"explain.methods\[0\] \(json:dumps\): the function must take \(forward, inputs, target\)"),
        ([{"name": "captum.attr.DeepLift", "init": {"multiply": True}}], r"init: no keyword argument.*'multiply'"),
        ([{"name": "captum.attr.Saliency", "attribute": {"target": 1}}], r"\['target'\] are given by the workflow"),
        ([{"name": "captum.attr.Saliency", "attribute": {"ab": True}}], r"attribute: no keyword argument.*'ab'"),
        (["captum.attr.LayerGradCam"], r"required argument\(s\) \['layer'\]"),
        (["captum.attr.NoiseTunnel"], r"built on 'attribution_method'"),
        (["captum.attr.Saliency", {"name": "methods:gradient_times_input", "label": "saliency"}],
         r"explain.methods\[1\].*label 'saliency' is already used by explain.methods\[0\]"),
        ([{"name": "captum.attr.Saliency", "label": "../evil"}], r"not a safe file name"),
        ([{"name": "captum.attr.Saliency", "label": "gradient"}], r"label 'gradient' is taken"),
        ([{"name": "captum.attr.Saliency", "label": "identity"}], r"label 'identity' is taken"),
        (["gradint"], r"unknown method 'gradint'.*captum.attr.<Class>"),
        ([{"name": "gradient", "label": "g"}], r"built-in method 'gradient' takes no label"),
        ([{"name": "captum.attr.Saliency", "batched": "yes"}], r"batched must be auto, true or false"),
    ],
)
def test_bad_entries_are_refused_naming_the_entry_and_the_fix(examples, entries, needle):
    with pytest.raises(ValueError, match=needle):
        check_methods(entries, "explain.methods", METHODS)


def test_the_config_check_refuses_a_bad_method_of_either_list(examples):
    good = {"explain": {"methods": ["gradient", "captum.attr.InputXGradient", "methods:gradient_times_input"],
                        "output": "logit"},
            "tracer": {"reliability": {"methods": ["gradient", {"name": "methods:edge_detector", "label": "edges"}]}}}
    _check_methods(good)
    bad = {**good, "tracer": {"reliability": {"methods": ["lime", "captum.attr.Nope"]}}}
    with pytest.raises(ConfigError, match=r"tracer.reliability.methods\[1\] \(captum.attr.Nope\)"):
        _check_methods(bad)


def test_the_config_check_runs_each_custom_method_once_before_any_job(examples):
    """What no signature shows (a wrong return shape) stops the config check, naming the entry; in
    either list (TRACER's on its target model)."""
    from causalxai.config import _check_reliability_model

    wrong = {"name": f"{__name__}:wrong_shape", "label": "cropped"}
    config = {"explain": {"methods": ["gradient", "methods:edge_detector", wrong], "output": "prob"},
              "tracer": {"reliability": {"methods": ["gradient"]}}}
    with pytest.raises(ConfigError, match=r"explain.methods\[2\] \(.*:wrong_shape\) fails on two zoo networks: "
                                          r"ValueError: cropped .* returned attributions of shape"):
        _check_methods(config)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3))
    rel = {"tracer": {"reliability": {"methods": ["methods:gradient_times_input", wrong], "grad_cam_layer": "auto"},
                      "model": {"architecture": "mine"}}}
    with pytest.raises(ConfigError, match=r"tracer.reliability.methods\[1\] \(.*wrong_shape\) fails on 'mine' "
                                          r"\(digits\): ValueError"):
        _check_reliability_model(rel, net, torch.zeros(2, 1, 8, 8), None, "digits", "mine")


def test_a_function_returning_the_wrong_shape_is_named(zoo_setup):
    params, x, is_tanh, models, target = zoo_setup(torch.float32)
    spec = _spec({"name": f"{__name__}:wrong_shape", "label": "wrong"})
    with pytest.raises(ValueError, match=r"wrong \(.*wrong_shape\) returned attributions of shape \(6, 1, 28, 5\)"):
        custom.custom_attribute(spec, models[0], x, target[0])


def test_reliability_scores_a_custom_method_like_the_builtin_it_equals(tmp_path):
    """Captum's Saliency(abs=False) is the built-in gradient: scored by the same masks, draws and
    protocols, its reliability row equals gradient's; the custom row sits next to the built-ins."""
    from causalxai.tracer.reliability import ReliabilitySettings, reliability_dataset

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
                              torch.nn.Linear(4 * 8 * 8, 3)).eval()
    x_raw = torch.rand(12, 1, 8, 8)
    tracer = torch.rand(12, 8, 8)
    s = ReliabilitySettings(methods=["tracer", "gradient", {"name": "captum.attr.Saliency", "label": "saliency",
                                                            "attribute": {"abs": False}}],
                            p=0.5, trials=3, bootstrap=20)
    assert list(s.methods) == ["tracer", "gradient", "saliency"] and set(s.custom) == {"saliency"}
    ds = reliability_dataset(net, x_raw, None, tracer, s)
    assert ds["method"].values.tolist() == ["tracer", "gradient", "saliency"]
    for var in ("score", "mask_fraction", "n_empty"):
        mine, builtin = (ds[var].sel({"method": m}).values for m in ("saliency", "gradient"))
        np.testing.assert_array_equal(mine, builtin)
    assert 0 < float(ds["mask_fraction"].sel({"method": "saliency", "protocol": "paper"})) < 1
    from causalxai.plots.tracer_figures import plot_reliability, reliability_frame

    assert reliability_frame(ds)["name"].tolist()[-2:] == ["saliency", "saliency"]  # its bars, by its label
    plot_reliability(ds, tmp_path / "reliability.png")
    assert (tmp_path / "reliability.png").stat().st_size > 0
