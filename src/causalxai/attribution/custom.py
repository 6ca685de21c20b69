"""Custom explanation methods: any Captum attribution class by name, or a user function.

Both studies' method lists (``explain.methods``, ``tracer.reliability.methods``) take, besides
their built-in names, entries of two more kinds (paper 000 §5: the framework "can also be used
to drive the development of new methods by providing a quantitative metric"):

* a **Captum class** by dotted name, ``captum.attr.InputXGradient``: built as
  ``Class(forward, **init)`` and called as ``.attribute(inputs, target=target, **attribute)``;
* a **user function** ``package.module:function`` called as
  ``function(forward, inputs, target, **attribute) -> attributions`` with ``forward`` a
  one-model forward ``(N, C, H, W) -> (N, classes)`` (an ``nn.Module`` in the per-model path,
  so a function may use hooks), ``inputs (N, C, H, W)``, ``target (N,)``; it returns
  attributions of the inputs' shape (or ``(N, H, W)``).

An entry is a string (the name; a built-in or the defaults of a custom method) or a mapping
``{name, label, init, attribute, batched}`` (:func:`method_spec`). ``label`` names the method
in every output (``explanations/<label>.nc``, the ``method`` coordinate); by default the
class's name in snake case (``InputXGradient`` -> ``input_x_gradient``; ``captum_`` before a
built-in's name: ``captum_integrated_gradients``) or the function's name.

**Many models at once** (the zoo study). :func:`chunk_attributions` explains a chunk of ``M``
models through their batched forward ``forward(x (M, N, C, H, W)) -> (M, N, classes)`` when the
method only needs that forward and its gradients: the ``M × N`` (model, image) pairs are laid out
as the rows of one batch (:func:`rows_forward`), which the method sees as one model's forward.
Row ``m·N + n`` depends on model ``m``'s copy of image ``n`` only, so a method that treats rows
independently (gradients, ``inputs × gradients``, IG's paths, ablations) gets every model's own
maps. Whether it does is **tested, not assumed** (``batched: auto``, the default): on every chunk
the first and the last model are also explained alone (their ``nn.Module``) and the batched maps
are used only when those models' maps agree (within :data:`BATCH_RTOL` of the map's largest
magnitude; two models, so a method scaling by the chunk's largest map is caught whichever model
holds it); otherwise, and for Captum classes built on a module (``DeepLift``,
``GuidedBackprop``, ``LRP``: they hook the model's layers), the chunk runs model by model with a
progress log and a warning about speed. ``batched: true`` skips the test (declared: the method
treats rows independently; needed for a method drawing random numbers, whose draws differ
between the two layouts), ``batched: false`` always runs per model. Random draws are
seeded (``torch`` RNG forked and seeded with the config's seed before every call).
"""

from __future__ import annotations

import importlib
import inspect
import logging
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from causalxai.progress import Progress

if TYPE_CHECKING:  # torch is imported where a method runs: parsing the entries (the workflow) does without it
    import torch
    from torch import nn

__all__ = [
    "MethodSpec",
    "method_spec",
    "method_specs",
    "resolve",
    "check_methods",
    "custom_attribute",
    "rows_forward",
    "chunk_attributions",
    "BATCH_RTOL",
    "BUILTINS",
]

log = logging.getLogger(__name__)

#: the built-in methods of each list (the entries that name no custom method)
BUILTINS: dict[str, tuple[str, ...]] = {
    "explain.methods": ("gradient", "smoothgrad", "integrated_gradients", "grad_cam"),
    "tracer.reliability.methods": ("gradient", "smoothgrad", "integrated_gradients", "grad_cam", "lime",
                                   "kernel_shap", "lrp", "occlusion", "random_foreground"),
}
#: a batched map agrees with the per-model one within this share of the latter's max |value|
BATCH_RTOL = 1e-3
#: labels no method may take: the effects step's Identity reference, TRACER and the prediction "Y"
RESERVED = ("identity", "tracer", "y")
_LABEL = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_ENTRY_KEYS = ("name", "label", "init", "attribute", "batched")
_CAPTUM = "captum.attr."
_FUNCTION = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
_warned: set[str] = set()


