"""The typed messages between the worker and its sandbox child: one JSON object per line.

The worker writes one ``Request`` on the request pipe and closes it; the child answers on its own
pipe with any number of ``Progress``/``Log`` lines, then one ``Result`` or one ``Failure``. No line
may exceed ``MAX_MESSAGE_BYTES``; the reader treats a longer one as a protocol violation. The child
runs user code, so the worker validates every field it reads (``parse``), and never trusts a path.

Standard library only: the child imports this before its sandbox is up.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any

from modelpress_core.errors import MAX_DETAIL_CHARS, bounded_text

MAX_MESSAGE_BYTES = 16 * 2**20  # a result carries the metrics (per-layer tables of large models)
MAX_TEXT_CHARS = 500


class ProtocolError(Exception):
    """The child broke the protocol (a malformed, unknown or oversized message)."""


@dataclass
class Request:
    spec: dict
    model_path: str
    data: dict[str, list[str]]  # part -> [path, format]
    work_dir: str
    warmup: int
    runs: int
    input_sha256: str
    data_sha256: dict[str, str]
    threads: int  # torch threads; 0 = torch's default
    delay_s: float = 0.0
    delay_cancellable: bool = True
    delay_release: str | None = None  # test-only: the test delay ends when this file exists
    search_max_seconds: float | None = None
    confine: bool = True  # False only with MODELPRESS_SANDBOX=off (and ALLOW_UNSANDBOXED_MODELS=true)
    read: list[str] = field(default_factory=list)
    list_only: list[str] = field(default_factory=list)
    read_write_files: list[str] = field(default_factory=list)
    parent_pid: int = 0
    probe: bool = False  # confine, answer Ready, exit: the worker's start-up check


@dataclass
class Ready:
    """The child is confined (or was told not to be) and is about to import torch."""
    landlock_abi: int
    network_isolated: bool
    confined: bool
    kind: str = "ready"


@dataclass
class Progress:
    phase: str
    step: int | None
    fraction: float
    message: str
    kind: str = "progress"


@dataclass
class Log:
    message: str
    level: str = "info"
    kind: str = "log"


@dataclass
class OutputFile:
    name: str
    format: str
    media_type: str
    path: str  # relative to the work dir


@dataclass
class Result:
    outputs: list[OutputFile]
    metrics: dict
    summary: dict
    kind: str = "result"


@dataclass
class Failure:
    type: str
    title: str
    detail: str
    status: int = 500
    kind: str = "error"


Message = Ready | Progress | Log | Result | Failure


def encode(message: Any) -> bytes:
    line = json.dumps(asdict(message), default=str, separators=(",", ":")).encode() + b"\n"
    if len(line) > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"a {message.kind} message of {len(line)} bytes is over the {MAX_MESSAGE_BYTES}-byte cap")
    return line


def write(fd: int, message: Any) -> None:
    data = memoryview(encode(message))
    while data:
        data = data[os.write(fd, data):]


def read_request(fd: int) -> Request:
    chunks, total = [], 0
    while chunk := os.read(fd, 1 << 16):
        chunks.append(chunk)
        total += len(chunk)
        if total > MAX_MESSAGE_BYTES:
            raise ProtocolError("the request is over the size cap")
    return Request(**json.loads(b"".join(chunks)))


def _text(value: Any, limit: int = MAX_TEXT_CHARS) -> str:
    if not isinstance(value, str):
        raise ProtocolError(f"expected a string, got {type(value).__name__}")
    return bounded_text(value, limit)  # cut with a marker that says so, like every problem


def parse(line: bytes) -> Message:
    """One line from the child, validated field by field (the child is not trusted)."""
    try:
        raw = json.loads(line)
    except ValueError:
        raise ProtocolError("a line that is not JSON") from None
    if not isinstance(raw, dict):
        raise ProtocolError("a message that is not an object")
    kind = raw.get("kind")
    try:
        if kind == "ready":
            return Ready(landlock_abi=int(raw["landlock_abi"]), network_isolated=bool(raw["network_isolated"]),
                         confined=bool(raw["confined"]))
        if kind == "progress":
            step = raw.get("step")
            fraction = float(raw["fraction"])
            return Progress(phase=_text(raw["phase"], 40), step=None if step is None else int(step),
                            fraction=min(1.0, max(0.0, fraction)) if fraction == fraction else 0.0,
                            message=_text(raw["message"]))
        if kind == "log":
            level = raw.get("level", "info")
            return Log(message=_text(raw["message"], MAX_DETAIL_CHARS),
                       level=level if level in ("debug", "info", "warning", "error") else "info")
        if kind == "result":
            outputs = raw["outputs"]
            if not isinstance(outputs, list) or not isinstance(raw["metrics"], dict) or not isinstance(raw["summary"], dict):
                raise ProtocolError("a result with fields of the wrong types")
            return Result(outputs=[OutputFile(name=_text(o["name"], 128), format=_text(o["format"], 40),
                                              media_type=_text(o["media_type"], 100), path=_text(o["path"], 256))
                                   for o in outputs],
                          metrics=raw["metrics"], summary=raw["summary"])
        if kind == "error":
            status = int(raw.get("status", 500))
            return Failure(type=_text(raw["type"], 200), title=_text(raw["title"], 200),
                           detail=_text(raw["detail"], MAX_DETAIL_CHARS), status=status if 400 <= status <= 599 else 500)
    except (KeyError, TypeError, ValueError) as exc:
        raise ProtocolError(f"a malformed {kind!s:.20} message ({type(exc).__name__})") from None
    raise ProtocolError(f"an unknown message kind {str(kind)[:20]!r}")


class LineReader:
    """Splits a byte stream into lines, refusing any line over the cap (even before its newline arrives)."""

    def __init__(self, limit: int = MAX_MESSAGE_BYTES):
        self.limit = limit
        self.buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        self.buffer += data
        lines = []
        while (end := self.buffer.find(b"\n")) >= 0:
            line = bytes(self.buffer[:end])
            del self.buffer[:end + 1]
            if len(line) > self.limit:
                raise ProtocolError(f"a message over the {self.limit}-byte cap")
            lines.append(line)
        if len(self.buffer) > self.limit:
            raise ProtocolError(f"a message over the {self.limit}-byte cap")
        return lines
