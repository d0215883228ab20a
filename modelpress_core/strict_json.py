"""JSON as RFC 8259 says it should be interchanged: no duplicate member names, no NaN or Infinity.

Python's ``json`` and pydantic's parser both keep the *last* of two members with the same name, so
``{"amount": 0.1, "amount": 0.9}`` means whatever the reader's parser decides; a client-side check
and the service could read different specs from the same bytes. ``loads`` refuses such a document.
"""

from __future__ import annotations

import json
import math
from typing import Any


class DuplicateKey(ValueError):
    """An object has two members with the same name (at any depth)."""

    def __init__(self, key: str):
        super().__init__(f"duplicate key {key!r}")
        self.key = key


class NonFiniteNumber(ValueError):
    """NaN, Infinity, or a number too large for a double (1e400)."""


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise DuplicateKey(key)
        result[key] = value
    return result


def _constant(name: str) -> float:
    raise NonFiniteNumber(f"{name} is not a JSON number")


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise NonFiniteNumber(f"{text} is too large for a number")
    return value


def loads(text: str | bytes) -> Any:
    """``json.loads``, refusing duplicate keys (DuplicateKey) and non-finite numbers (NonFiniteNumber);
    malformed text raises json.JSONDecodeError (a ValueError) as usual."""
    return json.loads(text, object_pairs_hook=_object, parse_constant=_constant, parse_float=_float)