@dataclass(frozen=True)
class MethodSpec:
    """One entry of a method list, parsed (not yet imported: :func:`resolve` does that).

    Attributes:
        label: the method's name in every output (a safe file name).
        name: the built-in name, ``captum.attr.<Class>`` or ``package.module:function``.
        kind: ``builtin``, ``captum`` or ``function``.
        init: keyword arguments of the Captum class's constructor.
        attribute: keyword arguments of ``attribute`` (Captum) or of the function.
        batched: ``auto`` (tested per chunk), ``True`` (declared) or ``False`` (per model).
    """

    label: str
    name: str
    kind: str
    init: Mapping[str, Any] = field(default_factory=dict)
    attribute: Mapping[str, Any] = field(default_factory=dict)
    batched: bool | str = "auto"

    def as_params(self) -> dict[str, Any]:
        """What a rule's params carry of the method (everything that changes its maps)."""
        return {"name": self.name, "init": dict(self.init), "attribute": dict(self.attribute),
                "batched": self.batched}


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


def method_spec(entry: str | Mapping[str, Any], key: str, builtins: Sequence[str]) -> MethodSpec:
    """Parse one entry of ``key`` (module docstring); no import.

    Args:
        entry: a name, or ``{name, label, init, attribute, batched}``.
        key: the entry's config key (``explain.methods[2]``), named in errors.
        builtins: the list's built-in names.

    Raises:
        ValueError: naming ``key``, what is wrong and the fix.
    """
    if isinstance(entry, str):
        entry = {"name": entry}
    if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str):
        raise ValueError(f"{key}: {entry!r} is not a method: give a name (a built-in, captum.attr.<Class> or "
                         "package.module:function) or a mapping with a 'name'")
    unknown = sorted(set(entry) - set(_ENTRY_KEYS))
    if unknown:
        raise ValueError(f"{key}: unknown key(s) {unknown}; a method entry takes {list(_ENTRY_KEYS)}")
    name = entry["name"].strip()
    if name in builtins:
        if set(entry) - {"name"}:
            raise ValueError(f"{key}: the built-in method {name!r} takes no label, init, attribute or batched "
                             "(its settings have their own keys)")
        return MethodSpec(name, name, "builtin")
    if name.startswith(_CAPTUM) and name[len(_CAPTUM):].isidentifier():
        kind, default = "captum", _snake(name[len(_CAPTUM):])
    elif _FUNCTION.match(name):
        kind, default = "function", name.rpartition(":")[2]
    else:
        raise ValueError(f"{key}: unknown method {name!r}: use one of {list(builtins)}, a Captum class "
                         "'captum.attr.<Class>' (e.g. captum.attr.InputXGradient) or a function "
                         "'package.module:function'")
    for part in ("init", "attribute"):
        if not isinstance(entry.get(part, {}), Mapping):
            raise ValueError(f"{key} ({name}): {part} must be a mapping of keyword arguments, got {entry[part]!r}")
    if kind == "function" and entry.get("init"):
        raise ValueError(f"{key} ({name}): a function takes no init; give its keyword arguments as attribute")
    batched = entry.get("batched", "auto")
    if batched not in ("auto", True, False):
        raise ValueError(f"{key} ({name}): batched must be auto, true or false, got {batched!r}")
    if default in builtins or default in RESERVED:  # captum.attr.IntegratedGradients: not the built-in's label
        default = f"{kind}_{default}"
    label = str(entry.get("label", default))
    if not _LABEL.match(label):
        raise ValueError(f"{key} ({name}): label {label!r} is not a safe file name (explanations/<label>.nc): use "
                         "letters, digits and underscores, starting with a letter")
    if label in builtins or label.lower() in RESERVED:
        raise ValueError(f"{key} ({name}): label {label!r} is taken (a built-in method or {list(RESERVED)}); "
                         "give the entry another label")
    return MethodSpec(label, name, kind, dict(entry.get("init", {})), dict(entry.get("attribute", {})), batched)


def method_specs(entries: Sequence[str | Mapping[str, Any]], key: str, builtins: Sequence[str]) -> list[MethodSpec]:
    """Every entry of ``key`` parsed (:func:`method_spec`); labels checked unique. No import."""
    specs = [method_spec(e, f"{key}[{i}]", builtins) for i, e in enumerate(entries)]
    seen: dict[str, int] = {}
    for i, s in enumerate(specs):
        if s.label in seen:
            raise ValueError(f"{key}[{i}] ({s.name}): label {s.label!r} is already used by {key}[{seen[s.label]}]; "
                             "give one of them another label")
        seen[s.label] = i
    return specs


def _needs_module(cls: type) -> bool:
    """A Captum class built on a model (it hooks its layers), not on a forward function."""
    return next(iter(list(inspect.signature(cls.__init__).parameters)[1:]), "") == "model"


