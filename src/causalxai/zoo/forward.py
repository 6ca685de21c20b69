"""The forward of a chunk of zoo models, for any zoo (the predictions and explanation steps).

A ``zoo.nc`` holds its weights in one of two layouts (attribute ``weights_layout``):

* ``small_cnn_zoo`` (no attribute: the default): the Small CNN Zoo's flat layout
  (:mod:`causalxai.zoo.network`), run with grouped convolutions
  (:func:`causalxai.zoo.network.batched_forward`);
* ``state_dict``: any ``nn.Module``. ``architecture`` names its factory
  (``"package.module:function"``), ``architecture_kwargs`` (JSON) its keyword arguments,
  and ``layout`` (JSON, the columns of the Small CNN Zoo's ``layout.csv``: ``varname`` a
  state-dict key, ``start_idx``, ``end_idx``, ``shape`` in torch's order) where each
  state-dict entry lies in a weight row; ``input_shape`` (JSON) the shape of one input
  (the probe images ``(1, H, W)`` are reshaped to it: a flat ``[H·W]`` for an MLP) and
  ``n_classes``. The models of a chunk run at once with ``torch.func.stack_module_state``'s
  layout + ``torch.func.vmap`` over ``torch.func.functional_call`` of one module built by
  the factory (eval mode); where ``vmap`` fails on a module, a loop over the models
  (logged once as a warning) gives the same numbers.

Both give the contract of :func:`causalxai.zoo.network.batched_forward`:
``forward(x (N, …) or (M, N, …)) -> scores (M, N, classes)`` (``output`` ``prob`` or
``logit``), with ``last_conv`` ``(activation (M, N, K, h, w), scores)`` for Grad-CAM. A
``state_dict`` zoo's Grad-CAM layer is its attribute ``last_conv`` (a module name; the zoo
source sets it, by default the last ``nn.Conv2d``); a zoo without one (an MLP) refuses
Grad-CAM with a message. Its activation is computed in a first pass and fed back as a
leaf that replaces the layer's output in a second (a forward hook), so that the scores'
gradient with respect to it is the layer's gradient (Grad-CAM needs no input gradient).
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import sys
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
import xarray as xr
from torch import nn

from causalxai.zoo.network import OUTPUTS, ZooCNN, batched_forward

__all__ = [
    "STATE_DICT",
    "is_state_dict_zoo",
    "load_factory",
    "build_module",
    "zoo_module",
    "chunk_groups",
    "zoo_n_classes",
    "zoo_input",
    "state_dict_layout",
    "flatten_state_dict",
    "unflatten_rows",
    "zoo_forward",
    "zoo_model",
    "module_forward",
]

log = logging.getLogger(__name__)

#: ``weights_layout`` of a zoo of any architecture (state-dict entries, flat)
STATE_DICT = "state_dict"
_WARNED: set[str] = set()


def is_state_dict_zoo(zoo: xr.Dataset) -> bool:
    """True for a zoo of any architecture (``weights_layout: state_dict``), False for the Small CNN Zoo's layout."""
    return zoo.attrs.get("weights_layout", "small_cnn_zoo") == STATE_DICT


def load_factory(spec: str) -> Callable[..., nn.Module]:
    """The callable ``"package.module:function"`` names (a class or a function returning an
    ``nn.Module``), imported from ``sys.path`` or the working directory.

    Raises:
        ValueError: a malformed name, a module that does not import, or no such attribute,
            naming ``spec``.
    """
    if not isinstance(spec, str) or spec.count(":") != 1 or not all(spec.split(":")):
        raise ValueError(f"architecture {spec!r}: expected 'package.module:function'")
    mod_name, attr = spec.split(":")
    if os.getcwd() not in sys.path:  # a module next to the workflow's config (its working directory)
        sys.path.append(os.getcwd())
    try:
        module = importlib.import_module(mod_name)
    except ImportError as e:
        raise ValueError(f"architecture {spec!r}: module {mod_name!r} does not import ({e}); "
                         "put it on PYTHONPATH or install its package") from e
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"architecture {spec!r}: {mod_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ValueError(f"architecture {spec!r}: {attr!r} is not callable")
    return obj


def build_module(spec: str, kwargs: Mapping[str, Any] | None = None) -> nn.Module:
    """``factory(**kwargs)`` in eval mode, checked to be an ``nn.Module``."""
    module = load_factory(spec)(**dict(kwargs or {}))
    if not isinstance(module, nn.Module):
        raise ValueError(f"architecture {spec!r} returned a {type(module).__name__}, not a torch.nn.Module")
    return module.eval()


