"""causalxai.runtime: device, evaluation mode and batched prediction shared by every stage."""

import subprocess
import sys

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


# A step that normalises one block of maps after another (sort for a percentile, clip, divide:
# the streaming gather's pattern, 8 MiB a block): with
# glibc's dynamic mmap threshold the freed blocks fragment the heap and the peak grows block
# after block; with bounded_heap() it stays one block's.
_FRAGMENTING_LOOP = """
import sys
import numpy as np, torch
from causalxai.runtime import bounded_heap
took = bounded_heap() if sys.argv[1] == "bounded" else None
torch.set_num_threads(1)
def normalise(x):
    flat = x.flatten(-2)
    p = torch.sort(flat.abs(), dim=-1)[0][..., -8:-7]
    out = (torch.minimum(torch.maximum(flat, -p), p) / p).clamp_min(0)
    return torch.where((p <= 0), torch.full_like(out, float("nan")), out), (p <= 0)[..., 0]
def peak_mb():
    return int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0]) / 1024
rng = np.random.default_rng(0)
kept = []
for i in range(40):
    m, d = normalise(torch.as_tensor(rng.standard_normal((67, 2, 20, 28, 28), dtype=np.float32)))
    kept.append(d.numpy().copy())
    if i == 4:
        start = peak_mb()
print(took, peak_mb() - start)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt (Linux)")
def test_bounded_heap_keeps_a_block_loop_flat():
    growth = {}
    for mode in ("bounded", "default"):
        run = subprocess.run([sys.executable, "-c", _FRAGMENTING_LOOP, mode], capture_output=True, text=True,
                             timeout=300)
        assert run.returncode == 0, run.stderr[-2000:]
        took, grew = run.stdout.split()
        growth[mode] = float(grew)
        if mode == "bounded":
            assert took == "True"
    # 35 blocks of 8 MiB after the first five: flat with bounded_heap, ~200 MB more without it
    assert growth["bounded"] < 10, growth
    assert growth["default"] > 50, growth  # the control: the check above can fail
