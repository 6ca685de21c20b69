"""TRACER's classifier: the modified AlexNet (paper 004 Table 2), layer selection, training."""

from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch import nn

from causalxai.tracer.model import (
    alexnet28,
    evaluate_classifier,
    layer_table,
    observed_layers,
    train_classifier,
)
from causalxai.tracer.settings import ClassifierSettings

TABLE2_TOTAL = 11_696_202  # paper 004 Table 2, "Total Parameters" of the baseline


@pytest.fixture(scope="module")
def alexnet():
    torch.manual_seed(0)
    return alexnet28()


def test_alexnet_parameter_count_and_forward(alexnet):
    n = sum(p.numel() for p in alexnet.parameters())
    assert abs(n - 11.7e6) / 11.7e6 < 0.02
    assert n == TABLE2_TOTAL
    alexnet.eval()
    with torch.no_grad():
        assert alexnet(torch.rand(2, 1, 28, 28)).shape == (2, 10)


def test_alexnet_other_sizes():
    m = alexnet28(in_channels=3, n_classes=7, image_size=32)
    with torch.no_grad():
        assert m.eval()(torch.rand(2, 3, 32, 32)).shape == (2, 7)
    with pytest.raises(ValueError, match="too small"):
        alexnet28(image_size=4)


def test_layer_table_matches_table2(alexnet):
    alexnet.train()
    df = layer_table(alexnet, (1, 28, 28))
    assert len(df) == 20
    assert df.attrs["total_params"] == TABLE2_TOTAL == df.params.sum()
    shapes = dict(zip(df.name, df.output_shape))
    assert shapes["conv1"] == (32, 26, 26)
    assert shapes["conv2"] == (64, 26, 26)
    assert shapes["pool1"] == (64, 13, 13)
    assert shapes["conv3"] == (96, 13, 13)
    assert shapes["conv5"] == (32, 13, 13)
    assert shapes["pool2"] == (32, 12, 12)
    assert shapes["drop1"] == (4608,)
    assert shapes["fc1"] == (2048,) and shapes["fc2"] == (1024,) and shapes["fc3"] == (10,)
    assert df.type.tolist().count("Conv2d") == 5 and df.type.tolist().count("Linear") == 3
    assert dict(zip(df.name, df.params))["fc1"] == 4608 * 2048 + 2048
    assert alexnet.training  # the probe restored the training flag
    sub = layer_table(alexnet, (1, 28, 28), layers="Linear")
    assert sub.name.tolist() == ["fc1", "fc2", "fc3"]


def test_observed_layers_by_keyword_type_and_name(alexnet):
    assert observed_layers(alexnet)[:3] == ["conv1", "relu1", "conv2"]
    assert observed_layers(alexnet)[-1] == "fc3"
    assert observed_layers(alexnet, "parametric") == ["conv1", "conv2", "conv3", "conv4", "conv5", "fc1", "fc2", "fc3"]
    assert observed_layers(alexnet, ["Conv2d", "fc3"]) == ["conv1", "conv2", "conv3", "conv4", "conv5", "fc3"]
    assert observed_layers(alexnet, nn.MaxPool2d) == ["pool1", "pool2"]
    # model order, not the order asked in
    assert observed_layers(alexnet, ["fc1", "conv2"]) == ["conv2", "fc1"]
    with pytest.raises(ValueError, match="matches no module"):
        observed_layers(alexnet, "Conv3d")
    with pytest.raises(ValueError, match="empty"):
        observed_layers(alexnet, [])


class _Reordered(nn.Module):
    """Registers its layers in another order than forward runs them."""

    def __init__(self):
        super().__init__()
        self.head = nn.Linear(4, 2)
        self.body = nn.Sequential(OrderedDict(lin=nn.Linear(3, 4), act=nn.ReLU()))
        self.unused = nn.Linear(2, 2)

    def forward(self, x):
        return self.head(self.body(x))


def test_observed_layers_execution_order_for_non_sequential_models():
    m = _Reordered()
    assert observed_layers(m) == ["head", "body.lin", "body.act", "unused"]  # registration order
    ordered = observed_layers(m, example_input=torch.zeros(1, 3))
    assert ordered == ["body.lin", "body.act", "head"]
    assert observed_layers(m, ["body"], example_input=torch.zeros(1, 3)) == ["body"]
    assert all(not mod._forward_hooks for mod in m.modules())


def _blobs(n, seed):
    g = np.random.default_rng(seed)
    y = g.integers(0, 2, n)
    x = g.normal(size=(n, 4)).astype(np.float32) * 0.5
    x[:, 0] += np.where(y == 1, 2.0, -2.0)
    return x, y


def _tiny(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(OrderedDict(fc1=nn.Linear(4, 16), relu1=nn.ReLU(), drop=nn.Dropout(0.2), fc2=nn.Linear(16, 2)))


def test_training_improves_accuracy_and_is_deterministic():
    xtr, ytr = _blobs(256, 1)
    xte, yte = _blobs(128, 2)
    runs = []
    for _ in range(2):
        model, hist = train_classifier(_tiny(), xtr, ytr, xte, yte, ClassifierSettings(epochs=5, batch_size=32, seed=3),
                                       device="cpu")
        runs.append((model, hist))
    (m1, h1), (m2, h2) = runs
    assert h1["final_test_accuracy"] >= 0.95
    assert h1["final_test_accuracy"] > h1["initial_test_accuracy"]
    assert h1["train_loss"][-1] < h1["train_loss"][0]
    assert len(h1["test_accuracy"]) == 5 and h1["epoch"] == [1, 2, 3, 4, 5]
    assert h1 == h2
    for (k, a), b in zip(m1.state_dict().items(), m2.state_dict().values()):
        assert torch.equal(a, b), k
    assert not m1.training
    loss, acc = evaluate_classifier(m1, xte, yte, device="cpu")
    assert acc == h1["final_test_accuracy"] and loss == pytest.approx(h1["test_loss"][-1])
    # another seed shuffles differently
    m3, _ = train_classifier(_tiny(), xtr, ytr, xte, yte, ClassifierSettings(epochs=1, batch_size=32, seed=4),
                             device="cpu")
    m4, _ = train_classifier(_tiny(), xtr, ytr, xte, yte, ClassifierSettings(epochs=1, batch_size=32, seed=3),
                             device="cpu")
    assert not torch.equal(m3.fc1.weight, m4.fc1.weight)


def test_training_leaves_the_callers_rng_alone():
    xtr, ytr = _blobs(64, 1)
    torch.manual_seed(123)
    expected = torch.rand(3)
    model = _tiny()
    torch.manual_seed(123)
    train_classifier(model, xtr, ytr, xtr, ytr, ClassifierSettings(epochs=1, batch_size=16, seed=0), device="cpu")
    assert torch.equal(torch.rand(3), expected)


def test_training_rejects_mismatched_data():
    with pytest.raises(ValueError, match="labels"):
        train_classifier(_tiny(), np.zeros((4, 4)), np.zeros(3), np.zeros((1, 4)), np.zeros(1),
                         ClassifierSettings(epochs=1, batch_size=2, seed=0), device="cpu")