def zoo_module(zoo: xr.Dataset, group: str = "{}") -> nn.Module:
    """The (untrained) module of a ``state_dict`` zoo, built from its attributes with the keyword
    arguments of an architecture group (JSON, :func:`chunk_groups`) on top, eval mode."""
    kwargs = {**json.loads(zoo.attrs.get("architecture_kwargs", "{}")), **json.loads(group)}
    return build_module(zoo.attrs["architecture"], kwargs)


def chunk_groups(zoo: xr.Dataset) -> np.ndarray:
    """Per model, the key whose models may share a chunk: the Small CNN Zoo's activation
    (one grouped-convolution pass per activation); for a ``state_dict`` zoo its coordinate
    ``architecture_group``, the keyword arguments (JSON) a model adds to ``architecture_kwargs``
    (e.g. ``{"nlin": "tanh"}``: a zoo whose activation varies), ``"{}"`` for all without it."""
    if is_state_dict_zoo(zoo):
        if "architecture_group" in zoo.coords:
            return np.asarray(zoo["architecture_group"].values).astype(str)
        return np.full(zoo.sizes["model"], "{}")
    return np.asarray(zoo["activation"].values).astype(str)


def zoo_n_classes(zoo: xr.Dataset) -> int:
    """The number of classes of the zoo's output (10 for the Small CNN Zoo)."""
    return int(zoo.attrs.get("n_classes", 10))


def zoo_input(zoo: xr.Dataset, x: torch.Tensor) -> torch.Tensor:
    """Probe images ``(N, 1, H, W)`` reshaped to the zoo's ``input_shape`` (unchanged for the Small CNN Zoo).

    Raises:
        ValueError: the images do not hold the number of values one input needs.
    """
    if not is_state_dict_zoo(zoo):
        return x
    shape = tuple(int(s) for s in json.loads(zoo.attrs["input_shape"]))
    if int(np.prod(x.shape[1:])) != int(np.prod(shape)):
        raise ValueError(f"the probe images are {tuple(x.shape[1:])} but the zoo's models take inputs of shape "
                         f"{shape} (zoo attribute input_shape): use a data set and data.image_size that match")
    return x.reshape(x.shape[0], *shape)


def state_dict_layout(state: Mapping[str, torch.Tensor]) -> list[dict[str, Any]]:
    """The flat layout of a state dict: per entry (in its order) ``varname``, ``start_idx``,
    ``end_idx`` and ``shape`` (the columns of ``layout.csv``)."""
    rows, start = [], 0
    for name, t in state.items():
        end = start + int(t.numel())
        rows.append({"varname": name, "start_idx": start, "end_idx": end, "shape": str(tuple(t.shape))})
        start = end
    return rows


def flatten_state_dict(state: Mapping[str, torch.Tensor]) -> np.ndarray:
    """One flat float32 weight row of a state dict (entries in its order, each in torch's layout)."""
    return np.concatenate([t.detach().cpu().reshape(-1).to(torch.float32).numpy() for t in state.values()])


