"""zoo.source modelzoos: a small zoo built here in exactly the format of Schürholt et al.'s Model
Zoos (Ray Tune trial folders: params.json, result.json, progress.csv, checkpoint_<epoch>/checkpoints),
read back and run against an independent transcription of their network (def_net.py's CNN)."""

import json
import tarfile

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from causalxai.study.explain import ExplainSettings, explain_zoo
from causalxai.study.predictions import predict_zoo
from causalxai.zoo.forward import chunk_groups, zoo_forward
from causalxai.zoo.modelzoos import load_modelzoo

HPARAMS = {"optimizer": {"key": "optim::optimizer", "type": "categorical"},
           "learning_rate": {"key": "optim::lr", "type": "numerical", "log": True},
           "activation": {"key": "model::nlin", "type": "categorical"},
           "dropout": {"key": "model::dropout", "type": "numerical"}}


class TheirCNN(nn.Module):
    """def_net.py's CNN as their code appends its layers (the reference)."""

    def __init__(self, channels_in, nlin, dropout):
        super().__init__()
        act = {"tanh": nn.Tanh, "relu": nn.ReLU}[nlin]
        self.module_list = nn.ModuleList()
        self.module_list.append(nn.Conv2d(channels_in, 8, 5))
        self.module_list.append(nn.MaxPool2d(2, 2))
        self.module_list.append(act())
        if dropout > 0:
            self.module_list.append(nn.Dropout(dropout))
        self.module_list.append(nn.Conv2d(8, 6, 5))
        self.module_list.append(nn.MaxPool2d(2, 2))
        self.module_list.append(act())
        if dropout > 0:
            self.module_list.append(nn.Dropout(dropout))
        self.module_list.append(nn.Conv2d(6, 4, 2))
        self.module_list.append(act())
        self.module_list.append(nn.Flatten())
        self.module_list.append(nn.Linear(3 * 3 * 4, 20))
        self.module_list.append(act())
        if dropout > 0:
            self.module_list.append(nn.Dropout(dropout))
        self.module_list.append(nn.Linear(20, 10))

    def forward(self, x):
        for layer in self.module_list:
            x = layer(x)
        return x


def _trial(root, i, nlin, dropout, opt, lr, epochs=(0, 1, 2), model_type="CNN"):
    """One Ray Tune trial folder of NN_tune_trainable, as their zoo generators leave it."""
    torch.manual_seed(100 + i)
    config = {"model::type": model_type, "model::channels_in": 1, "model::o_dim": 4, "model::nlin": nlin,
              "model::dropout": dropout, "model::init_type": "uniform", "model::use_bias": False,
              "optim::optimizer": opt, "optim::lr": lr, "optim::wd": 0.0, "seed": i + 1,
              "training::batchsize": 10, "training::epochs_train": 2, "training::start_epoch": 1,
              "training::output_epoch": 1, "training::val_epochs": 1, "training::idx_out": 500,
              "training::checkpoint_dir": None, "cuda": False, "dataset::dump": "/zoos/MNIST/dataset.pt"}
    folder = root / f"NN_tune_trainable_{i:05d}_{i}_seed={i + 1}_2021-09-29_10-00-{i:02d}"
    folder.mkdir(parents=True)
    (folder / "params.json").write_text(json.dumps(config, indent=2))
    model = TheirCNN(1, nlin, dropout)
    states, lines = {}, []
    for e in epochs:
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.05 * torch.randn_like(p))
        (folder / f"checkpoint_{e:06d}").mkdir()
        torch.save(model.state_dict(), folder / f"checkpoint_{e:06d}" / "checkpoints")
        torch.save({"state": {}, "param_groups": []}, folder / f"checkpoint_{e:06d}" / "optimizer")
        states[e] = {k: v.clone() for k, v in model.state_dict().items()}
        if e > 0:  # checkpoint_k goes with training_iteration k; iteration 1 is the untrained test pass
            lines.append({"train_loss": -999 if e == 1 else 1.0 / e, "train_acc": -999 if e == 1 else 0.5 + 0.01 * i,
                          "test_loss": 2.0 / e, "test_acc": 0.3 + 0.1 * e + 0.01 * i, "training_iteration": e,
                          "trial_id": f"{i:05d}", "done": False, "time_this_iter_s": 1.5, "config": config})
    (folder / "result.json").write_text("".join(json.dumps(line) + "\n" for line in lines))
    pd.DataFrame([{k: v for k, v in line.items() if k != "config"} for line in lines]).to_csv(
        folder / "progress.csv", index=False)
    return folder, states


@pytest.fixture
def zoo_archive(tmp_path):
    root = tmp_path / "zoo" / "tune_zoo_mnist_hyperparameter"
    settings = [("tanh", 0.0, "adam", 1e-3), ("relu", 0.2, "sgd", 1e-4), ("tanh", 0.2, "sgd", 1e-3),
                ("relu", 0.0, "adam", 1e-4)]
    trials = [_trial(root, i, *s) for i, s in enumerate(settings)]
    (root / "config.json").write_text(json.dumps({"model::type": "CNN"}))
    (root / "readme.md").write_text("")
    archive = tmp_path / "mnist_hyp.tar.gz"
    with tarfile.open(archive, "w:gz") as t:
        t.add(root, arcname="tune_zoo_mnist_hyperparameter")
    return archive, root, settings, trials


