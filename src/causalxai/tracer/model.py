"""The classifier TRACER explains: the modified AlexNet of paper 004, layer selection,
training and the layer table.

:func:`alexnet28` is the MNIST network of paper 004 (§4, App. F, Table 2): AlexNet cut
down to one 28×28 input channel and 10 classes. Table 2 gives every layer's output shape
and the total parameter count (11,696,202) but no kernel sizes; these are the only
choices that give both the shapes and that exact count:

=========  =========================================  ==============  ===========
layer      hyperparameters                            output (28×28)  parameters
=========  =========================================  ==============  ===========
conv1      Conv2d(1→32, kernel 5, stride 1, pad 1)    32×26×26                832
conv2      Conv2d(32→64, kernel 3, stride 1, pad 1)   64×26×26             18,496
pool1      MaxPool2d(kernel 2, stride 2)              64×13×13                  0
conv3      Conv2d(64→96, kernel 3, stride 1, pad 1)   96×13×13             55,392
conv4      Conv2d(96→64, kernel 3, stride 1, pad 1)   64×13×13             55,360
conv5      Conv2d(64→32, kernel 3, stride 1, pad 1)   32×13×13             18,464
pool2      MaxPool2d(kernel 2, stride 1)              32×12×12                  0
flatten    Flatten                                    4608                      0
drop1      Dropout(p)                                 4608                      0
fc1        Linear(4608→2048)                          2048              9,439,232
drop2      Dropout(p)                                 2048                      0
fc2        Linear(2048→1024)                          1024              2,098,176
fc3        Linear(1024→10)                            10                   10,250
=========  =========================================  ==============  ===========

with a ReLU after each conv and after fc1 and fc2 (relu1…relu7): 11,696,202 parameters
in all, exactly Table 2's total. (A 3×3 unpadded conv1 also gives 32×26×26 but
11,695,690 parameters, 512 short.) The classifier head is torchvision AlexNet's
(Dropout, Linear, ReLU, Dropout, Linear, ReLU, Linear), as Table 2 lists it.

Layers are observed by name (``conv1``, ``relu1``, …, ``fc3``), see
:func:`observed_layers`; any classifier whose forward runs its modules one after another
(an ``nn.Sequential``, nested or not) works the same way.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections import OrderedDict
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from causalxai.progress import Progress
from causalxai.runtime import adam, eval_mode, resolve_device
from causalxai.tracer.settings import ClassifierSettings

__all__ = [
    "alexnet28",
    "ALEXNET28_LAYERS",
    "ResidualBlock",
    "ResNetSmall",
    "resnet_small",
    "default_layers",
    "observed_layers",
    "stochastic_modules",
    "ForwardTrace",
    "trace_forward",
    "check_layers",
    "leaf_modules",
    "train_classifier",
    "evaluate_classifier",
    "layer_table",
    "forward_hooks",
    "SELECT_KEYWORDS",
]

#: keywords :func:`observed_layers` understands besides layer names and type names
SELECT_KEYWORDS = ("all", "parametric", "auto")

#: alexnet28's observed layers (paper 004 §4: the ReLUs and the logits), its ``tracer.layers: auto``
ALEXNET28_LAYERS = ("relu1", "relu2", "relu3", "relu4", "relu5", "relu6", "relu7", "fc3")


def alexnet28(in_channels: int = 1, n_classes: int = 10, dropout: float = 0.5, image_size: int = 28) -> nn.Sequential:
    """The modified AlexNet of paper 004 (Table 2), as a named ``nn.Sequential``.

    ``image_size`` (square inputs) only changes ``fc1``'s input width: conv1 maps s → s−2,
    pool1 halves (floor), pool2 takes one off; 28 → 26 → 13 → 12 (32·12·12 = 4608).
    See the module docstring for every layer's hyperparameters and parameter count.
    """
    if image_size < 6:
        raise ValueError(f"alexnet28: image_size={image_size} is too small (needs at least 6 pixels)")
    side = (image_size - 2) // 2 - 1
    layers: list[tuple[str, nn.Module]] = [
        ("conv1", nn.Conv2d(in_channels, 32, kernel_size=5, stride=1, padding=1)),
        ("relu1", nn.ReLU()),
        ("conv2", nn.Conv2d(32, 64, kernel_size=3, stride=1, padding=1)),
        ("relu2", nn.ReLU()),
        ("pool1", nn.MaxPool2d(kernel_size=2, stride=2)),
        ("conv3", nn.Conv2d(64, 96, kernel_size=3, stride=1, padding=1)),
        ("relu3", nn.ReLU()),
        ("conv4", nn.Conv2d(96, 64, kernel_size=3, stride=1, padding=1)),
        ("relu4", nn.ReLU()),
        ("conv5", nn.Conv2d(64, 32, kernel_size=3, stride=1, padding=1)),
        ("relu5", nn.ReLU()),
        ("pool2", nn.MaxPool2d(kernel_size=2, stride=1)),
        ("flatten", nn.Flatten()),
        ("drop1", nn.Dropout(dropout)),
        ("fc1", nn.Linear(32 * side * side, 2048)),
        ("relu6", nn.ReLU()),
        ("drop2", nn.Dropout(dropout)),
        ("fc2", nn.Linear(2048, 1024)),
        ("relu7", nn.ReLU()),
        ("fc3", nn.Linear(1024, n_classes)),
    ]
    model = nn.Sequential(OrderedDict(layers))
    model.tracer_layers = ALEXNET28_LAYERS  # what tracer.layers: auto observes (default_layers)
    return model


class ResidualBlock(nn.Module):
    """A pre-activation residual block (He et al. 2016, "Identity mappings in deep residual
    networks"): ``forward(x) = shortcut(x) + f(x)`` with
    ``f = conv2 ∘ relu2 ∘ bn2 ∘ conv1 ∘ relu1 ∘ bn1`` (3×3 convolutions, padding 1, ``conv1``
    with the block's stride) and ``shortcut`` the identity (``nn.Identity``) when the shape is
    kept, else a 1×1 convolution with the stride. The block's output is the sum itself (no
    activation after it), so the skip connection is exactly ``x + f(x)``.

    Modules are registered in the order ``forward`` runs them (the branch, then the shortcut),
    each runs once per forward pass; the sum is not a module, so the block cannot be rebuilt as
    a chain of its leaves (:func:`causalxai.compress.build.chain_mismatch`).
    """

    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.relu1 = nn.ReLU()
        self.conv1 = nn.Conv2d(c_in, c_out, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.relu2 = nn.ReLU()
        self.conv2 = nn.Conv2d(c_out, c_out, kernel_size=3, stride=1, padding=1, bias=False)
        self.shortcut: nn.Module = (nn.Identity() if stride == 1 and c_in == c_out
                                    else nn.Conv2d(c_in, c_out, kernel_size=1, stride=stride, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.conv2(self.relu2(self.bn2(self.conv1(self.relu1(self.bn1(x))))))
        return self.shortcut(x) + f


class ResNetSmall(nn.Sequential):
    """:func:`resnet_small`: an ``nn.Sequential`` of top-level modules (``stem``, ``block1``…,
    ``bn``, ``relu``, ``pool``, ``flatten``, ``fc``) whose ``block*`` are :class:`ResidualBlock`."""

    #: tracer.layers: auto (:func:`default_layers`): the stem, each block's residual branch
    #: ``f(x)`` (``block<i>.conv2``) and output ``x + f(x)``, the last activation and the logits.
    #: The branch sits between a block's input and its output, so the skip connection shows as a
    #: link from the block's input to its output that jumps the branch (paper 004 App. H, Def. 4)
    #: when the output is more similar to the input than to the branch.
    tracer_layers = ("stem", "block1.conv2", "block1", "block2.conv2", "block2", "block3.conv2", "block3", "relu",
                     "fc")


def resnet_small(in_channels: int = 1, n_classes: int = 10, width: int = 16) -> ResNetSmall:
    """A small residual network for 28×28 and 32×32 inputs (any size ≥ 4 works: the head pools
    globally): ``stem`` Conv2d(in→w, 3, pad 1); ``block1`` :class:`ResidualBlock` (w→w,
    stride 1, identity shortcut); ``block2`` (w→2w, stride 2); ``block3`` (2w→4w, stride 2);
    then ``bn`` BatchNorm2d(4w), ``relu``, ``pool`` AdaptiveAvgPool2d(1), ``flatten`` and
    ``fc`` Linear(4w→classes). With ``width`` 16 and one input channel: 16×28×28 after the stem
    and block1, 32×14×14 after block2, 64×7×7 after block3; 77,562 parameters for 10 classes.

    Args:
        in_channels: input channels (1 for the digits, MNIST; 1 too for CIFAR-10 as this
            workflow stores it, grey).
        n_classes: classes (the logits' width).
        width: channels of the stem and block1 (doubled by each later block).
    """
    if width < 1:
        raise ValueError(f"resnet_small: width must be >= 1, got {width}")
    w = int(width)
    return ResNetSmall(OrderedDict([
        ("stem", nn.Conv2d(in_channels, w, kernel_size=3, padding=1, bias=False)),
        ("block1", ResidualBlock(w, w, 1)),
        ("block2", ResidualBlock(w, 2 * w, 2)),
        ("block3", ResidualBlock(2 * w, 4 * w, 2)),
        ("bn", nn.BatchNorm2d(4 * w)),
        ("relu", nn.ReLU()),
        ("pool", nn.AdaptiveAvgPool2d(1)),
        ("flatten", nn.Flatten()),
        ("fc", nn.Linear(4 * w, n_classes)),
    ]))


# ---------------------------------------------------------------------------------------
# which layers to observe


def leaf_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(name, module)`` of every module without children, in ``named_modules`` order."""
    return [(n, m) for n, m in model.named_modules() if n and next(m.children(), None) is None]


@contextlib.contextmanager
def forward_hooks(model: nn.Module, names: Sequence[str], fn: Callable[[str, nn.Module, Any], None]) -> Iterator[None]:
    """Within the block, ``fn(name, module, output)`` runs after each named module's forward.

    The hooks are removed on leaving the block, whatever happens inside it.
    """
    handles = []
    try:
        for name in names:
            module = model.get_submodule(name)
            handles.append(module.register_forward_hook(lambda mod, args, out, _name=name: fn(_name, mod, out)))
        yield
    finally:
        for h in handles:
            h.remove()


def _post_order(model: nn.Module) -> list[str]:
    """Every named module, children before their container (depth first, in registration
    order): the order their forwards *finish* in when each container runs its children in the
    order it registers them (an ``nn.Sequential``, a residual block defined in forward order)."""
    out: list[str] = []

    def visit(prefix: str, module: nn.Module) -> None:
        for name, child in module.named_children():
            full = f"{prefix}{name}"
            visit(f"{full}.", child)
            out.append(full)

    visit("", model)
    return out


def default_layers(model: nn.Module) -> list[str]:
    """What ``tracer.layers: auto`` observes: the model's ``tracer_layers`` attribute when it
    has one (the built-ins: :data:`ALEXNET28_LAYERS` for :func:`alexnet28`,
    :attr:`ResNetSmall.tracer_layers` for :func:`resnet_small`; a user's factory may set it too),
    else every top-level child (``model.named_children()``), each a block's output.

    Raises:
        ValueError: ``tracer_layers`` names a module the model does not have.
    """
    names = getattr(model, "tracer_layers", None)
    if names is None:
        return [n for n, _ in model.named_children()]
    known = {n for n, _ in model.named_modules() if n}
    missing = [str(n) for n in names if str(n) not in known]
    if missing:
        raise ValueError(f"{type(model).__name__}.tracer_layers names {missing}, which are not modules of it")
    return [str(n) for n in names]


def _execution_order(model: nn.Module, names: Sequence[str], example_input: torch.Tensor) -> list[str]:
    """``names`` sorted by when each module's forward first finished on ``example_input``;
    modules that never ran are dropped."""
    first: dict[str, int] = {}

    def note(name: str, module: nn.Module, out: Any) -> None:
        first.setdefault(name, len(first))

    with eval_mode(model), forward_hooks(model, names, note), torch.no_grad():
        model(example_input)
    return sorted(first, key=first.__getitem__)


def observed_layers(
    model: nn.Module,
    select: str | type | Sequence[str | type] = "all",
    *,
    example_input: torch.Tensor | None = None,
) -> list[str]:
    """Names of the modules whose outputs TRACER records, in forward order.

    ``select`` is one item or a list of items; each item is

    * ``"all"``: every leaf module (a module without children), e.g. for :func:`alexnet28`
      all 20 layers conv1 … fc3, ReLU, pooling, Flatten and Dropout included;
    * ``"parametric"``: every leaf module with parameters of its own (Conv, Linear, norms);
    * ``"auto"``: the architecture's own choice (:func:`default_layers`): alexnet28's ReLUs
      and logits, resnet_small's stem, residual branches, block outputs and logits;
    * a module name as ``model.named_modules()`` spells it (``"conv1"``, ``"layer1.0"``):
      that module, leaf or container (a container's output is its block's output);
    * a type name (``"Conv2d"``, ``"ReLU"``) or a module class (``nn.Conv2d``, matched by
      ``isinstance``): every module of that type.

    Names win over type names when an item is both. An item that matches nothing raises
    ``ValueError`` naming what is there.

    Order: children before their container, each container's children in registration
    order (:func:`_post_order`): when-its-forward-finishes order for an ``nn.Sequential``
    (nested ones too) and for blocks that register their modules in the order ``forward`` runs
    them (:func:`resnet_small`). For any other model it need not be the order ``forward`` runs
    them (nor does it see functional calls such as ``F.relu`` or ``x + y`` in ``forward``):
    pass ``example_input`` (one batch) to order the layers by when their forward finished
    on it instead; modules that did not run are then dropped. Modules run more than once
    per forward (a shared ``ReLU``) have no single output: TRACER refuses them, naming them
    (:func:`check_layers`, :func:`~causalxai.tracer.interventions.record_activations`),
    rather than recording each call.
    """
    items = [select] if isinstance(select, (str, type)) else list(select)
    if not items:
        raise ValueError("observed_layers: select is empty; name at least one layer, type or 'all'")
    named = [(n, m) for n, m in model.named_modules() if n]
    by_name = dict(named)
    leaves = {n for n, _ in leaf_modules(model)}
    chosen: set[str] = set()
    for item in items:
        if isinstance(item, type):
            hit = {n for n, m in named if isinstance(m, item)}
        elif item == "all":
            hit = set(leaves)
        elif item == "auto":
            hit = set(default_layers(model))
        elif item == "parametric":
            hit = {n for n in leaves if next(by_name[n].parameters(recurse=False), None) is not None}
        elif item in by_name:
            hit = {item}
        else:
            hit = {n for n, m in named if type(m).__name__ == item}
        if not hit:
            types = sorted({type(m).__name__ for _, m in named})
            raise ValueError(
                f"observed_layers: {item!r} matches no module of {type(model).__name__}; use one of the "
                f"keywords {list(SELECT_KEYWORDS)}, a module name (e.g. {[n for n, _ in named[:4]]}) "
                f"or a type name among {types}"
            )
        chosen |= hit
    names = [n for n in _post_order(model) if n in chosen]
    if example_input is not None:
        names = _execution_order(model, names, example_input)
    return names


@dataclasses.dataclass(frozen=True)
class ForwardTrace:
    """What one forward pass of a model did, module by module (:func:`trace_forward`).

    Attributes:
        order: the names of the modules that ran, in the order their forward first finished
            (a module's output exists only after its children's, so a container follows them).
        calls: how many times each module that ran was called.
        outputs: each module's output of its first call.
        output: the model's output.
        leaves: the names of the leaf modules (no children) in ``order``'s order.
    """

    order: list[str]
    calls: dict[str, int]
    outputs: dict[str, Any]
    output: Any
    leaves: list[str]

    def produces_output(self, name: str) -> bool:
        """Whether module ``name``'s output is the model's output (the same tensor, or equal)."""
        out, y = self.outputs.get(name), self.output
        if out is y:
            return True
        return (isinstance(out, torch.Tensor) and isinstance(y, torch.Tensor) and out.shape == y.shape
                and out.dtype == y.dtype and bool(torch.equal(out, y)))


def trace_forward(model: nn.Module, example_input: torch.Tensor) -> ForwardTrace:
    """One forward pass of ``model`` on ``example_input`` in eval mode without gradients, with a
    hook on every named module (removed afterwards; the training flag is restored).

    Exceptions of the forward pass propagate unchanged.
    """
    names = [n for n, _ in model.named_modules() if n]
    calls: dict[str, int] = {}
    outputs: dict[str, Any] = {}

    def note(name: str, module: nn.Module, out: Any) -> None:
        calls[name] = calls.get(name, 0) + 1
        outputs.setdefault(name, out)

    with eval_mode(model), forward_hooks(model, names, note), torch.no_grad():
        y = model(example_input)
    order = list(calls)  # dicts keep insertion order: the first finish of each module
    leaves = {n for n, _ in leaf_modules(model)}
    return ForwardTrace(order, calls, outputs, y, [n for n in order if n in leaves])


def stochastic_modules(
    model: nn.Module, example_input: torch.Tensor, *, repeats: int = 3, seed: int = 0
) -> list[str]:
    """The stochastic (exogenous) nodes of paper 004 App. H.2: the modules whose output varies
    across repeated forward passes of the same input in eval mode *while their own inputs do
    not* ("if the outputs vary across evaluations on the same input, we classify the layer as
    stochastic"), e.g. a VAE's sampling layer ``mu + sigma * randn``. The modules after it vary
    too, but through their input: they are not reported.

    ``repeats`` passes of ``example_input`` run in eval mode without gradients, with a hook on
    every named module recording each call's tensor inputs and output (a module called several
    times is compared call by call). The global RNG is seeded with ``seed`` inside a forked RNG
    state (the caller's is left alone), so the answer is reproducible; the training flag is
    restored.

    Args:
        model: any ``nn.Module``.
        example_input: one batch it takes.
        repeats: forward passes compared (at least 2).
        seed: the RNG seed of the passes.

    Returns:
        The names of the stochastic modules, in the order their forward first finished.
    """
    if repeats < 2:
        raise ValueError(f"stochastic_modules: repeats must be >= 2, got {repeats}")
    names = [n for n, _ in model.named_modules() if n]
    passes: list[dict[str, list[tuple[list[torch.Tensor], Any]]]] = []

    def note(name: str, module: nn.Module, args: Any, out: Any) -> None:
        ins = [a.detach().clone() for a in args if isinstance(a, torch.Tensor)]
        passes[-1].setdefault(name, []).append((ins, out.detach().clone() if isinstance(out, torch.Tensor) else out))

    handles = []
    p = next(model.parameters(), None)
    dev = p.device if p is not None else torch.device("cpu")
    cuda = [dev.index if dev.index is not None else torch.cuda.current_device()] if dev.type == "cuda" else []
    try:
        for name in names:
            handles.append(model.get_submodule(name).register_forward_hook(
                lambda mod, args, out, _name=name: note(_name, mod, args, out)))
        with eval_mode(model), torch.no_grad(), torch.random.fork_rng(devices=cuda):
            torch.manual_seed(int(seed))
            for _ in range(repeats):
                passes.append({})
                model(example_input)
    finally:
        for h in handles:
            h.remove()

    def same(a: Any, b: Any) -> bool:
        if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
            return a.shape == b.shape and bool(torch.equal(a, b))
        return not isinstance(a, torch.Tensor) and not isinstance(b, torch.Tensor)

    found = []
    for name in passes[0]:  # first-finish order
        calls = [run.get(name, []) for run in passes]
        for k, (ins, out) in enumerate(calls[0]):
            others = [c[k] for c in calls[1:] if k < len(c)]
            inputs_fixed = all(len(o[0]) == len(ins) and all(same(a, b) for a, b in zip(ins, o[0])) for o in others)
            if inputs_fixed and any(not same(out, o[1]) for o in others):
                found.append(name)
                break
    return found


def check_layers(
    model: nn.Module, select: str | Sequence[str], example_input: torch.Tensor
) -> list[str]:
    """The layers TRACER observes (:func:`observed_layers`), in forward order, or ``ValueError``.

    Runs the model once on ``example_input`` (a batch of at least one input) and refuses a
    selection TRACER cannot use, whatever order the model registers its modules in:

    * an item listed twice, or one that is neither a keyword (:data:`SELECT_KEYWORDS`), a
      module name nor a module type name (the error lists the modules in forward order);
    * a selected module that never runs, or runs more than once per forward (a shared module
      has no single output), or whose output is not a tensor with the batch axis;
    * module names listed in another order than forward runs them;
    * fewer than 2 layers (TRACER groups consecutive layers by their CKA);
    * a selection whose last layer is not the model's output (the logits): the last causal
      node is the output, whose change the interventions' effects are measured on.

    Args:
        model: the classifier.
        select: the selection as :func:`observed_layers` takes it (``tracer.layers``).
        example_input: one batch the model takes, e.g. zeros of the data set's shape.

    Returns:
        The selected module names in the order their forward finished on ``example_input``.
    """
    items = [select] if isinstance(select, str) else [str(i) for i in select]
    twice = [i for k, i in enumerate(items) if i in items[:k]]
    if twice:
        raise ValueError(f"lists {sorted(set(twice), key=items.index)} more than once; name each layer once")
    trace = trace_forward(model, example_input)
    named = dict((n, m) for n, m in model.named_modules() if n)
    types = sorted({type(m).__name__ for m in named.values()})
    unknown = [i for i in items if i not in SELECT_KEYWORDS and i not in named and i not in types]
    if unknown:
        raise ValueError(
            f"{unknown} {'is' if len(unknown) == 1 else 'are'} not a module of {type(model).__name__}; its leaf "
            f"modules in forward order are {trace.leaves} (types {types}, keywords {list(SELECT_KEYWORDS)})"
        )
    names = observed_layers(model, items)
    never = [n for n in names if n not in trace.calls]
    if never:
        raise ValueError(f"{never} never run in the forward pass; observe modules that run: {trace.leaves}")
    shared = {n: trace.calls[n] for n in names if trace.calls[n] > 1}
    if shared:
        raise ValueError(
            f"{', '.join(f'{n!r} runs {c} times' for n, c in shared.items())} per forward pass: a module used "
            "more than once has no single output to observe; give each use a module of its own, or observe others"
        )
    batch = len(example_input)
    no_batch = [n for n in names if not isinstance(trace.outputs[n], torch.Tensor)
                or trace.outputs[n].dim() < 1 or trace.outputs[n].shape[0] != batch]
    if no_batch:
        raise ValueError(f"{no_batch} do not return one tensor with a row per input; observe other modules")
    ordered = sorted(names, key=trace.order.index)
    listed = [i for i in items if i in named]
    in_order = [n for n in ordered if n in listed]
    if listed != in_order:
        raise ValueError(f"lists {listed}, but forward runs them as {in_order}: list the layers in forward order")
    if len(ordered) < 2:
        raise ValueError(
            f"selects {len(ordered)} layer ({ordered}); TRACER groups consecutive layers by their CKA into causal "
            "nodes and needs at least 2 (e.g. the hidden activations and the output layer)"
        )
    last = ordered[-1]
    if not trace.produces_output(last):
        makers = [n for n in trace.order if trace.produces_output(n)]
        fix = (f"end the list at {makers[0]!r}, the module whose output is the model's output" if makers else
               "no module returns the model's output (forward applies a function after its last module): "
               "make the last step a module")
        raise ValueError(f"ends at {last!r}, which is not the model's output (the logits), so the last causal node "
                         f"would not be the prediction; {fix}")
    return ordered


# ---------------------------------------------------------------------------------------
# training


def _as_inputs(x: Any) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
    return t.float() if not t.is_floating_point() or t.dtype == torch.float64 else t


def _as_labels(y: Any) -> torch.Tensor:
    return torch.as_tensor(np.asarray(y) if not isinstance(y, torch.Tensor) else y).long().reshape(-1)


def evaluate_classifier(
    model: nn.Module, x: Any, y: Any, *, batch_size: int = 1024, device: str | torch.device = "auto"
) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` on ``(x, y)`` (eval mode, no grad)."""
    dev = resolve_device(device) if isinstance(device, str) else device
    xt, yt = _as_inputs(x), _as_labels(y)
    loss, correct = 0.0, 0
    with eval_mode(model), torch.no_grad():
        for i in range(0, len(xt), batch_size):
            xb, yb = xt[i : i + batch_size].to(dev), yt[i : i + batch_size].to(dev)
            logits = model(xb)
            loss += float(F.cross_entropy(logits, yb, reduction="sum"))
            correct += int((logits.argmax(1) == yb).sum())
    n = max(len(xt), 1)
    return loss / n, correct / n


def train_classifier(
    model: nn.Module,
    x_train: Any,
    y_train: Any,
    x_test: Any,
    y_test: Any,
    settings: ClassifierSettings,
    *,
    device: str | torch.device = "auto",
    progress: str | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """Train ``model`` in place with Adam (``lr``, torch defaults otherwise) on cross-entropy:
    the one training loop of TRACER's target model and of the compressed models.

    Paper 004 App. F: Adam, learning rate 1e-3, default parameters. Each epoch visits the
    training set in a fresh random order drawn from a ``torch.Generator`` seeded with
    ``seed``; the global RNG (dropout) is seeded with ``seed`` inside a forked RNG state, so
    the caller's RNG is left alone and the same model, data and seed give the same weights
    on the CPU (on a GPU up to cuDNN's own nondeterminism). Inputs are float tensors or
    arrays ``(N, ...)`` already normalised, labels integer class indices.

    Args:
        model: the classifier (logits), trained in place.
        x_train, y_train: training inputs and labels.
        x_test, y_test: the test set evaluated after every epoch.
        settings: ``epochs``, ``batch_size``, ``lr``, ``seed`` and ``eval_batch_size``.
        device: where to train (``"auto"``: CUDA when present).
        progress: a name to log the epochs under at a steady rate (None: silent).

    Returns the model (on ``device``, eval mode) and a history with per-epoch lists
    ``epoch, train_loss, train_accuracy, test_loss, test_accuracy`` (train figures are
    running means over the epoch's minibatches, in train mode), plus ``initial_test_loss``,
    ``initial_test_accuracy`` (before training) and ``final_test_accuracy``.
    """
    epochs, batch_size, seed, eval_batch_size = (settings.epochs, settings.batch_size, settings.seed,
                                                 settings.eval_batch_size)
    dev = resolve_device(device) if isinstance(device, str) else torch.device(device)
    xtr, ytr = _as_inputs(x_train), _as_labels(y_train)
    if len(xtr) != len(ytr) or len(xtr) == 0:
        raise ValueError(f"train_classifier: {len(xtr)} training inputs but {len(ytr)} labels")
    xtr, ytr = xtr.to(dev), ytr.to(dev)
    model.to(dev)
    opt = adam(model.parameters(), lr=settings.lr)
    gen = torch.Generator().manual_seed(int(seed))
    hist: dict[str, Any] = {k: [] for k in ("epoch", "train_loss", "train_accuracy", "test_loss", "test_accuracy")}
    hist["initial_test_loss"], hist["initial_test_accuracy"] = evaluate_classifier(
        model, x_test, y_test, batch_size=eval_batch_size, device=dev
    )
    n = len(xtr)
    cuda = [dev.index if dev.index is not None else torch.cuda.current_device()] if dev.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(int(seed))
        counter = Progress(epochs, str(progress), "epochs", enabled=progress is not None)
        for epoch in range(1, epochs + 1):
            model.train()
            perm = torch.randperm(n, generator=gen).to(dev)
            loss_sum, correct = 0.0, 0
            for i in range(0, n, batch_size):
                idx = perm[i : i + batch_size]
                logits = model(xtr[idx])
                loss = F.cross_entropy(logits, ytr[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                loss_sum += float(loss.detach()) * len(idx)
                correct += int((logits.detach().argmax(1) == ytr[idx]).sum())
            test_loss, test_acc = evaluate_classifier(model, x_test, y_test, batch_size=eval_batch_size, device=dev)
            hist["epoch"].append(epoch)
            hist["train_loss"].append(loss_sum / n)
            hist["train_accuracy"].append(correct / n)
            hist["test_loss"].append(test_loss)
            hist["test_accuracy"].append(test_acc)
            counter.update(note=f"train loss {loss_sum / n:.4f}, test accuracy {test_acc:.4f}")
    model.eval()
    hist["final_test_accuracy"] = hist["test_accuracy"][-1] if epochs else hist["initial_test_accuracy"]
    return model, hist


# ---------------------------------------------------------------------------------------
# the layer table (paper 004 Table 2)


def layer_table(
    model: nn.Module, input_shape: Sequence[int], *, layers: str | type | Sequence[str | type] = "all"
) -> pd.DataFrame:
    """One row per observed layer: ``name, type, output_shape, n_outputs, params``.

    ``input_shape`` is one sample's shape without the batch axis (``(1, 28, 28)``); the
    output shapes come from one forward pass of a zero input in eval mode (training mode is
    restored afterwards). ``output_shape`` is a tuple without the batch axis, ``params``
    the module's parameter count (with its children's). ``df.attrs["total_params"]`` is
    the whole model's count (Table 2's "Total Parameters").
    """
    names = observed_layers(model, layers)
    shapes: dict[str, tuple[int, ...]] = {}

    def note(name: str, module: nn.Module, out: Any) -> None:
        if isinstance(out, torch.Tensor):
            shapes.setdefault(name, tuple(out.shape[1:]))

    p = next(model.parameters(), None)
    x = torch.zeros((1, *input_shape), device=p.device if p is not None else "cpu",
                    dtype=p.dtype if p is not None and p.is_floating_point() else torch.float32)
    with eval_mode(model), forward_hooks(model, names, note), torch.no_grad():
        model(x)
    rows = []
    for name in names:
        m = model.get_submodule(name)
        shape = shapes.get(name)
        rows.append(
            {
                "name": name,
                "type": str(getattr(m, "kind", type(m).__name__)),  # a TorchScript layer: its scripted class
                "output_shape": shape,
                "n_outputs": int(np.prod(shape)) if shape is not None else None,
                "params": int(sum(q.numel() for q in m.parameters())),
            }
        )
    df = pd.DataFrame(rows, columns=["name", "type", "output_shape", "n_outputs", "params"])
    df.attrs["total_params"] = int(sum(q.numel() for q in model.parameters()))
    return df
