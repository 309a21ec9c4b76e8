"""Frozen-dataclass configs: strict construction from dicts, typed overrides from strings, saving.

A typo in a key (``--set inner_lr=...`` for a field called ``inner_lrs``) is an error, never a new key; values
are converted to the field's declared type, and each config's own ``validate()`` runs before any work starts.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from typing import Any, TypeVar

from icml17.core.errors import UserError

T = TypeVar("T")


class ConfigError(UserError, ValueError):
    """A configuration value is unknown, mistyped or impossible; the message says what to change."""

    same_on_every_rank = True  # every process reads the same config: under torchrun, rank 0 alone reports it


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _coerce(name: str, value: Any, tp: Any) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        if value is None or value == "none" or value == "None":
            if type(None) in args:
                return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(name, value, arg)
            except ConfigError:
                continue
        raise ConfigError(f"{name}: cannot read {value!r} as {tp}")
    if origin is typing.Literal:
        for arg in args:
            if value == arg or str(value) == str(arg):
                return arg
        raise ConfigError(f"{name}: {value!r} is not one of {list(args)}")
    if origin in (tuple, list):
        if isinstance(value, str):
            value = [v for v in value.split(",") if v != ""]
        item = args[0] if args else Any
        seq = [_coerce(name, v, item) for v in value]
        return tuple(seq) if origin is tuple else seq
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{name}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ConfigError(f"{name}: expected an integer, got {value!r}")
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{name}: expected an integer, got {value!r}") from None
    if tp is float:
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{name}: expected a number, got {value!r}") from None
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{name}: expected a string, got {value!r}")
        return value
    return value


def check_lr_schedule(lr: float, lr_final: float, grad_clip: float) -> None:
    """The optimiser fields of a linearly decayed schedule with norm clipping: refused here, with the fix, rather
    than by the optimiser's traceback (lr <= 0), a division by zero or a silent divergence (lr_final < 0)."""
    for name, value in (("lr", lr), ("lr_final", lr_final), ("grad_clip", grad_clip)):
        if not math.isfinite(value):
            raise ConfigError(f"{name} must be a finite number, got {value}")
    if not lr > 0:
        raise ConfigError(f"lr must be > 0 (e.g. 1e-3), got {lr}", param="lr")
    if not 0 <= lr_final <= lr:
        raise ConfigError(f"lr_final must lie in [0, lr={lr}] (the rate decays linearly from lr to it), got {lr_final}")
    if not grad_clip > 0:
        raise ConfigError(f"grad_clip must be > 0 (the largest gradient norm kept), got {grad_clip}")


def config_from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """Build ``cls`` from ``data``, converting values to the declared field types, then validate it.

    Args:
        cls: a config dataclass (its ``validate()`` method, if any, is called).
        data: field -> value; strings are read as the field's type (``"0.1"``, ``"true"``, ``"40,40"``).

    Returns:
        The config.

    Raises:
        ConfigError: an unknown key, a value of the wrong type, or what ``validate()`` refuses.
    """
    types = _field_types(cls)
    unknown = sorted(set(data) - set(types))
    if unknown:
        raise ConfigError(f"unknown config key(s) {unknown} for {cls.__name__}; valid keys: {sorted(types)}")
    cfg = cls(**{k: _coerce(k, v, types[k]) for k, v in data.items()})
    validate = getattr(cfg, "validate", None)
    if callable(validate):
        validate()
    return cfg


def override_config(cfg: T, overrides: dict[str, Any] | None = None, **kwargs: Any) -> T:
    """``cfg`` with some fields replaced, converted and validated as :func:`config_from_dict` does.

    Unlike ``dataclasses.replace``, a typo in a key is an error and the result is validated.

    Args:
        cfg: a config dataclass.
        overrides: field -> value (strings are read as the field's type).
        **kwargs: more fields as keywords; those whose value is None are ignored (unset command-line flags).

    Returns:
        A new config of the same class.

    Raises:
        ConfigError: an unknown key, a wrong type, or an impossible value.
    """
    merged = {**config_to_dict(cfg), **(overrides or {}), **{k: v for k, v in kwargs.items() if v is not None}}
    return config_from_dict(type(cfg), merged)


def config_value(v: Any) -> Any:
    """A config value as JSON holds it (tuples as lists)."""
    return list(v) if isinstance(v, tuple) else v


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """A config's fields as JSON holds them (tuples as lists); :func:`config_from_dict` reads it back.

    Args:
        cfg: a config dataclass.

    Returns:
        Field -> value.
    """
    return {k: config_value(v) for k, v in dataclasses.asdict(cfg).items()}
