"""Building zip archives for tests: TorchScript archives of a model the zoo does not know, and
tampered, bomb and traversal variants of them."""

from __future__ import annotations

import io
import zipfile

import torch
from torch import nn

FEATURES, CLASSES = 16, 4


class Odd(nn.Module):
    """Not in the zoo: a tanh MLP with a scaled residual-free head."""

    def __init__(self):
        super().__init__()
        self.a = nn.Linear(FEATURES, 64)
        self.b = nn.Linear(64, CLASSES)

    def forward(self, x):
        return self.b(torch.tanh(self.a(x)) * 2.0)


def torchscript_bytes(seed: int = 0) -> bytes:
    torch.manual_seed(seed)
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(Odd().eval()), buffer)
    return buffer.getvalue()


def rezip(data: bytes, replace: dict[str, bytes] | None = None, add: dict[str, bytes] | None = None) -> bytes:
    """The same archive with some entries replaced (valid CRCs) and some added."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, (replace or {}).get(info.filename, src.read(info.filename)))
        for name, content in (add or {}).items():
            dst.writestr(name, content)
    return out.getvalue()


def entry_name(data: bytes, suffix: str) -> str:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return next(n for n in z.namelist() if n.endswith(suffix))


def zip_bomb(megabytes: int = 64) -> bytes:
    """A complete TorchScript layout (so only its sizes give it away) with one entry of zeros."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("m/code/__torch__.py", b"")
        z.writestr("m/constants.pkl", b"\x80\x02).")
        z.writestr("m/data.pkl", b"\x80\x02).")
        z.writestr("m/version", b"3")
        z.writestr("m/data/0", b"\0" * (megabytes * 1024 * 1024))
    return out.getvalue()


EVIL_PICKLE = b"\x80\x02cos\nsystem\nq\x00X\x04\x00\x00\x00trueq\x01\x85q\x02Rq\x03."


def deflated_zip(entries: list[tuple[str, int]], pattern: bytes = b"\0") -> bytes:
    """A zip of ``(name, size)`` entries of ``pattern`` repeated (zeros by default), each deflated; one
    compressed stream per distinct size is made and reused, so a zip that unpacks to gigabytes is built fast."""
    import struct
    import zlib

    streams: dict[int, tuple[bytes, int]] = {}
    out, directory = io.BytesIO(), io.BytesIO()
    for name, size in entries:
        if size not in streams:
            content = (pattern * (size // len(pattern) + 1))[:size]
            packer = zlib.compressobj(6, zlib.DEFLATED, -15)
            streams[size] = (packer.compress(content) + packer.flush(), zlib.crc32(content))
        data, crc = streams[size]
        raw_name = name.encode()
        offset = out.tell()
        out.write(struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, 8, 0, 0, crc, len(data), size, len(raw_name), 0))
        out.write(raw_name + data)
        directory.write(struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 20, 0, 8, 0, 0, crc, len(data), size,
                                    len(raw_name), 0, 0, 0, 0, 0, offset) + raw_name)
    start = out.tell()
    out.write(directory.getvalue())
    out.write(struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, len(entries), len(entries), len(directory.getvalue()), start, 0))
    return out.getvalue()