def _check_kwargs(fn: Callable, kwargs: Mapping[str, Any], skip: int, what: str, forbidden: Sequence[str]) -> None:
    params = list(inspect.signature(fn).parameters.values())[skip:]
    bad = sorted(set(kwargs) & set(forbidden))
    if bad:
        raise ValueError(f"{what}: {bad} are given by the workflow; leave them out")
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return
    names = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    unknown = sorted(set(kwargs) - names)
    if unknown:
        raise ValueError(f"{what}: no keyword argument(s) {unknown}; it takes {sorted(names)}")
    required = [p.name for p in params if p.default is p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD,
                p.KEYWORD_ONLY) and p.name not in kwargs and p.name not in forbidden]
    if required:
        raise ValueError(f"{what}: required argument(s) {required} not given")


def resolve(spec: MethodSpec, key: str = "") -> Callable:
    """Import a custom method's class or function and check its signature against the entry.

    Returns:
        The Captum class or the function.

    Raises:
        ValueError: naming ``key`` (the entry's config key), the name and the fix.
    """
    where = f"{key} ({spec.name})" if key else spec.name
    if spec.kind == "captum":
        import captum.attr

        cls = getattr(captum.attr, spec.name[len(_CAPTUM):], None)
        if not (isinstance(cls, type) and issubclass(cls, captum.attr.Attribution)):
            raise ValueError(f"{where}: captum.attr has no attribution class {spec.name[len(_CAPTUM):]!r}; "
                             "check the spelling against Captum's API (e.g. captum.attr.InputXGradient, "
                             "captum.attr.Saliency, captum.attr.DeepLift)")
        first = next(iter(list(inspect.signature(cls.__init__).parameters)[1:]), "")
        if first not in ("forward_func", "model"):
            raise ValueError(f"{where}: {cls.__name__} is built on {first!r}, not on a model or forward function "
                             "(a layer or wrapper method); use a method built on the model")
        _check_kwargs(cls.__init__, spec.init, 2, f"{where} init", ())
        _check_kwargs(cls.attribute, spec.attribute, 2, f"{where} attribute", ("target",))
        return cls
    module_name, _, attr = spec.name.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"{where}: cannot import {module_name!r} ({exc}); install it or put its folder on "
                         "PYTHONPATH") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ValueError(f"{where}: module {module_name!r} has no function {attr!r}")
    params = list(inspect.signature(fn).parameters.values())
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(positional) < 3 and not any(p.kind is p.VAR_POSITIONAL for p in params):
        raise ValueError(f"{where}: the function must take (forward, inputs, target) and return attributions; "
                         f"it takes ({', '.join(p.name for p in params)})")
    _check_kwargs(fn, spec.attribute, 3, f"{where} attribute", ())
    return fn


def check_methods(entries: Sequence[str | Mapping[str, Any]], key: str, builtins: Sequence[str]) -> list[MethodSpec]:
    """Parse every entry and import and check the custom ones (the config check before any job)."""
    specs = method_specs(entries, key, builtins)
    for i, s in enumerate(specs):
        if s.kind != "builtin":
            resolve(s, f"{key}[{i}]")
    return specs


def custom_attribute(spec: MethodSpec, forward: Callable[[torch.Tensor], torch.Tensor], inputs: torch.Tensor,
                     target: torch.Tensor) -> torch.Tensor:
    """A custom method's attributions of one forward (module docstring).

    Args:
        spec: the method.
        forward: ``(B, C, H, W) -> (B, classes)``; an ``nn.Module`` for Captum classes built on a model.
        inputs: ``(B, C, H, W)``.
        target: the explained class of every row ``(B,)``.

    Returns:
        Attributions ``(B, C, H, W)`` (a function's ``(B, H, W)`` gets the channel axis).
    """
    import torch
    from torch import nn

    method = resolve(spec)
    if spec.kind == "captum":
        if _needs_module(method) and not isinstance(forward, nn.Module):
            raise TypeError(f"{spec.label}: {spec.name} hooks a model's layers and needs an nn.Module forward")
        inputs = inputs.detach().clone().requires_grad_(True)  # as Captum's gradient methods want it
        out = method(forward, **spec.init).attribute(inputs, target=target, **spec.attribute)
    else:
        out = method(forward, inputs, target, **spec.attribute)
    if isinstance(out, tuple) and len(out) == 1:
        out = out[0]
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"{spec.label} ({spec.name}) returned {type(out).__name__}, not a torch tensor")
    if out.shape == inputs.shape[:1] + inputs.shape[2:]:
        out = out.unsqueeze(1)
    if out.shape != inputs.shape:
        raise ValueError(f"{spec.label} ({spec.name}) returned attributions of shape {tuple(out.shape)} for inputs "
                         f"{tuple(inputs.shape)}: return the inputs' shape (or (N, H, W))")
    return out.detach()


