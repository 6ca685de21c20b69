"""zoo.source checkpoints and the forward of a zoo of any architecture (zoo/forward.py): the
vmap forward, predictions and explanations against per-model loops, Captum and autograd in float64."""

import json
import logging

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr
from captum.attr import LayerAttribution, LayerGradCam, Saliency

from causalxai.study.explain import ExplainSettings, explain_zoo
from causalxai.study.predictions import predict_zoo
from causalxai.zoo import forward as zoo_forward_module
from causalxai.zoo.checkpoints import check_checkpoints_config, load_checkpoints_zoo
from causalxai.zoo.forward import unflatten_rows, zoo_forward

from .tiny_archs import item_net, tiny_bn_cnn, tiny_cnn, tiny_mlp

SIDE = 12
ARCH = "tests.zoo.tiny_archs:"


def _dataset(n=40, side=SIDE, seed=0):
    rng = np.random.default_rng(seed)
    return xr.Dataset(
        {"image": (("sample", "y", "x"), rng.normal(size=(n, side, side)).astype(np.float32)),
         "label": ("sample", rng.integers(0, 10, n)),
         "split": ("sample", np.where(np.arange(n) < n // 2, "train", "test"))},
    )


def _images(n=5, side=SIDE, seed=1):
    rng = np.random.default_rng(seed)
    return xr.Dataset({"pixels": (("image", "y", "x"), rng.normal(size=(n, side, side)).astype(np.float32))},
                      coords={"image": np.arange(n)})


def _write_zoo(tmp_path, factory, n=6, seed=0, acc=True, **kwargs):
    """n models of factory(**kwargs) perturbed apart, saved as state dicts with a CSV; returns (cfg, modules)."""
    torch.manual_seed(seed)
    modules, rows = [], []
    for i in range(n):
        m = factory(**kwargs)
        with torch.no_grad():
            for p in m.parameters():
                p.add_(0.3 * torch.randn_like(p))
            for name, b in m.named_buffers():
                if b.is_floating_point():
                    b.copy_(b + 0.1 * torch.rand_like(b))
        m.eval()
        torch.save(m.state_dict(), tmp_path / f"m{i}.pt")
        modules.append(m)
        rows.append({"file": f"m{i}.pt", "lr": [1e-3, 1e-2, 1e-1][i % 3], "opt": ["sgd", "adam"][i % 2],
                     "acc": 0.1 + 0.05 * i})
    pd.DataFrame(rows).to_csv(tmp_path / "zoo.csv", index=False)
    cfg = {"dir": str(tmp_path), "table": str(tmp_path / "zoo.csv"), "file_column": "file",
           "architecture": ARCH + factory.__name__, "kwargs": kwargs,
           "hparams": {"lr": {"type": "numerical", "markers": [1e-3, 1e-1], "log": True},
                       "opt": {"type": "categorical"}},
           "accuracy_column": "acc" if acc else None,
           "input_shape": [kwargs["side"] ** 2] if "side" in kwargs else None}
    return cfg, modules


@pytest.mark.parametrize("factory", [tiny_cnn, tiny_bn_cnn, tiny_mlp])
def test_vmap_forward_equals_a_loop_over_the_same_modules(tmp_path, factory):
    kwargs = {"side": SIDE} if factory is tiny_mlp else {}
    cfg, modules = _write_zoo(tmp_path, factory, **kwargs)
    zoo = load_checkpoints_zoo(cfg, _dataset())
    assert zoo.attrs["weights_layout"] == "state_dict" and zoo.sizes["model"] == 6
    np.testing.assert_array_equal(zoo["opt"].values, ["sgd", "adam"] * 3)
    np.testing.assert_allclose(zoo["test_accuracy"].values, 0.1 + 0.05 * np.arange(6))
    assert json.loads(zoo.attrs["hparams"])["lr"] == {"type": "numerical", "markers": [1e-3, 1e-1], "log": True}
    # the flat rows hold exactly torch.func.stack_module_state's parameters and buffers
    params, buffers = torch.func.stack_module_state(modules)
    rows = unflatten_rows(torch.tensor(zoo["weights"].values), json.loads(zoo.attrs["layout"]), modules[0].state_dict())
    assert set(rows) == set(params) | set(buffers)
    for k, v in {**params, **buffers}.items():
        torch.testing.assert_close(rows[k], v.detach().to(rows[k].dtype), rtol=0, atol=0)
    x = torch.tensor(_images()["pixels"].values[:, None], dtype=torch.float64)
    sel = np.array([1, 2, 4])
    for output in ("logit", "prob"):
        ours = zoo_forward(zoo, sel, output, dtype=torch.float64)(x)
        with torch.no_grad():
            ref = torch.stack([modules[i].double()(x.reshape(5, -1) if factory is tiny_mlp else x) for i in sel])
        ref = ref if output == "logit" else torch.softmax(ref, -1)
        torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)
    # one input batch per model (M, N, ...) gives each model its own
    xm = torch.stack([x, 2 * x, -x])
    ours = zoo_forward(zoo, sel, "logit", dtype=torch.float64)(xm)
    with torch.no_grad():
        ref = torch.stack([modules[i](xm[k].reshape(5, -1) if factory is tiny_mlp else xm[k])
                           for k, i in enumerate(sel)])
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)


def test_test_accuracy_is_computed_on_the_test_split_without_a_column(tmp_path):
    cfg, modules = _write_zoo(tmp_path, tiny_cnn, acc=False)
    data = _dataset()
    zoo = load_checkpoints_zoo(cfg, data)
    te = data["split"].values == "test"
    x = torch.tensor(data["image"].values[te][:, None])
    y = torch.tensor(data["label"].values[te])
    for i, m in enumerate(modules):
        with torch.no_grad():
            logits = m.float()(x)
        assert zoo["test_accuracy"].values[i] == pytest.approx(float((logits.argmax(-1) == y).float().mean()))
        assert zoo["test_loss"].values[i] == pytest.approx(float(torch.nn.functional.cross_entropy(logits, y)),
                                                           rel=1e-5)
    assert "test split" in zoo.attrs["accuracy"]


def test_predictions_and_explanations_of_a_checkpoints_zoo_match_captum(tmp_path):
    cfg, modules = _write_zoo(tmp_path, tiny_cnn)
    zoo = load_checkpoints_zoo(cfg, _dataset())
    images = _images()
    s = ExplainSettings(device="cpu", dtype="float64", chunk_size=4)
    pred = predict_zoo(zoo, images, s)
    x = torch.tensor(images["pixels"].values[:, None], dtype=torch.float64)
    for i, m in enumerate(modules):
        m = m.double()
        with torch.no_grad():
            np.testing.assert_allclose(pred["prob"].values[i], torch.softmax(m(x), -1).numpy(), rtol=1e-6, atol=1e-7)
    grad = explain_zoo(zoo, images, pred, "gradient", s, normalise=False)
    cam = explain_zoo(zoo, images, pred, "grad_cam", s, normalise=False)
    assert zoo.attrs["last_conv"] == "2"  # the last nn.Conv2d by default
    for i, m in enumerate(modules):
        for k, key in enumerate(("target", "target_direct")):
            t = torch.tensor(pred[key].values[i])
            sal = Saliency(lambda v, m=m: torch.softmax(m(v), -1)).attribute(x.clone(), target=t, abs=False)
            np.testing.assert_allclose(grad["attribution"].values[i, k], sal[:, 0].numpy(), rtol=1e-6, atol=1e-9)
            lgc = LayerGradCam(lambda v, m=m: torch.softmax(m(v), -1), m[2])
            ref = LayerAttribution.interpolate(lgc.attribute(x, target=t, relu_attributions=True), (SIDE, SIDE),
                                               interpolate_mode="bilinear")
            np.testing.assert_allclose(cam["attribution"].values[i, k], ref[:, 0].detach().numpy(), rtol=1e-6,
                                       atol=1e-9)


@pytest.mark.parametrize("factory, name", [(tiny_cnn, "DeepLift"), (tiny_mlp, "DeepLift"),
                                           (tiny_bn_cnn, "InputXGradient"), (tiny_mlp, "GuidedBackprop")])
def test_custom_methods_on_a_checkpoints_zoo_equal_captum_on_each_users_module(tmp_path, factory, name):
    """A custom method (issue 18 item 4) on a zoo of another architecture (item 5): DeepLift and
    GuidedBackprop hook the layers and run model by model on zoo_model (the MLP's inputs reshaped to
    its input shape), InputXGradient batched through the vmap forward: each model's maps equal
    Captum's class on the user's own module with a softmax module on top (float64)."""
    import captum.attr

    kwargs = {"side": SIDE} if factory is tiny_mlp else {}
    cfg, modules = _write_zoo(tmp_path, factory, **kwargs)
    zoo = load_checkpoints_zoo(cfg, _dataset())
    images = _images()
    s = ExplainSettings(device="cpu", dtype="float64", chunk_size=4, custom={"name": f"captum.attr.{name}"})
    pred = predict_zoo(zoo, images, s)
    maps = explain_zoo(zoo, images, pred, "mine", s, normalise=False)
    x = torch.tensor(images["pixels"].values[:, None], dtype=torch.float64)
    for i, m in enumerate(modules):
        net = torch.nn.Sequential(*([torch.nn.Flatten()] if factory is tiny_mlp else []), m.double(),
                                  torch.nn.Softmax(dim=-1)).eval()
        for k, key in enumerate(("target", "target_direct")):
            want = getattr(captum.attr, name)(net).attribute(x.clone(), target=torch.tensor(pred[key].values[i]))
            want = want[:, 0].detach().numpy()
            np.testing.assert_allclose(maps["attribution"].values[i, k], want, rtol=1e-6,
                                       atol=1e-9 * float(np.abs(want).max()))


def test_grad_cam_is_refused_for_a_zoo_without_a_conv_layer(tmp_path):
    cfg, _ = _write_zoo(tmp_path, tiny_mlp, side=SIDE)
    zoo = load_checkpoints_zoo(cfg, _dataset())
    images = _images()
    s = ExplainSettings(device="cpu")
    pred = predict_zoo(zoo, images, s)
    with pytest.raises(ValueError, match="grad_cam needs a convolutional layer.*tiny_mlp"):
        explain_zoo(zoo, images, pred, "grad_cam", s)
    maps = explain_zoo(zoo, images, pred, "gradient", s, normalise=False)
    assert maps["attribution"].shape == (6, 2, 5, SIDE, SIDE)


def test_a_module_vmap_cannot_batch_runs_model_by_model(tmp_path, caplog):
    cfg, modules = _write_zoo(tmp_path, item_net)
    zoo_forward_module._WARNED.discard(ARCH + "item_net")
    zoo = load_checkpoints_zoo(cfg, _dataset(side=8), dataset_name="x")
    x = torch.tensor(_images(side=8)["pixels"].values[:, None], dtype=torch.float64)
    with caplog.at_level(logging.WARNING):
        ours = zoo_forward(zoo, np.arange(6), "logit", dtype=torch.float64)(x)
    assert "vmap fails" in caplog.text and "one by one" in caplog.text
    with torch.no_grad():
        ref = torch.stack([m.double()(x) for m in modules])
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)


