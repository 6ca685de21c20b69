"""causalxai.runtime: device, evaluation mode and batched prediction shared by every stage."""

import pytest
import torch
from torch import nn

from causalxai.runtime import eval_mode, predict, resolve_device


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="device: 'cuda'.*'auto' or 'cpu'"):
            resolve_device("cuda")


def test_eval_mode_restores_the_flag_also_on_error():
    model = nn.Sequential(nn.Linear(3, 2), nn.Dropout(0.5))
    model.train()
    with eval_mode(model):
        assert not model.training
    assert model.training
    with pytest.raises(RuntimeError):
        with eval_mode(model):
            raise RuntimeError("boom")
    assert model.training
    model.eval()
    with eval_mode(model):
        pass
    assert not model.training


def test_predict_matches_one_forward_pass():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.Dropout(0.5)).train()
    x = torch.randn(11, 4)
    with torch.no_grad():
        ref = model.eval()(2 * x)
    model.train()
    logits = predict(model, x, batch_size=4, transform=lambda b: 2 * b)
    torch.testing.assert_close(logits, ref)
    assert model.training  # restored
    torch.testing.assert_close(predict(model, x, batch_size=5, transform=lambda b: 2 * b, output="prob"),
                               torch.softmax(ref, dim=1))
    assert torch.equal(predict(model, x, transform=lambda b: 2 * b, output="label"), ref.argmax(dim=1))
    assert predict(model, x[:0], output="label").shape == (0,)
    with pytest.raises(ValueError, match="output"):
        predict(model, x, output="scores")
