"""Compare an uploaded state_dict's key -> shape map with the zoo.

``expected_shapes`` builds an architecture on the ``meta`` device (no memory for weights),
``compare_shapes`` reports what stops a strict load, and ``suggest_architectures`` ranks
zoo entries (default configs) by how well their keys match an upload.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import cache

import torch

from modelpress_torch.architectures.registry import Architecture, get_architecture, list_architectures

log = logging.getLogger(__name__)

Shapes = dict[str, list[int]]


def shapes_of(state_dict: Mapping[str, torch.Tensor]) -> Shapes:
    """Key -> shape (as a list) of a state_dict."""
    return {key: list(tensor.shape) for key, tensor in state_dict.items()}


def expected_shapes(name: str, config: dict | None = None) -> Shapes:
    """The state_dict key -> shape map of architecture ``name`` built with ``config``."""
    with torch.device("meta"):
        model = get_architecture(name).build(config)
    return shapes_of(model.state_dict())


@dataclass(frozen=True)
class ShapeMismatch:
    key: str
    expected: list[int]
    got: list[int]


@dataclass
class KeyMatchReport:
    """What ``load_state_dict(strict=True)`` would complain about."""

    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[ShapeMismatch] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def to_dict(self) -> dict:
        return {**asdict(self), "ok": self.ok}


def compare_shapes(expected: Mapping[str, Sequence[int]], got: Mapping[str, Sequence[int]]) -> KeyMatchReport:
    """Missing, unexpected and shape-mismatched keys of ``got`` against ``expected``."""
    return KeyMatchReport(
        missing=[k for k in expected if k not in got],
        unexpected=[k for k in got if k not in expected],
        mismatched=[
            ShapeMismatch(k, list(expected[k]), list(got[k]))
            for k in expected
            if k in got and list(expected[k]) != list(got[k])
        ],
    )


def match_architecture(name: str, config: dict | None, shapes: Mapping[str, Sequence[int]]) -> KeyMatchReport:
    """Compare an upload's shapes with architecture ``name`` built with ``config``."""
    return compare_shapes(expected_shapes(name, config), shapes)


@dataclass(frozen=True)
class Suggestion:
    name: str
    score: float  # 0..1, see ``rank_architectures``
    key_overlap: float  # Jaccard of exact key names
    shape_agreement: float  # fraction of shared keys whose shapes agree


_INDEX = re.compile(r"(?<=\.)\d+(?=\.|$)|^\d+(?=\.)")


def _key_pattern(key: str) -> str:
    """Numeric path parts become ``#``: ``layer1.0.conv1.weight`` -> ``layer1.#.conv1.weight``."""
    return _INDEX.sub("#", key)


def _jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a or b else 0.0


@cache
def _default_shapes(arch: Architecture) -> Shapes | None:
    """Shapes of ``arch`` with its default config (cached; treat as read-only)."""
    try:
        with torch.device("meta"):
            return shapes_of(arch.build(None).state_dict())
    except Exception:  # needs a config, or a plugin builder that fails on meta
        log.debug("cannot build %s with its default config on meta", arch.name, exc_info=True)
        return None


def rank_architectures(shapes: Mapping[str, Sequence[int]], threshold: float = 0.5) -> list[Suggestion]:
    """Zoo architectures whose default-config keys resemble ``shapes``, best first.

    ``score`` is ``(2 * exact + pattern) / 3``: the Jaccard index of exact key names, weighted
    twice, and that of key patterns (numeric indices masked), so a shallower or deeper variant
    (e.g. a 6-layer BERT against the 12-layer default) still ranks. Ties go to the entry whose
    shared keys agree in shape more often. Entries below ``threshold`` are dropped.
    """
    keys = set(shapes)
    patterns = {_key_pattern(k) for k in keys}
    ranked = []
    for arch in list_architectures():
        expected = _default_shapes(arch)
        if expected is None:
            continue
        key_overlap = _jaccard(keys, set(expected))
        score = (2 * key_overlap + _jaccard(patterns, {_key_pattern(k) for k in expected})) / 3
        if score < threshold:
            continue
        shared = keys & set(expected)
        agree = sum(list(shapes[k]) == expected[k] for k in shared)
        ranked.append(Suggestion(arch.name, score, key_overlap, agree / len(shared) if shared else 0.0))
    return sorted(ranked, key=lambda s: (-s.score, -s.shape_agreement, s.name))


def suggest_architectures(shapes: Mapping[str, Sequence[int]], threshold: float = 0.5) -> list[str]:
    """Names from ``rank_architectures``, best first."""
    return [s.name for s in rank_architectures(shapes, threshold)]
