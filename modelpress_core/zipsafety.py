"""Zip archives checked before anything else reads them, cheapest checks first.

1. the end-of-central-directory record: entry count and directory size, before ``zipfile`` builds
   anything from the directory;
2. the central directory: entry names (traversal, duplicates), encryption, then what the caller
   accepts (``accept``: a TorchScript layout, or an ``.npz`` of ``inputs.npy``/``labels.npy``);
3. declared sizes: the total, and the compression ratio per entry (every entry over
   ``RATIO_FLOOR_BYTES``) and overall;
4. only then is every entry streamed through once, CRC checked, against the upload's
   ``InspectionBudget`` (bytes inflated, CPU seconds), so a zip that lies about its sizes or costs
   too much to inflate is refused part-way.

Torch-free; nothing is extracted.
"""

from __future__ import annotations

import lzma
import struct
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from modelpress_core.budget import InspectionBudget
from modelpress_core.errors import InvalidUpload, UnsafeUpload

CHUNK = 1024 * 1024
RATIO_FLOOR_BYTES = 64 * 1024  # entries (and archives) that unpack to less may have any ratio
DIRECTORY_BYTES_PER_ENTRY = 512  # central directory allowance: 46-byte record + name + extra fields


@dataclass(frozen=True)
class ZipLimits:
    max_entries: int = 10_000
    max_total_bytes: int = 4 * 1024**3  # uncompressed, and bytes inflated per upload
    max_ratio: float = 200.0  # uncompressed / compressed, per entry over the floor and overall
    max_cpu_s: float = 10.0  # CPU seconds of checks per upload

    def budget(self) -> InspectionBudget:
        return InspectionBudget(self.max_cpu_s, self.max_total_bytes)


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


def check_zip(
    path: Path, limits: ZipLimits, *, accept: Callable[[list[str]], None] | None = None,
    budget: InspectionBudget | None = None,
) -> list[str]:
    """Return the entry names of a safe zip; raise ``UnsafeUpload`` / ``InvalidUpload`` otherwise.

    ``accept(names)`` raises the caller's problem for an archive it does not want; it runs before
    anything is inflated."""
    budget = budget or limits.budget()
    try:
        with open(path, "rb") as f:
            _check_directory_record(f, limits)
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            _check_names(infos, limits)
            names = [i.filename for i in infos]
            if accept is not None:
                accept(names)
            _check_declared(infos, limits)
            _check_actual(archive, infos, budget)
            return names
    except (
        zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, lzma.LZMAError, struct.error,
        NotImplementedError, EOFError, OSError, RuntimeError, ValueError,
    ) as exc:
        raise InvalidUpload(f"corrupt or unreadable zip archive: {exc}") from None


def _check_directory_record(f, limits: ZipLimits) -> None:
    """Entry count and central directory size from the end record, before ``zipfile`` parses the directory."""
    record = zipfile._EndRecData(f)  # noqa: SLF001 - the stdlib's own end-record reader (zip64 aware)
    if not record:
        raise zipfile.BadZipFile("no end of central directory record")
    entries, directory = record[zipfile._ECD_ENTRIES_TOTAL], record[zipfile._ECD_SIZE]  # noqa: SLF001
    if entries > limits.max_entries:
        raise UnsafeUpload(f"the zip has {entries} entries (limit {limits.max_entries})", detected="zip-bomb")
    if directory > DIRECTORY_BYTES_PER_ENTRY * limits.max_entries:
        raise UnsafeUpload(
            f"the zip's central directory is {directory} bytes (limit {DIRECTORY_BYTES_PER_ENTRY * limits.max_entries})",
            detected="zip-bomb",
        )


def _check_names(infos: list[zipfile.ZipInfo], limits: ZipLimits) -> None:
    if len(infos) > limits.max_entries:
        raise UnsafeUpload(f"the zip has {len(infos)} entries (limit {limits.max_entries})", detected="zip-bomb")
    seen: set[str] = set()
    for info in infos:
        why = unsafe_name(info.filename)
        if why:
            raise UnsafeUpload(f"zip entry name {info.filename[:200]!r} is unsafe: {why}", detected="path-traversal")
        if info.filename in seen:
            raise UnsafeUpload(f"zip entry {info.filename[:200]!r} appears twice", detected="duplicate-entry")
        seen.add(info.filename)
        if info.flag_bits & 0x1:
            raise InvalidUpload(f"zip entry {info.filename[:200]!r} is encrypted")


def _check_declared(infos: list[zipfile.ZipInfo], limits: ZipLimits) -> None:
    total = sum(i.file_size for i in infos)
    if total > limits.max_total_bytes:
        raise UnsafeUpload(f"the zip unpacks to {total} bytes (limit {limits.max_total_bytes})", detected="zip-bomb")
    for info in infos:
        if _too_compressed(info.file_size, info.compress_size, limits.max_ratio):
            raise UnsafeUpload(
                f"zip entry {info.filename[:200]!r} expands {info.file_size / max(info.compress_size, 1):.0f}x "
                f"(limit {limits.max_ratio:.0f}x for entries over {RATIO_FLOOR_BYTES} bytes)",
                detected="zip-bomb",
            )
    compressed = sum(i.compress_size for i in infos)
    if _too_compressed(total, compressed, limits.max_ratio):
        raise UnsafeUpload(
            f"the zip's {len(infos)} entries expand {total / max(compressed, 1):.0f}x together "
            f"(limit {limits.max_ratio:.0f}x)",
            detected="zip-bomb",
        )


def _too_compressed(size: int, compressed: int, max_ratio: float) -> bool:
    return size > RATIO_FLOOR_BYTES and size > max_ratio * max(compressed, 1)


def _check_actual(archive: zipfile.ZipFile, infos: list[zipfile.ZipInfo], budget: InspectionBudget) -> None:
    for info in infos:
        seen = 0
        with archive.open(info) as entry:
            while chunk := entry.read(CHUNK):
                seen += len(chunk)
                if seen > info.file_size:
                    raise UnsafeUpload(f"zip entry {info.filename[:200]!r} unpacks to more than it declares", detected="zip-bomb")
                budget.spend(len(chunk))
        budget.spend()