def test_a_model_zoo_archive_is_read_in_their_format(zoo_archive):
    archive, root, settings, trials = zoo_archive
    zoo = load_modelzoo({"path": str(archive), "hparams": HPARAMS, "epoch": None}, dataset_name="mnist")
    assert zoo.sizes["model"] == 4 and zoo.attrs["epoch"] == 2 and zoo.attrs["model_type"] == "CNN"
    assert zoo.attrs["n_params"] == 2464
    np.testing.assert_array_equal(zoo["activation"].values, [s[0] for s in settings])
    np.testing.assert_allclose(zoo["learning_rate"].values, [s[3] for s in settings])
    np.testing.assert_allclose(zoo["test_accuracy"].values, 0.5 + 0.01 * np.arange(4))
    np.testing.assert_allclose(zoo["train_accuracy"].values, 0.5 + 0.01 * np.arange(4))
    assert sorted(set(chunk_groups(zoo))) == ['{"nlin": "relu"}', '{"nlin": "tanh"}']
    assert zoo.attrs["last_conv"] == "module_list.9"  # the activation after the last convolution
    x = torch.randn(3, 1, 28, 28, dtype=torch.float64)
    for i, (nlin, dropout, *_rest) in enumerate(settings):
        ref = TheirCNN(1, nlin, dropout).double().eval()
        ref.load_state_dict(trials[i][1][2])
        ours = zoo_forward(zoo, np.array([i]), "logit", dtype=torch.float64)(x)[0]
        with torch.no_grad():
            torch.testing.assert_close(ours, ref(x), rtol=1e-12, atol=1e-12)
    # the folder itself, an earlier epoch, a few models
    first = load_modelzoo({"path": str(root), "hparams": HPARAMS, "epoch": 1, "max_models": 2})
    assert first.sizes["model"] == 2 and np.isnan(first["train_accuracy"].values).all()  # -999: not measured
    np.testing.assert_allclose(first["test_accuracy"].values, [0.4, 0.41])


def test_predictions_and_gradients_of_a_model_zoo(zoo_archive):
    archive, _, settings, trials = zoo_archive
    zoo = load_modelzoo({"path": str(archive), "hparams": HPARAMS})
    rng = np.random.default_rng(0)
    import xarray as xr

    images = xr.Dataset({"pixels": (("image", "y", "x"), rng.normal(size=(3, 28, 28)).astype(np.float32))},
                        coords={"image": np.arange(3)})
    s = ExplainSettings(device="cpu", dtype="float64", chunk_size=2)
    pred = predict_zoo(zoo, images, s)
    maps = explain_zoo(zoo, images, pred, "gradient", s, normalise=False)
    x = torch.tensor(images["pixels"].values[:, None], dtype=torch.float64)
    for i, (nlin, dropout, *_rest) in enumerate(settings):
        ref = TheirCNN(1, nlin, dropout).double().eval()
        ref.load_state_dict(trials[i][1][2])
        xi = x.clone().requires_grad_(True)
        p = torch.softmax(ref(xi), -1)
        np.testing.assert_allclose(pred["prob"].values[i], p.detach().numpy(), rtol=1e-6, atol=1e-8)
        t = torch.tensor(pred["target"].values[i])
        (g,) = torch.autograd.grad(p.gather(-1, t[:, None]).sum(), xi)
        np.testing.assert_allclose(maps["attribution"].values[i, 0], g[:, 0].numpy(), rtol=1e-6, atol=1e-10)


def test_bad_model_zoos_are_refused_naming_the_folder(zoo_archive, tmp_path):
    _, root, *_ = zoo_archive
    cfg = {"path": str(root), "hparams": HPARAMS}
    with pytest.raises(ValueError, match="no checkpoint_000007/checkpoints"):
        load_modelzoo({**cfg, "epoch": 7})
    with pytest.raises(ValueError, match="no line of training_iteration 0"):
        load_modelzoo({**cfg, "epoch": 0})
    with pytest.raises(ValueError, match=r"params.json lacks the key\(s\) \['optim::momentum'\]"):
        load_modelzoo({**cfg, "hparams": {**HPARAMS, "momentum": {"key": "optim::momentum", "type": "numerical"}}})
    folder, _ = _trial(root, 8, "tanh", 0.0, "adam", 1e-3)
    torch.save(nn.Linear(3, 2).state_dict(), folder / "checkpoint_000002" / "checkpoints")
    with pytest.raises(ValueError, match=r"NN_tune_trainable_00008.*does not fit the zoo's network \(CNN\)"):
        load_modelzoo(cfg)
    torch.save(TheirCNN(1, "tanh", 0.0).state_dict(), folder / "checkpoint_000002" / "checkpoints")
    _trial(root, 9, "tanh", 0.0, "adam", 1e-3, model_type="CNN3")  # another network in the same zoo
    with pytest.raises(ValueError, match="NN_tune_trainable_00009.* is a CNN3 .*one zoo holds one network"):
        load_modelzoo(cfg)
    with pytest.raises(FileNotFoundError, match="zoo.modelzoos.path"):
        load_modelzoo({**cfg, "path": str(tmp_path / "nowhere")})
