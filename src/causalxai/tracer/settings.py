"""Settings objects of paper 004's steps: frozen dataclasses built from a rule's params.

Every step of TRACER, the GAN and compression takes one settings object instead of a long
argument list. Each validates itself in ``__post_init__`` (an error names the field, e.g.
``TracerSettings.eps must lie in [0, 1], got 2``) and is built from the rule's
``snakemake.params`` by ``from_params``, which names the config key instead
(``tracer.cka.eps must lie in [0, 1], got 2``). :class:`Settings` holds that shared
machinery; :class:`TracerSettings` (interventions → causal nodes → ACE) and
:class:`ClassifierSettings` (the classifier training loop of the target model and of the
compressed models) live here, on the lowest floor of paper 004's packages.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, Self

import torch

from causalxai.data.dataset import from_raw, to_raw

__all__ = [
    "EPS_SWEEP",
    "SettingError",
    "Settings",
    "TracerSettings",
    "MechanismSettings",
    "ClassifierSettings",
    "function",
    "integer",
    "number",
    "optional",
    "setting",
]

EPS_SWEEP = (0.0, 0.05, 0.1, 0.2, 1.0)  # App. G

class SettingError(ValueError):
    """A settings field with a value that cannot work; ``field`` names it."""

    def __init__(self, owner: str, field: str, detail: str):
        self.field, self.detail = field, detail
        super().__init__(f"{owner}.{field} {detail}")


@dataclasses.dataclass(frozen=True)
class Settings:
    """Base of the settings objects: validation helpers and :meth:`from_params`.

    Fields are declared with :func:`setting`, which names the converter that checks each
    (applied in ``__post_init__``). ``CONFIG_KEYS`` maps a field to its config key when it is
    not ``<section>.<field>`` (e.g. ``seed`` is the top-level ``seed``); ``SECTION`` is the
    config section the rule's params come from.
    """

    SECTION: ClassVar[str] = ""
    CONFIG_KEYS: ClassVar[Mapping[str, str]] = {}

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            check = f.metadata.get("check")
            if check is not None:
                self._set(f.name, check)

    def _fail(self, field: str, detail: str) -> None:
        raise SettingError(type(self).__name__, field, detail)

    def _set(self, field: str, convert: Callable[[Any], Any]) -> Any:
        """Convert (and check) a field in place (frozen dataclass). ``convert`` raises
        ``ValueError``/``TypeError`` with what the value must be; the error names the field."""
        value = getattr(self, field)
        try:
            out = convert(value)
        except (TypeError, ValueError) as exc:
            self._fail(field, f"{exc}, got {value!r}")
        object.__setattr__(self, field, out)
        return out

    @classmethod
    def config_key(cls, field: str, section: str | None = None) -> str:
        """The config key of ``field`` (what ``from_params`` names in its errors)."""
        if field in cls.CONFIG_KEYS:
            return cls.CONFIG_KEYS[field]
        sec = cls.SECTION if section is None else section
        return f"{sec}.{field}" if sec else field

    @classmethod
    def from_params(cls, params: Mapping[str, Any], *, section: str | None = None, **extra: Any) -> Self:
        """The settings from a rule's params (a mapping; keys as the config spells them).

        Args:
            params: the rule's ``snakemake.params`` entry (a dict): every key must be a field;
                fields not given keep their defaults.
            section: the config section the params come from, when a class serves several
                (e.g. ``tracer.model`` and ``tracer.compress`` for :class:`ClassifierSettings`).
            extra: further fields set by the script (not config values: e.g. callables).

        Returns:
            The settings. A bad value raises :class:`ValueError` naming its config key.
        """
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, value in dict(params).items():
            if key not in names:
                raise ValueError(
                    f"{cls.__name__}.from_params: unknown key {key!r} ({cls.config_key(key, section)}); "
                    f"known: {sorted(names)}"
                )
            kwargs[key] = value
        try:
            return cls(**kwargs, **extra)
        except SettingError as err:
            raise ValueError(f"{cls.config_key(err.field, section)} {err.detail}") from None


def setting(default: Any = dataclasses.MISSING, check: Callable[[Any], Any] | None = None, *,
            default_factory: Any = dataclasses.MISSING) -> Any:
    """A settings field with the converter that checks it (:meth:`Settings._set`, run by
    ``__post_init__``): ``check`` raises ``ValueError`` saying what the value must be."""
    return dataclasses.field(default=default, default_factory=default_factory, metadata={"check": check})


def optional(convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """A converter that lets None through and checks anything else with ``convert``."""

    def check(value: Any) -> Any:
        return None if value is None else convert(value)

    return check


def integer(low: int) -> Callable[[Any], int]:
    """A converter to an int ``>= low`` (for :meth:`Settings._set`)."""

    def convert(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value or value < low:
            raise ValueError(f"must be an integer >= {low}")
        return int(value)

    return convert


def number(low: float, high: float = float("inf"), *, what: str = "") -> Callable[[Any], float]:
    """A converter to a float in ``[low, high]`` (for :meth:`Settings._set`)."""

    def convert(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= float(value) <= high:
            span = f">= {low}" if high == float("inf") else f"in [{low:g}, {high:g}]"
            raise ValueError(f"must be a number {span}{what}")
        return float(value)

    return convert


def _pair(value: Any) -> int | tuple[int, int]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return integer(1)(value)
    if isinstance(value, str) or len(value) != 2:
        raise ValueError("must be an integer >= 1 or a (rows, cols) pair of them")
    a, b = (integer(1)(v) for v in value)
    return (a, b) if a != b else a


def _layers(value: Any) -> str | tuple[str, ...]:
    if isinstance(value, str):
        return value
    out = tuple(str(v) for v in value)
    if not out:
        raise ValueError("must name at least one layer")
    return out


def _eps_sweep(value: Any) -> tuple[float, ...]:
    if isinstance(value, str) or not len(value):
        raise ValueError("must be a non-empty list of numbers in [0, 1]")
    return tuple(number(0.0, 1.0)(e) for e in value)


def _one_of(*choices: str) -> Callable[[Any], str]:
    def convert(value: Any) -> str:
        if value not in choices:
            raise ValueError(f"must be one of {list(choices)}")
        return str(value)

    return convert


def function(*, optional: bool = False) -> Callable[[Any], Any]:
    """A converter that checks a callable (or None when ``optional``) (for :meth:`Settings._set`)."""

    def convert(value: Any) -> Any:
        if not (callable(value) or (optional and value is None)):
            raise TypeError("must be callable" + (" or None" if optional else ""))
        return value

    return convert


def _dtype(value: Any) -> torch.dtype:
    if not isinstance(value, torch.dtype):
        raise TypeError("must be a torch dtype")
    return value


@dataclasses.dataclass(frozen=True)
class TracerSettings(Settings):
    """TRACER's settings, interventions → causal nodes → ACE (paper 004 §3.3-3.4, Def. 3-5, App. G).

    Attributes:
        layers: observed layers (names, a type name, ``"all"``…; :func:`~causalxai.tracer.model.observed_layers`).
        patch: patch size k of the k×k interventions (int or ``(rows, cols)``).
        stride: the patches' stride (int or ``(rows, cols)``).
        baseline: the raw value (before normalisation) a patch is set to (§4.1: 0).
        batch_size: inputs per forward pass.
        kernel: CKA kernel (``linear`` or ``rbf``).
        cka_dtype: dtype of the centred Grams (HSIC sums are float64 regardless).
        eps: the CKA threshold ε of the causal nodes (``B_ij = CKA_ij ≥ 1 − ε``).
        eps_sweep: the ε values of App. G's sweep.
        mask_threshold: share of the maximum |attribution| that enters the explanation mask.
        top_k: top features per causal node.
        top_units: top units (channels / features of its last layer) per causal node (App. B: top-3).
        to_raw, from_raw: normalised input → raw space and back (where the baseline is set).
    """

    SECTION: ClassVar[str] = "tracer"
    CONFIG_KEYS: ClassVar[Mapping[str, str]] = {
        "layers": "tracer.layers",
        "patch": "tracer.interventions.patch",
        "stride": "tracer.interventions.stride",
        "baseline": "tracer.interventions.baseline",
        "batch_size": "tracer.interventions.batch_size",
        "kernel": "tracer.cka.kernel",
        "eps": "tracer.cka.eps",
        "eps_sweep": "tracer.cka.eps_sweep",
        "mask_threshold": "tracer.ace.mask_threshold",
        "top_k": "tracer.ace.top_k",
        "top_units": "tracer.ace.top_units",
    }

    layers: str | Sequence[str] = setting("all", _layers)
    patch: int | Sequence[int] = setting(3, _pair)
    stride: int | Sequence[int] = setting(1, _pair)
    baseline: float = setting(0.0, number(-float("inf")))
    batch_size: int = setting(256, integer(1))
    kernel: str = setting("linear", _one_of("linear", "rbf"))
    cka_dtype: torch.dtype = setting(torch.float32, _dtype)  # noqa: RUF009 (setting is the field specifier)
    eps: float = setting(0.05, number(0.0, 1.0, what=" (B_ij = CKA_ij >= 1 - eps)"))
    eps_sweep: Sequence[float] = setting(EPS_SWEEP, _eps_sweep)
    mask_threshold: float = setting(0.1, number(0.0, 1.0, what=" (a share of the maximum |attribution|)"))
    top_k: int = setting(10, integer(1))
    top_units: int = setting(3, integer(1))
    to_raw: Callable[[torch.Tensor], torch.Tensor] = setting(to_raw, function())  # noqa: RUF009
    from_raw: Callable[[torch.Tensor], torch.Tensor] = setting(from_raw, function())  # noqa: RUF009



@dataclasses.dataclass(frozen=True)
class MechanismSettings(Settings):
    """Stability of the global mechanisms (paper 004 App. E; not in the paper, issue 16).

    Attributes:
        eps_radius: the ε-neighbourhood reaches ``tracer.cka.eps ± eps_radius``.
        eps_step: spacing of the ε grid in that neighbourhood.
        bootstrap: resamples (with replacement) of the analysed samples.
        top: coverage of the first ``top`` mechanisms is reported per ε.
        margin: a CKA within ``margin`` of the threshold ``1 − ε`` is "near the threshold"
            (counted per sample and marked in the CKA heat map).
        seed: the bootstrap's seed.
    """

    SECTION: ClassVar[str] = "tracer.mechanisms"
    CONFIG_KEYS: ClassVar[Mapping[str, str]] = {"seed": "seed"}

    eps_radius: float = setting(0.02, number(0.0, 1.0))
    eps_step: float = setting(0.0025, number(1e-6, 1.0))
    bootstrap: int = setting(200, integer(0))
    top: int = setting(3, integer(1))
    margin: float = setting(0.01, number(0.0, 1.0))
    seed: int = setting(0, integer(0))

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.eps_radius / self.eps_step > 1000:
            self._fail("eps_step", f"gives over 2001 grid points for eps_radius {self.eps_radius}, got {self.eps_step}")


@dataclasses.dataclass(frozen=True)
class ClassifierSettings(Settings):
    """The classifier training loop's settings (paper 004 App. F: Adam, lr 1e-3).

    Attributes:
        epochs: passes over the training set (0: no training).
        batch_size: training minibatch size.
        lr: Adam's learning rate.
        seed: the batch order's and the dropout's seed.
        eval_batch_size: inputs per forward pass when evaluating.
        dropout: dropout of the built-in architecture (the target model only).
        architecture: the target model's architecture (the target model only).
    """

    CONFIG_KEYS: ClassVar[Mapping[str, str]] = {"seed": "seed"}

    epochs: int = setting(10, integer(0))
    batch_size: int = setting(64, integer(1))
    lr: float = setting(1e-3, number(0.0))
    seed: int = setting(0, integer(0))
    eval_batch_size: int = setting(1024, integer(1))
    dropout: float = setting(0.5, number(0.0, 1.0))
    architecture: str = setting("alexnet28", str)