def test_bad_checkpoint_zoos_are_refused_naming_the_row_file_or_column(tmp_path):
    cfg, _ = _write_zoo(tmp_path, tiny_cnn)
    data = _dataset()
    (tmp_path / "m3.pt").unlink()
    with pytest.raises(FileNotFoundError, match=r"row 3 \(file 'm3.pt'\).*m3.pt does not exist"):
        load_checkpoints_zoo(cfg, data)
    with pytest.raises(FileNotFoundError, match="row 3 names 'm3.pt'"):
        check_checkpoints_config(cfg, ["digits"])
    torch.save(tiny_cnn(width=5).state_dict(), tmp_path / "m3.pt")  # another architecture
    with pytest.raises(ValueError, match=r"row 3.*m3.pt is not a checkpoint of the declared architecture "
                                         r"\(other shapes: 0.weight \(5, 1, 3, 3\) \(needs \(4, 1, 3, 3\)\)"):
        load_checkpoints_zoo(cfg, data)
    torch.save(tiny_mlp().state_dict(), tmp_path / "m3.pt")
    with pytest.raises(ValueError, match=r"missing: 6.weight, 6.bias; other shapes: 0.weight \(6, 64\)"):
        load_checkpoints_zoo(cfg, data)
    torch.save(tiny_cnn().state_dict(), tmp_path / "m3.pt")  # the right architecture again
    with pytest.raises(ValueError, match=r"lacks the column\(s\) \['momentum'\]"):
        load_checkpoints_zoo({**cfg, "hparams": {**cfg["hparams"], "momentum": {"type": "numerical"}}}, data)
    frame = pd.read_csv(cfg["table"]).astype({"lr": object})
    frame.loc[2, "lr"] = "fast"
    frame.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(ValueError, match="column 'lr'.*row 2 holds 'fast', not a finite number"):
        load_checkpoints_zoo({**cfg, "table": str(tmp_path / "bad.csv")}, data)
    with pytest.raises(ValueError, match="opt.type must be one of"):
        load_checkpoints_zoo({**cfg, "hparams": {"opt": {"type": "ordinal"}}}, data)
    with pytest.raises(ValueError, match="no attribute 'nope'"):
        check_checkpoints_config({**cfg, "architecture": ARCH + "nope"}, ["digits"])