class _NotRows(ValueError):
    """A batch that is not a whole number of (model, image) layouts."""


def rows_forward(forward: Callable[[torch.Tensor], torch.Tensor], models: int,
                 images: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """The batched forward ``(M, N, C, H, W) -> (M, N, K)`` seen as one forward over ``M·N`` rows.

    Row ``m·N + n`` is model ``m`` on image ``n``. A batch of ``k·M·N`` rows (a method's ``k``
    perturbations or steps, concatenated along the batch) is ``k`` such layouts one after the
    other: each model's ``k·N`` rows go through its forward together.
    """
    per = models * images

    def forward_rows(x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] % per:
            raise _NotRows(f"a batch of {x.shape[0]} rows is not a multiple of {models} models x {images} images")
        k = x.shape[0] // per
        y = forward(x.reshape(k, models, images, *x.shape[1:]).transpose(0, 1).reshape(models, k * images,
                                                                                        *x.shape[1:]))
        return y.reshape(models, k, images, -1).transpose(0, 1).reshape(x.shape[0], -1)

    return forward_rows


def _agree(batched: torch.Tensor, single: torch.Tensor) -> bool:
    import torch

    scale = float(single.abs().max())
    return bool(torch.isfinite(batched).all()) and float((batched - single).abs().max()) <= BATCH_RTOL * scale


def _warn(spec: MethodSpec, why: str) -> None:
    if spec.label not in _warned:
        _warned.add(spec.label)
        log.warning("explain: %s (%s) runs model by model: %s. Slower than the batched path of the built-in "
                    "methods (one pass per model instead of one per chunk)", spec.label, spec.name, why)


def chunk_attributions(
    spec: MethodSpec,
    batched: Callable[[torch.Tensor], torch.Tensor],
    module: Callable[[int], nn.Module],
    x: torch.Tensor,
    target: torch.Tensor,
    *,
    seed: int = 0,
) -> torch.Tensor:
    """A custom method's maps ``(M, N, C, H, W)`` of a chunk of ``M`` models (module docstring).

    Args:
        spec: the method (not built-in).
        batched: the chunk's forward ``(M, N, C, H, W) -> (M, N, classes)``
            (:func:`causalxai.zoo.network.batched_forward`).
        module: ``i -> `` model ``i`` of the chunk as an ``nn.Module`` ``(N, C, H, W) -> (N, classes)``
            with the same output (softmax or logits) as ``batched``.
        x: the shared inputs ``(N, C, H, W)``.
        target: the explained class ``(M, N)``.
        seed: seeds torch's RNG (forked) before every call.

    Returns:
        ``(M, N, C, H, W)``.
    """
    import torch

    from causalxai.runtime import seeded

    m, n = target.shape
    method = resolve(spec)
    use_batched = spec.batched is not False and not (spec.kind == "captum" and _needs_module(method))
    why = ("the entry says batched: false" if spec.batched is False
           else f"{spec.name} hooks the model's layers (built on an nn.Module)")
    alone: dict[int, torch.Tensor] = {}  # models explained alone (the check's), reused below

    def own(i: int) -> torch.Tensor:
        if i not in alone:
            with seeded(seed, x.device):
                alone[i] = custom_attribute(spec, module(i), x.detach().clone(), target[i])
        return alone[i]

    if use_batched:
        rows = x.expand(m, *x.shape).reshape(m * n, *x.shape[1:]).detach().clone()
        try:
            with seeded(seed, x.device):
                out = custom_attribute(spec, rows_forward(batched, m, n), rows, target.reshape(-1)).reshape(
                    m, n, *x.shape[1:])
        except _NotRows as exc:
            out, why = None, f"it feeds batches that are not (model, image) rows ({exc})"
        if out is not None and spec.batched == "auto" and not all(_agree(out[i], own(i)) for i in {0, m - 1}):
            out, why = None, ("its maps of the batched forward differ from the models' own (the method mixes "
                              "rows or draws random numbers; declare batched: true if it may run batched)")
        if out is not None:
            return out
    _warn(spec, why)
    out = torch.empty(m, n, *x.shape[1:], dtype=x.dtype, device=x.device)
    progress = Progress(m, f"{spec.label} model by model", "models", log)
    for i in range(m):
        out[i] = own(i)
        alone.pop(i)
        progress.update()
    return out
