"""causalxai.runtime: device, evaluation mode and batched prediction shared by every stage."""

import ctypes
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


# glibc's malloc, free and mallinfo2 for the child scripts below
_LIBC = """
libc = ctypes.CDLL("libc.so.6")
class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]
libc.mallinfo2.restype = MallInfo2
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
"""

# glibc's dynamic mmap threshold, the cause of the fragmentation: an 8 MiB block, freed, raises
# the threshold, so the next 8 MiB block comes from the heap; with bounded_heap() it is mapped again
_SECOND_BLOCK = """
import ctypes, sys
from causalxai.runtime import bounded_heap
took = bounded_heap() if sys.argv[1] == "bounded" else None
""" + _LIBC + """size = 8 << 20
libc.free(libc.malloc(size))
mapped_before = libc.mallinfo2().hblkhd
block = libc.malloc(size)
print(took, libc.mallinfo2().hblkhd - mapped_before >= size)
libc.free(block)
"""

# A step that normalises one block of maps after another (sort for a percentile, clip, divide:
# the streaming gather's pattern, 8 MiB a block): with bounded_heap() the peak stays one block's
# (without it, it grew by ~230 MB over these 35 blocks here, though not on every machine or load)
_BLOCK_LOOP = """
import numpy as np, torch
from causalxai.runtime import bounded_heap
took = bounded_heap()
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


def _child(code: str, *args: str) -> list[str]:
    run = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    return run.stdout.split()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt (Linux)")
def test_bounded_heap_maps_large_blocks_afresh():
    try:
        ctypes.CDLL("libc.so.6").mallinfo2
    except (OSError, AttributeError):
        pytest.skip("glibc < 2.33 (no mallinfo2)")
    assert _child(_SECOND_BLOCK, "bounded") == ["True", "True"]
    assert _child(_SECOND_BLOCK, "default") == ["None", "False"]  # the control: glibc's own behaviour


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt (Linux)")
def test_bounded_heap_keeps_a_block_loop_flat():
    took, grew = _child(_BLOCK_LOOP)
    assert took == "True"
    assert float(grew) < 10, grew  # 35 blocks of 8 MiB after the first five


# fast_heap(): a 4 MiB block comes from the heap from the first pass on (a fresh glibc maps it: its
# threshold starts at 128 KiB), and once freed it stays in the process for the next pass
_FIRST_BLOCK = """
import ctypes, sys
from causalxai.runtime import fast_heap
took = fast_heap() if sys.argv[1] == "fast" else None
""" + _LIBC + """size = 4 << 20
mapped_before = libc.mallinfo2().hblkhd
block = libc.malloc(size)
mapped = libc.mallinfo2().hblkhd - mapped_before >= size
libc.free(block)
print(took, mapped, libc.mallinfo2().fordblks >= size)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt (Linux)")
def test_fast_heap_keeps_medium_blocks_in_the_heap_from_the_start():
    try:
        ctypes.CDLL("libc.so.6").mallinfo2
    except (OSError, AttributeError):
        pytest.skip("glibc < 2.33 (no mallinfo2)")
    assert _child(_FIRST_BLOCK, "fast") == ["True", "False", "True"]
    assert _child(_FIRST_BLOCK, "default") == ["None", "True", "False"]  # the control: glibc maps it, then unmaps it


def test_adam_multi_tensor_update_equals_the_per_tensor_loop_bit_for_bit():
    """runtime.adam (foreach on the CPU too) trains a small network to the very same weights as
    torch's per-tensor Adam loop (its CPU default), so the faster update changes no result."""
    import torch
    from torch import nn

    from causalxai.runtime import adam

    def train(make_opt):
        torch.manual_seed(0)
        net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 10))
        opt = make_opt(net.parameters())
        g = torch.Generator().manual_seed(1)
        for _ in range(25):
            x, y = torch.randn(16, 1, 8, 8, generator=g), torch.randint(0, 10, (16,), generator=g)
            opt.zero_grad()
            nn.functional.cross_entropy(net(x), y).backward()
            opt.step()
        return [p.detach().clone() for p in net.parameters()]

    fast = train(lambda p: adam(p, lr=1e-2))
    loop = train(lambda p: torch.optim.Adam(p, lr=1e-2, foreach=False))
    assert all(torch.equal(a, b) for a, b in zip(fast, loop))
    assert not torch.equal(fast[0], train(lambda p: torch.optim.SGD(p, lr=1e-2))[0])  # the check can fail


def test_chunk_map_keeps_the_order_runs_chunks_on_one_thread_and_restores_the_thread_count():
    import threading

    import torch

    from causalxai.runtime import chunk_map

    before = torch.get_num_threads()
    seen = []

    def work(i):
        seen.append((threading.get_ident(), torch.get_num_threads()))
        return i * i

    try:
        torch.set_num_threads(2)
        assert list(chunk_map(work, range(9))) == [i * i for i in range(9)]
        assert {t for _, t in seen} == {1}  # one intra-op thread per chunk
        assert torch.get_num_threads() == 2
        seen.clear()
        assert list(chunk_map(work, range(3), parallel=False)) == [0, 1, 4]
        assert {t for _, t in seen} == {2} and {i for i, _ in seen} == {threading.get_ident()}

        def boom(i):
            if i == 4:
                raise ValueError("chunk 4")
            return i

        with pytest.raises(ValueError, match="chunk 4"):
            list(chunk_map(boom, range(8)))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_process_map_keeps_the_order_and_runs_unpicklable_work_here(caplog):
    import math

    import torch

    from causalxai.runtime import process_map

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert list(process_map(math.factorial, range(7))) == [math.factorial(i) for i in range(7)]
        assert torch.get_num_threads() == 2
        with caplog.at_level("WARNING"):
            assert list(process_map(lambda i: (i, torch.get_num_threads()), range(3))) == [(0, 1), (1, 1), (2, 1)]
        assert "cannot be sent to worker processes" in caplog.text
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def _offset_and_start(shared, item):
    """A process_map worker of the test below: the shared offset plus the item, and when it started."""
    import time

    start = time.monotonic()
    time.sleep(0.2)
    return shared + item, start


def test_process_map_sends_shared_data_once_and_starts_the_dearest_first():
    import torch

    from causalxai.runtime import process_map

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        out = list(process_map(_offset_and_start, range(6), shared=100, cost=[0, 1, 2, 3, 4, 5]))
        assert [v for v, _ in out] == [100, 101, 102, 103, 104, 105]  # in the items' order
        starts = [t for _, t in out]
        assert max(starts[4], starts[5]) < min(starts[:2])  # the two dearest ran first, the cheapest last
        torch.set_num_threads(1)  # here, one after another: the same results
        assert [v for v, _ in process_map(_offset_and_start, range(3), shared=7)] == [7, 8, 9]
    finally:
        torch.set_num_threads(before)


def test_process_map_from_a_script_without_a_main_guard_runs_the_script_once(tmp_path):
    """A workflow script has no ``if __name__ == "__main__"``: spawned workers must not run it again."""
    import subprocess
    import sys

    script = tmp_path / "job.py"
    marks = tmp_path / "marks.txt"
    script.write_text(
        "import math, sys\nimport torch\nfrom causalxai.runtime import process_map\n"
        "open(sys.argv[1], 'a').write('ran\\n')\ntorch.set_num_threads(2)\n"
        "print(list(process_map(math.factorial, range(5))))\n")
    res = subprocess.run([sys.executable, str(script), str(marks)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip() == "[1, 1, 2, 6, 24]"
    assert marks.read_text() == "ran\n"