def test_declared_hyperparameters_give_the_treatment_levels():
    from causalxai.study.estimators.treatments import treatment_levels
    from causalxai.zoo.hparams import check_hparam_specs, hparam_specs

    specs = check_hparam_specs({"lr": {"type": "numerical", "markers": [0.1, 0.001], "log": True},
                                "wd": {"type": "numerical"}, "opt": {"type": "categorical"}}, "zoo.checkpoints.hparams")
    assert specs["lr"]["markers"] == [0.001, 0.1]  # sorted
    # 2e-3 is 0.69 from 1e-3 and 3.9 from 1e-1 in log space; 0.02 is 3.0 and 1.6: rounded to 1e-3, 1e-1
    lv, labels = treatment_levels("lr", np.array([1e-3, 2e-3, 0.02, 0.09]), spec=specs["lr"])
    assert lv.tolist() == [0, 0, 1, 1] and labels == ["0.001", "0.1"]
    # linearly 0.02 would be nearer 0.001 (0.019 vs 0.08)
    lv, _ = treatment_levels("lr", np.array([0.02]), spec={**specs["lr"], "log": False})
    assert lv.tolist() == [0]
    lv, labels = treatment_levels("wd", np.array([0.5, 0.1, 10.0, 0.5]), spec=specs["wd"])  # no markers: by value
    assert lv.tolist() == [1, 0, 2, 1] and labels == ["0.1", "0.5", "10"]
    lv, labels = treatment_levels("opt", np.array(["sgd", "adam", "sgd"]), spec=specs["opt"])
    assert lv.tolist() == [1, 0, 1] and labels == ["adam", "sgd"]
    assert hparam_specs({"hparams": json.dumps(specs)}) == specs
    assert set(hparam_specs({})) >= {"optimizer", "learning_rate"}  # the Small CNN Zoo's without the attribute
    for bad, msg in (({"lr": {"type": "numerical", "markers": [0.0, 1.0], "log": True}}, "log rounding needs markers"),
                     ({"opt": {"type": "categorical", "markers": [1, 2]}}, "numerical hyperparameters only"),
                     ({"my-lr": {"type": "numerical"}}, "identifier"), ({}, "at least one")):
        with pytest.raises(ValueError, match=msg):
            check_hparam_specs(bad, "zoo.checkpoints.hparams")