def unflatten_rows(weights: torch.Tensor, layout: list[dict[str, Any]],
                   reference: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Flat rows ``(M, n_params)`` back to ``{state-dict key: (M, *shape)}``, each entry in the
    dtype of ``reference`` (the module's own state dict) when that is not floating (e.g. a
    batch norm's ``num_batches_tracked``) and in the rows' dtype otherwise."""
    from causalxai.zoo.network import _parse_shape

    out = {}
    for e in layout:
        block = weights[:, int(e["start_idx"]):int(e["end_idx"])].reshape(weights.shape[0], *_parse_shape(e["shape"]))
        ref = reference[e["varname"]]
        out[e["varname"]] = block if ref.is_floating_point() else block.round().to(ref.dtype)
    return out


def _vmap_or_loop(fn: Callable, params: Mapping[str, torch.Tensor], args: tuple, in_dims: tuple, name: str):
    """``vmap(fn, in_dims=(0, *in_dims))(params, *args)``, or the same by a loop over the models
    where ``vmap`` does not support the module (logged once per architecture)."""
    if name not in _WARNED:
        try:
            return torch.func.vmap(fn, in_dims=(0, *in_dims), randomness="error")(params, *args)
        except (RuntimeError, NotImplementedError, ValueError) as e:
            _WARNED.add(name)
            log.warning("zoo forward: torch.func.vmap fails on %s (%s); running the models one by one (slower)",
                        name, str(e).splitlines()[0] if str(e) else type(e).__name__)
    m = next(iter(params.values())).shape[0]
    outs = [fn({k: v[i] for k, v in params.items()}, *(a[i] if d == 0 else a for a, d in zip(args, in_dims)))
            for i in range(m)]
    if isinstance(outs[0], tuple):
        return tuple(torch.stack(parts) for parts in zip(*outs))
    return torch.stack(outs)


def module_forward(
    module: nn.Module,
    params: Mapping[str, torch.Tensor],
    output: str = "prob",
    last_conv: str | None = None,
    name: str = "",
    input_dim: int = 4,
) -> Callable[[torch.Tensor], torch.Tensor | tuple[torch.Tensor, torch.Tensor]]:
    """The forward of ``M`` models of one architecture: ``module`` run with each model's state.

    Args:
        module: the architecture (eval mode, on the parameters' device and dtype).
        params: ``{state-dict key: (M, *shape)}`` (``torch.func.stack_module_state``'s layout,
            parameters and buffers together).
        output: ``"prob"`` (softmax) or ``"logit"``.
        last_conv: a module name: return ``(its output (M, N, K, h, w), scores)`` (Grad-CAM).
        name: the architecture's name in the vmap-fallback warning.
        input_dim: the dimensions of one model's input batch ``(N, …)`` (4 for images): an
            input of one more is a batch per model ``(M, N, …)``.

    Returns:
        ``x (N, …) or (M, N, …) -> scores (M, N, classes)`` (or the pair with ``last_conv``).
    """
    if output not in OUTPUTS:
        raise ValueError(f"explain.output must be 'prob' or 'logit', got {output!r}")
    name = name or type(module).__name__

    def scores(logits: torch.Tensor) -> torch.Tensor:
        return torch.softmax(logits, dim=-1) if output == "prob" else logits

    def one(p: Mapping[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(module, dict(p), (x,))

    if last_conv is None:
        def forward(x: torch.Tensor) -> torch.Tensor:
            d = 0 if x.dim() == input_dim + 1 else None
            return scores(_vmap_or_loop(one, params, (x,), (d,), name))
    else:
        layer = dict(module.named_modules()).get(last_conv)
        if layer is None:
            raise ValueError(f"grad_cam: the zoo's architecture has no module {last_conv!r} (zoo attribute last_conv)")
        slot: dict[str, Any] = {}

        def hook(_mod, _inp, out):
            if slot.get("replace") is not None:
                return slot["replace"]
            slot["seen"] = out
            return None

        def capture(p, x):
            one(p, x)
            return slot.pop("seen")

        def replaced(p, x, a):
            slot["replace"] = a
            try:
                return one(p, x)
            finally:
                slot["replace"] = None

        def forward(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            d = 0 if x.dim() == input_dim + 1 else None
            handle = layer.register_forward_hook(hook)
            try:
                with torch.no_grad():
                    act = _vmap_or_loop(capture, params, (x,), (d,), name)
                if act.dim() != 5:
                    raise ValueError(f"grad_cam: layer {last_conv!r} gives outputs of shape {tuple(act.shape[1:])}, "
                                     "not (batch, channels, h, w): declare a convolutional layer (last_conv)")
                leaf = act.detach().requires_grad_(True)
                out = _vmap_or_loop(replaced, params, (x, leaf), (d, 0), name)
            finally:
                handle.remove()
            return leaf, scores(out)

    return forward


def zoo_forward(
    rows: xr.Dataset,
    models: np.ndarray,
    output: str = "prob",
    last_conv: bool = False,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> Callable[[torch.Tensor], torch.Tensor | tuple[torch.Tensor, torch.Tensor]]:
    """The forward of the models at positions ``models`` of ``rows`` (:func:`causalxai.zoo.dataset.zoo_rows`),
    whatever the zoo's layout (module docstring); its inputs are the probe images ``(N, 1, H, W)``
    (or ``(M, N, 1, H, W)``), reshaped here to the zoo's input shape.

    Args:
        rows: a block of ``zoo.nc`` (weights, coordinates and attributes).
        models: positions in ``rows``; one chunk group (:func:`chunk_groups`).
        output: ``prob`` or ``logit``.
        last_conv: return ``(last conv layer's output (M, N, K, h, w), scores)`` for Grad-CAM.
        device, dtype: where and in which precision the models run.

    Returns:
        ``x -> scores (M, N, classes)`` (or the pair with ``last_conv``).

    Raises:
        ValueError: Grad-CAM on a ``state_dict`` zoo without a ``last_conv`` layer.
    """
    from causalxai.zoo.dataset import zoo_params

    models = np.asarray(models, dtype=np.int64)
    if not is_state_dict_zoo(rows):
        params = {k: v.to(dtype) for k, v in zoo_params(rows, models, device).items()}
        act = str(np.asarray(rows["activation"].values)[models[0]])
        return batched_forward(params, act, output, last_conv=last_conv)
    layer = rows.attrs.get("last_conv") or None
    if last_conv and layer is None:
        raise ValueError("grad_cam needs a convolutional layer, but this zoo's architecture "
                         f"({rows.attrs['architecture']}) has none declared (zoo attribute last_conv): leave "
                         "grad_cam out of explain.methods, or declare the layer (zoo.checkpoints.last_conv)")
    module = zoo_module(rows, str(chunk_groups(rows)[models[0]])).to(device=device, dtype=dtype)
    layout = json.loads(rows.attrs["layout"])
    w = torch.tensor(np.asarray(rows["weights"].isel(model=models).values), device=device, dtype=dtype)
    params = unflatten_rows(w, layout, module.state_dict())
    shape = tuple(int(s) for s in json.loads(rows.attrs["input_shape"]))
    inner = module_forward(module, params, output, layer if last_conv else None, name=rows.attrs["architecture"],
                           input_dim=len(shape) + 1)

    def forward(x: torch.Tensor):
        if x.dim() not in (4, 5):
            raise ValueError(f"input must be (batch, 1, H, W) or (models, batch, 1, H, W), got {tuple(x.shape)}")
        return inner(x.reshape(*x.shape[:-3], *shape))

    return forward


def _scores(model: nn.Module, output: str, shape: Sequence[int] | None = None) -> nn.Sequential:
    """One zoo model as the explanation step sees it, in eval mode: probe images ``(N, 1, H, W)``
    reshaped to the model's input ``shape`` (Flatten, Unflatten), its logits, and an
    ``nn.Softmax`` module when ``output`` is ``prob`` (a module, so that Captum's layer rules,
    e.g. DeepLift's, see it as the batched forward's softmax)."""
    if output not in OUTPUTS:
        raise ValueError(f"explain.output must be 'prob' or 'logit', got {output!r}")
    layers: list[nn.Module] = [] if shape is None else [nn.Flatten(), nn.Unflatten(1, tuple(int(s) for s in shape))]
    layers.append(model)
    if output == "prob":
        layers.append(nn.Softmax(dim=-1))
    return nn.Sequential(*layers).eval()


def zoo_model(
    rows: xr.Dataset,
    models: np.ndarray,
    i: int,
    output: str = "prob",
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> nn.Module:
    """Model ``models[i]`` of ``rows`` alone, as an ``nn.Module`` (eval mode) with
    :func:`zoo_forward`'s inputs and outputs (probe images in, ``prob`` or ``logit`` out): the
    per-model path of custom explanation methods, whatever the zoo's layout.

    Args:
        rows: a block of ``zoo.nc`` (:func:`causalxai.zoo.dataset.zoo_rows`).
        models: positions in ``rows`` (a chunk).
        i: which of them.
        output: ``prob`` or ``logit``.
        device, dtype: where and in which precision the model runs.
    """
    from causalxai.zoo.dataset import zoo_params

    pos = np.asarray(models, dtype=np.int64)[[i]]
    if not is_state_dict_zoo(rows):
        params = {k: v[0].to(dtype) for k, v in zoo_params(rows, pos, device).items()}
        model = ZooCNN(params["conv1.weight"].shape[1], str(np.asarray(rows["activation"].values)[pos[0]]))
        model = model.to(device=device, dtype=dtype)
        model.load_state_dict(params)
        return _scores(model, output)
    module = zoo_module(rows, str(chunk_groups(rows)[pos[0]])).to(device=device, dtype=dtype)
    w = torch.tensor(np.asarray(rows["weights"].isel(model=pos).values), device=device, dtype=dtype)
    state = {k: v[0] for k, v in unflatten_rows(w, json.loads(rows.attrs["layout"]), module.state_dict()).items()}
    module.load_state_dict(state)
    shape = tuple(int(s) for s in json.loads(rows.attrs["input_shape"]))
    return _scores(module, output, shape)
