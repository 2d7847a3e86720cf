"""Checking plain (YAML) values against dataclass field types, for the strict config loaders."""

from __future__ import annotations

import re
import types
import typing

import yaml


class _Loader(yaml.SafeLoader):
    """YAML 1.1's safe loader, reading ``1e-3`` as the number YAML 1.2 (and any user) means, not as
    the string 1.1 makes of an exponent without a dot."""


_Loader.add_implicit_resolver("tag:yaml.org,2002:float", re.compile(r"^[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)[eE][-+]?[0-9]+$"),
                              list("-+0123456789."))


def load_yaml(text: str):
    """Plain values from YAML text (``yaml.safe_load``, with 1.2's exponent floats)."""
    return yaml.load(text, Loader=_Loader)


def is_number(value) -> bool:
    """An int or a float, not a bool (YAML's true is an int to Python)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def typed(value, hint, where: str):
    """``value`` as a field of type ``hint``: ints are taken for floats and lists for tuples;
    anything else of the wrong type is a ValueError that says ``where``."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):  # the first alternative that fits
        for option in typing.get_args(hint):
            try:
                return typed(value, option, where)
            except ValueError:
                pass
        names = " or ".join("a list" if typing.get_origin(o) is tuple else o.__name__ for o in typing.get_args(hint))
        raise ValueError(f"{where} must be {names}, got {value!r}")
    if typing.get_origin(hint) is tuple:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{where} must be a list, got {value!r}")
        return tuple(typed(item, typing.get_args(hint)[0], where) for item in value)
    if hint is float and is_number(value):
        return float(value)
    expected = typing.get_origin(hint) or hint
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        raise ValueError(f"{where} must be {expected.__name__}, got {value!r}")
    return value
