"""The zoo network: layout, flat <-> torch conversion, batched vs per-model forward."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from causalxai.zoo.network import (
    ZooCNN,
    batched_logits,
    flatten,
    n_params,
    parse_layout,
    unflatten,
    zoo_layout,
)


def test_layout_matches_the_zoo_parameter_count():
    layout = zoo_layout(1)
    sizes = layout.end_idx - layout.start_idx
    # per layer bias then kernel: 16+144, 16+2304, 16+2304, 10+160
    assert sizes.tolist() == [16, 144, 16, 2304, 16, 2304, 10, 160]
    assert n_params(layout) == 4970
    assert layout.varname.iloc[1] == "sequential/conv2d/kernel:0"
    assert n_params(zoo_layout(3)) == 4970 + 2 * 144


def test_parse_layout_rejects_inconsistent_tables():
    layout = zoo_layout(1)
    bad = layout.copy()
    bad.loc[1, "shape"] = "(3, 3, 2, 16)"
    with pytest.raises(ValueError, match="conv2d/kernel"):
        parse_layout(bad)
    gap = layout.copy()
    gap.loc[2:, ["start_idx", "end_idx"]] += 1
    with pytest.raises(ValueError, match="gap or overlap"):
        parse_layout(gap)
    with pytest.raises(ValueError, match="lacks the column"):
        parse_layout(layout.drop(columns="shape"))


def test_unflatten_transposes_tf_kernels():
    """An independent path: slice the flat row by hand and transpose with NumPy."""
    layout = zoo_layout(1)
    w = np.random.default_rng(0).normal(size=(2, 4970)).astype(np.float32)
    p = unflatten(torch.tensor(w), layout)
    k1 = w[:, 16:160].reshape(2, 3, 3, 1, 16)  # HWIO
    np.testing.assert_array_equal(p["conv1.weight"].numpy(), k1.transpose(0, 4, 3, 1, 2))
    np.testing.assert_array_equal(p["conv1.bias"].numpy(), w[:, :16])
    dk = w[:, 4810:].reshape(2, 16, 10)
    np.testing.assert_array_equal(p["dense.weight"].numpy(), dk.transpose(0, 2, 1))
    assert torch.equal(flatten(p, layout), torch.tensor(w))


def _reference_logits(row: np.ndarray, x: np.ndarray, act) -> np.ndarray:
    """Plain torch ops on kernels sliced from the flat row by hand (no causalxai code)."""
    xt = torch.tensor(x, dtype=torch.float64)
    off = 0
    for c_in in (1, 16, 16):
        b = row[off : off + 16]
        off += 16
        k = row[off : off + 9 * c_in * 16].reshape(3, 3, c_in, 16).transpose(3, 2, 0, 1)
        off += 9 * c_in * 16
        xt = act(F.conv2d(xt, torch.tensor(k, dtype=torch.float64), torch.tensor(b, dtype=torch.float64), stride=2))
    feats = xt.mean(dim=(2, 3))
    bias = row[off : off + 10]
    kernel = row[off + 10 :].reshape(16, 10)
    return (feats.numpy() @ kernel + bias)


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_zoocnn_from_flat_matches_hand_reference(activation):
    rng = np.random.default_rng(1)
    row = rng.normal(scale=0.3, size=4970)
    x = rng.normal(size=(5, 1, 28, 28))
    model = ZooCNN.from_flat(row.astype(np.float32), zoo_layout(1), activation)
    out = model(torch.tensor(x, dtype=torch.float32)).detach().numpy()
    ref = _reference_logits(row.astype(np.float32).astype(np.float64), x.astype(np.float32), getattr(torch, activation))
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-5)
    # 28 -> 13 -> 6 -> 2 with 3x3 stride 2 valid convolutions
    assert model.conv3(model.conv2(model.conv1(torch.zeros(1, 1, 28, 28)))).shape == (1, 16, 2, 2)


def test_batched_forward_equals_per_model_forward():
    rng = np.random.default_rng(2)
    m = 7
    w = torch.tensor(rng.normal(scale=0.2, size=(m, 4970)), dtype=torch.float32)
    is_tanh = torch.tensor([0, 1, 1, 0, 1, 0, 0], dtype=torch.bool)
    x = torch.tensor(rng.normal(size=(9, 1, 28, 28)), dtype=torch.float32)
    layout = zoo_layout(1)
    out = batched_logits(unflatten(w, layout), x, is_tanh)
    per_model_x = torch.tensor(rng.normal(size=(m, 4, 1, 32, 32)), dtype=torch.float32)
    out2 = batched_logits(unflatten(w, layout), per_model_x, is_tanh)
    for i in range(m):
        model = ZooCNN.from_flat(w[i], layout, "tanh" if is_tanh[i] else "relu")
        torch.testing.assert_close(out[i], model(x), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(out2[i], model(per_model_x[i]), rtol=1e-5, atol=1e-5)
    # uniform activations take the fast path and agree too
    torch.testing.assert_close(batched_logits(unflatten(w, layout), x, "relu")[3], out[3])


def test_dropout_is_per_model_and_unbiased():
    layout = zoo_layout(1)
    w = torch.tensor(np.random.default_rng(3).normal(scale=0.2, size=(2, 4970)), dtype=torch.float32)
    p = unflatten(w, layout)
    x = torch.randn(64, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    plain = batched_logits(p, x, "relu")
    g = torch.Generator().manual_seed(1)
    no_drop = batched_logits(p, x, "relu", dropout=torch.tensor([0.0, 0.5]), generator=g)
    torch.testing.assert_close(no_drop[0], plain[0])  # p = 0 keeps every unit
    assert not torch.allclose(no_drop[1], plain[1])
    with pytest.raises(ValueError, match="models"):
        batched_logits(p, torch.zeros(3, 2, 1, 28, 28), "relu")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_first_convolutions_fold_gradient_equals_autograds(dtype):
    """Input gradients of the batched forward (per model, shared or stacked inputs) through the
    fold backward of the first convolution equal plain autograd's (weights that need a gradient
    take autograd's path, so the two are compared on the same network)."""
    from causalxai.zoo import network

    torch.manual_seed(0)
    m, n = 3, 5
    params = network.unflatten(torch.randn(m, network.n_params(network.zoo_layout(1)), dtype=dtype) * 0.3,
                               network.zoo_layout(1))
    x = (torch.rand(m, n, 1, 28, 28, dtype=dtype) * 2 - 1).requires_grad_(True)
    target = torch.randint(0, 10, (m, n))

    def grad(p):
        out = torch.softmax(network.batched_logits(p, x, "tanh"), -1).gather(-1, target[..., None]).sum()
        return torch.autograd.grad(out, x)[0]

    assert network._fold_applies(network._stack_input(x, m), params["conv1.weight"], params["conv1.bias"])
    plain = {k: v.clone().requires_grad_(k == "conv1.weight") for k, v in params.items()}
    assert not network._fold_applies(network._stack_input(x, m), plain["conv1.weight"], plain["conv1.bias"])
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    np.testing.assert_allclose(grad(params).numpy(), grad(plain).numpy(), rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_shared_input_copies_give_the_stacked_paths_gradients(dtype):
    """Per-model copies of one batch given as a view (stride 0, as the attribution methods give
    them) run the first convolution once on the shared batch; their input gradients equal those
    of the same copies materialised (the grouped path), per model, and the logits too."""
    from causalxai.zoo import network

    torch.manual_seed(1)
    m, n = 4, 6
    params = network.unflatten(torch.randn(m, network.n_params(network.zoo_layout(1)), dtype=dtype) * 0.3,
                               network.zoo_layout(1))
    base = torch.rand(n, 1, 28, 28, dtype=dtype) * 2 - 1
    target = torch.randint(0, 10, (m, n))
    view = base.expand(m, *base.shape).requires_grad_(True)
    dense = base.expand(m, *base.shape).clone().requires_grad_(True)
    assert network._shared_copies(view, params["conv1.weight"], params["conv1.bias"])
    assert not network._shared_copies(dense, params["conv1.weight"], params["conv1.bias"])

    def run(x):
        logits = network.batched_logits(params, x, torch.tensor([True, False, True, False]))
        (g,) = torch.autograd.grad(torch.softmax(logits, -1).gather(-1, target[..., None]).sum(), x)
        return logits.detach(), g

    tol = 1e-12 if dtype == torch.float64 else 1e-5
    (lv, gv), (ld, gd) = run(view), run(dense)
    assert gv.shape == (m, n, 1, 28, 28)
    np.testing.assert_allclose(lv.numpy(), ld.numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(gv.numpy(), gd.numpy(), rtol=tol, atol=tol)
    # and each model's gradient is its own module's (the reference)
    for i in range(m):
        model = network.ZooCNN(1, "tanh" if i % 2 == 0 else "relu").to(dtype)
        model.load_state_dict({k: v[i] for k, v in params.items()})
        x = base.clone().requires_grad_(True)
        out = torch.softmax(model(x), -1).gather(-1, target[i][:, None]).sum()
        np.testing.assert_allclose(gv[i].numpy(), torch.autograd.grad(out, x)[0].numpy(), rtol=tol, atol=tol)
