"""A bounded look at JSON bytes before anything is built from them.

``scan_object`` makes one vectorised pass (numpy, fixed-size chunks) over a JSON object's bytes:
strings are masked (a quote counts unless an odd run of backslashes precedes it), the bracket
depth is a running sum of ``{[`` minus ``}]`` outside strings, and the commas at depth 1 split the
object into its members. It refuses nesting deeper than ``max_depth`` before ``json.loads`` ever
sees the bytes, so no parser can recurse on them.

The pass is exact on every valid prefix of a JSON text (outside strings a backslash is already a
syntax error), so ``json.loads`` on any member it returns never nests deeper than the pass saw.
``iter_members`` then parses the object a few members at a time: peak memory is the bytes plus one
batch (64 KiB, or one larger member) and what the caller keeps, not a Python object tree of the whole text.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from modelpress_core import strict_json

CHUNK = 256 * 1024
WHITESPACE = b" \t\r\n"
QUOTE, BACKSLASH, COMMA = ord('"'), ord("\\"), ord(",")
OPENS, CLOSES = (ord("{"), ord("[")), (ord("}"), ord("]"))


class JsonShapeError(ValueError):
    """The bytes are not a JSON object of the allowed shape (too deep, unbalanced, too many members)."""


@dataclass(frozen=True)
class ObjectScan:
    start: int  # index of the opening brace
    end: int  # index of the closing brace
    commas: np.ndarray  # indices of the commas between the object's members (depth 1, outside strings)
    members: int
    max_depth: int

    def spans(self) -> Iterator[tuple[int, int]]:
        """(begin, end) of each member's bytes, ``"key": value`` without the separating commas."""
        if self.members == 0:
            return
        begin = self.start + 1
        for comma in self.commas.tolist():
            yield begin, comma
            begin = comma + 1
        yield begin, self.end


def scan_object(raw: bytes, *, max_depth: int, max_members: int) -> ObjectScan:
    """Check that ``raw`` is one JSON object nested at most ``max_depth`` deep with at most
    ``max_members`` members; return where its members are. Raises ``JsonShapeError``."""
    start, end = _first_non_blank(raw), _last_non_blank(raw)
    if end <= start or raw[start] != OPENS[0] or raw[end] != CLOSES[0]:
        raise JsonShapeError("not a JSON object")
    depth, deepest, in_string, backslashes = 0, 0, 0, 0
    commas: list[np.ndarray] = []
    n_commas = 0
    for offset in range(start, end + 1, CHUNK):
        chunk = np.frombuffer(raw, np.uint8, count=min(CHUNK, end + 1 - offset), offset=offset)
        is_backslash = chunk == BACKSLASH
        if is_backslash.any():
            index = np.arange(chunk.size, dtype=np.int64)
            last_plain = np.maximum.accumulate(np.where(is_backslash, -1, index))
            before = np.empty_like(last_plain)  # the last non-backslash strictly before each position
            before[0] = -1
            before[1:] = last_plain[:-1]
            run = index - 1 - before + np.where(before < 0, backslashes, 0)
            quotes = (chunk == QUOTE) & (run % 2 == 0)
            trailing = backslashes + chunk.size if last_plain[-1] < 0 else chunk.size - 1 - int(last_plain[-1])
        else:
            quotes = chunk == QUOTE
            quotes[0] &= backslashes % 2 == 0
            trailing = 0
        inside = (np.cumsum(quotes, dtype=np.int32) + in_string) % 2 == 1
        step = ((chunk == OPENS[0]) | (chunk == OPENS[1])).view(np.int8) - ((chunk == CLOSES[0]) | (chunk == CLOSES[1])).view(np.int8)
        step[inside] = 0
        depths = np.cumsum(step, dtype=np.int32) + depth
        top = int(depths.max())
        if top > max_depth:
            raise JsonShapeError(f"nested more than {max_depth} deep")
        last = chunk.size - 1 if offset + chunk.size - 1 == end else chunk.size
        if int(depths[:last].min(initial=1)) < 1:
            raise JsonShapeError("unbalanced brackets")
        found = np.flatnonzero((chunk == COMMA) & ~inside & (depths == 1)) + offset
        n_commas += found.size
        if n_commas + 1 > max_members:
            raise JsonShapeError(f"more than {max_members} members")
        commas.append(found)
        deepest = max(deepest, top)
        depth, in_string, backslashes = int(depths[-1]), int(inside[-1]), trailing
    if depth != 0 or in_string:
        raise JsonShapeError("unbalanced brackets or an unterminated string")
    found_all = np.concatenate(commas)
    members = 0 if found_all.size == 0 and _first_non_blank(raw, start + 1) == end else found_all.size + 1
    return ObjectScan(start, end, found_all, members, deepest)


def _first_non_blank(raw: bytes, at: int = 0) -> int:
    """Index of the first non-whitespace byte from ``at`` (len(raw) if none), without copying ``raw``."""
    while at < len(raw):
        piece = raw[at:at + 4096]
        blank = len(piece) - len(piece.lstrip(WHITESPACE))
        if blank < len(piece):
            return at + blank
        at += len(piece)
    return len(raw)


def _last_non_blank(raw: bytes) -> int:
    """Index of the last non-whitespace byte (-1 if none), without copying ``raw``."""
    end = len(raw)
    while end > 0:
        piece = raw[max(0, end - 4096):end]
        kept = len(piece.rstrip(WHITESPACE))
        if kept:
            return end - len(piece) + kept - 1
        end -= len(piece)
    return -1


def iter_members(raw: bytes, scan: ObjectScan, *, max_member_bytes: int, batch_bytes: int = 64 * 1024) -> Iterator[tuple[str, object]]:
    """Parse the scanned object a few members at a time (at most ``batch_bytes``, or one member of at
    most ``max_member_bytes``): yields (key, value). A key that appears twice is refused."""
    seen: set[str] = set()
    batch_begin = batch_end = None
    count = 0
    for begin, end in scan.spans():
        if end - begin > max_member_bytes:
            raise JsonShapeError(f"a member of {end - begin} bytes (limit {max_member_bytes})")
        if batch_begin is not None and end - batch_begin > batch_bytes:
            yield from _parse_batch(raw, batch_begin, batch_end, count, seen)
            batch_begin = None
        if batch_begin is None:
            batch_begin, count = begin, 0
        batch_end, count = end, count + 1
    if batch_begin is not None:
        yield from _parse_batch(raw, batch_begin, batch_end, count, seen)


def _parse_batch(raw: bytes, begin: int, end: int, count: int, seen: set[str]) -> Iterator[tuple[str, object]]:
    try:
        members = strict_json.loads(b"{" + raw[begin:end] + b"}")  # duplicate keys and NaN refused at any depth
    except strict_json.DuplicateKey as exc:
        raise JsonShapeError(f"the key {str(exc.key)[:80]!r} appears twice in one object") from None
    except ValueError as exc:  # not UTF-8, not JSON, NaN/Infinity
        raise JsonShapeError(f"not JSON ({str(exc)[:200]})") from None
    if len(members) != count or not seen.isdisjoint(members):
        raise JsonShapeError("a key appears twice")
    seen.update(members)
    yield from members.items()
