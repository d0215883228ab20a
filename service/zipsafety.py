"""Zip archives checked before anything else reads them: entry count, sizes, ratios, entry names.

Torch-free and decompression-bounded: declared sizes are checked first (cheap), then every entry
is streamed through with a byte budget, so a zip that lies about its sizes is caught too, and the
CRC of every entry is verified (``zipfile`` checks it at the end of each entry).
"""

from __future__ import annotations

import lzma
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from service.domain.errors import InvalidUpload, UnsafeUpload

CHUNK = 1024 * 1024


@dataclass(frozen=True)
class ZipLimits:
    max_entries: int = 10_000
    max_total_bytes: int = 4 * 1024**3  # uncompressed
    max_ratio: float = 200.0  # uncompressed / compressed, per entry and overall


def unsafe_name(name: str) -> str | None:
    """Why an entry name could write outside an extraction directory, or None."""
    if not name or "\x00" in name:
        return "empty name or NUL byte"
    if "\\" in name:
        return "backslash in name"
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return "absolute path"
    if ".." in PurePosixPath(name).parts:
        return "'..' path component"
    return None


def check_zip(path: Path, limits: ZipLimits) -> list[str]:
    """Return the entry names of a safe zip; raise ``UnsafeUpload`` / ``InvalidUpload`` otherwise."""
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            _check_declared(infos, limits)
            _check_actual(archive, infos, limits)
            return [i.filename for i in infos]
    except (
        zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, lzma.LZMAError, struct.error,
        NotImplementedError, EOFError, OSError, RuntimeError, ValueError,
    ) as exc:
        raise InvalidUpload(f"corrupt or unreadable zip archive: {exc}") from None


def _check_declared(infos: list[zipfile.ZipInfo], limits: ZipLimits) -> None:
    if len(infos) > limits.max_entries:
        raise UnsafeUpload(f"the zip has {len(infos)} entries (limit {limits.max_entries})", detected="zip-bomb")
    seen: set[str] = set()
    for info in infos:
        why = unsafe_name(info.filename)
        if why:
            raise UnsafeUpload(f"zip entry name {info.filename!r} is unsafe: {why}", detected="path-traversal")
        if info.filename in seen:
            raise UnsafeUpload(f"zip entry {info.filename!r} appears twice", detected="duplicate-entry")
        seen.add(info.filename)
        if info.flag_bits & 0x1:
            raise InvalidUpload(f"zip entry {info.filename!r} is encrypted")
    total = sum(i.file_size for i in infos)
    if total > limits.max_total_bytes:
        raise UnsafeUpload(f"the zip unpacks to {total} bytes (limit {limits.max_total_bytes})", detected="zip-bomb")
    for info in infos:
        if info.file_size > 1024 * 1024 and info.file_size > limits.max_ratio * max(info.compress_size, 1):
            raise UnsafeUpload(
                f"zip entry {info.filename!r} expands {info.file_size / max(info.compress_size, 1):.0f}x "
                f"(limit {limits.max_ratio:.0f}x)",
                detected="zip-bomb",
            )


def _check_actual(archive: zipfile.ZipFile, infos: list[zipfile.ZipInfo], limits: ZipLimits) -> None:
    total = 0
    for info in infos:
        seen = 0
        with archive.open(info) as entry:
            while chunk := entry.read(CHUNK):
                seen += len(chunk)
                total += len(chunk)
                if seen > info.file_size or total > limits.max_total_bytes:
                    raise UnsafeUpload(f"zip entry {info.filename!r} unpacks to more than it declares", detected="zip-bomb")
