"""The target model: built from its config name, trained, saved and loaded safely."""

import numpy as np
import pytest
import torch
import xarray as xr
from torch import nn

from causalxai.tracer import target_model as target
from causalxai.tracer.settings import ClassifierSettings
from causalxai.tracer.target_model import (
    build_classifier,
    load_target_model,
    save_target_model,
    train_target_model,
)


def tiny(in_channels=1, n_classes=10, image_size=28):
    return nn.Sequential(nn.Conv2d(in_channels, 4, 3, stride=2), nn.ReLU(), nn.Flatten(),
                         nn.Linear(4 * 13 * 13, n_classes))


@pytest.fixture()
def dataset():
    rng = np.random.default_rng(0)
    n = 60
    label = np.arange(n) % 10
    img = rng.uniform(-1, 1, size=(n, 28, 28)).astype(np.float32)
    img[np.arange(n), label, label] = 1.0  # a learnable cue
    return xr.Dataset(
        {"image": (("sample", "y", "x"), img), "label": ("sample", label)},
        coords={"split": ("sample", np.where(np.arange(n) < 40, "train", "test"))},
        attrs={"dataset": "toy", "n_classes": 10},
    )


def test_names_resolve_to_architectures(monkeypatch):
    assert sum(p.numel() for p in build_classifier("alexnet28").parameters()) == 11_696_202
    via_path = build_classifier("causalxai.tracer.model:alexnet28")
    assert sum(p.numel() for p in via_path.parameters()) == 11_696_202
    for bad, msg in [("vgg", "unknown"), ("no_such_pkg.mod:f", "cannot import"),
                     ("causalxai.tracer.model:nope", "no callable")]:
        with pytest.raises(ValueError, match="tracer.model.architecture"):
            build_classifier(bad)


def test_train_save_load(dataset, tmp_path, monkeypatch):
    monkeypatch.setitem(target.BUILTIN, "tiny", tiny)
    model, kwargs, ds = train_target_model(
        dataset, ClassifierSettings(architecture="tiny", epochs=3, batch_size=8, seed=1), device="cpu"
    )
    assert ds.sizes["epoch"] == 3 and 0 <= float(ds["test_accuracy"]) <= 1
    assert int(ds["n_params"]) == sum(p.numel() for p in model.parameters())
    assert list(ds["layer"].values) == ["0", "1", "2", "3"]
    assert ds["output_shape"].values.tolist()[0] == "4x13x13"
    # deterministic: same seed, same weights
    again, _, _ = train_target_model(dataset, ClassifierSettings(architecture="tiny", epochs=3, batch_size=8, seed=1),
                                     device="cpu")
    for a, b in zip(model.parameters(), again.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    path = tmp_path / "m.pt"
    save_target_model(model, "tiny", kwargs, path)
    loaded = load_target_model(path)
    x = torch.tensor(dataset["image"].values[:5, None])
    torch.testing.assert_close(loaded(x), model(x))


def test_a_diverged_training_is_refused(dataset, monkeypatch):
    """lr far too high: NaN weights; refused naming tracer.model.lr (issue 17)."""
    from causalxai.checks import DegenerateResultError

    monkeypatch.setitem(target.BUILTIN, "tiny", tiny)
    with pytest.raises(DegenerateResultError, match=r"target_model: the training loss of tiny is not finite at the "
                                                    r"last epoch .*tracer.model.lr: 1e\+3"):
        train_target_model(dataset, ClassifierSettings(architecture="tiny", epochs=2, batch_size=8, lr=1e37, seed=1),
                           device="cpu")


def test_bad_checkpoints_are_refused(tmp_path, monkeypatch):
    monkeypatch.setitem(target.BUILTIN, "tiny", tiny)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="junk.pt"):
        load_target_model(junk)
    wrong = tmp_path / "wrong.pt"
    torch.save({"architecture": "tiny", "kwargs": {}, "state_dict": {"0.weight": torch.zeros(1)}}, wrong)
    with pytest.raises(ValueError, match="do not fit"):
        load_target_model(wrong)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    evil = tmp_path / "evil.pt"
    torch.save({"architecture": "tiny", "kwargs": {}, "state_dict": Evil()}, evil)
    with pytest.raises(ValueError, match="evil.pt"):
        load_target_model(evil)  # weights_only refuses to unpickle arbitrary objects


def test_trained_weights_are_loaded_not_trained(dataset, tmp_path, monkeypatch):
    """tracer.model.weights: a state dict of the architecture is loaded as is (no training); its
    accuracies are those of the loaded weights, computed independently here."""
    monkeypatch.setitem(target.BUILTIN, "tiny", tiny)
    trained, kwargs, _ = train_target_model(
        dataset, ClassifierSettings(architecture="tiny", epochs=3, batch_size=8, seed=1), device="cpu")
    path = tmp_path / "mine.pt"
    torch.save(trained.state_dict(), path)
    model, got_kwargs, ds = target.load_trained_target(dataset, ClassifierSettings(architecture="tiny", seed=5), path)
    assert got_kwargs == kwargs and ds.sizes["epoch"] == 0 and ds.attrs["weights"] == str(path)
    for (name, a), b in zip(trained.state_dict().items(), model.state_dict().values()):
        assert torch.equal(a, b), name
    test = dataset["split"].values == "test"
    x = torch.tensor(dataset["image"].values[test][:, None])
    with torch.no_grad():
        expected = float((trained.eval()(x).argmax(1).numpy() == dataset["label"].values[test]).mean())
    assert float(ds["test_accuracy"]) == pytest.approx(expected)
    # the step's own checkpoint (a dict holding state_dict) loads too
    save_target_model(trained, "tiny", kwargs, tmp_path / "ckpt.pt")
    again, _, _ = target.load_trained_target(dataset, ClassifierSettings(architecture="tiny"), tmp_path / "ckpt.pt")
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), model.state_dict().values()))


def test_weights_of_another_architecture_are_refused_naming_file_and_entries(dataset, tmp_path, monkeypatch):
    monkeypatch.setitem(target.BUILTIN, "tiny", tiny)
    other = nn.Sequential(nn.Conv2d(1, 8, 3, stride=2), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 13 * 13, 10))
    path = tmp_path / "other.pt"
    torch.save(other.state_dict(), path)
    with pytest.raises(ValueError, match=r"tracer.model.weights: .*other.pt does not fit tracer.model.architecture "
                                         r"'tiny'.*other shapes: 0.weight \(8, 1, 3, 3\) \(needs \(4, 1, 3, 3\)\)"):
        target.load_trained_target(dataset, ClassifierSettings(architecture="tiny"), path)
    torch.save({"fc.weight": torch.zeros(2)}, path)
    with pytest.raises(ValueError, match=r"missing: 0.weight.*unexpected: fc.weight"):
        target.load_trained_target(dataset, ClassifierSettings(architecture="tiny"), path)
    torch.save([1, 2], path)
    with pytest.raises(ValueError, match="holds a list, not a state dict"):
        target.load_trained_target(dataset, ClassifierSettings(architecture="tiny"), path)
    path.write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="is not a readable state dict"):
        target.load_trained_target(dataset, ClassifierSettings(architecture="tiny"), path)
    with pytest.raises(FileNotFoundError, match="tracer.model.weights: .*missing.pt does not exist"):
        target.load_trained_target(dataset, ClassifierSettings(architecture="tiny"), tmp_path / "missing.pt")
