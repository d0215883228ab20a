"""The packed transport format (``.mpk``): Deep Compression's storage, documented in ``docs/packed-format.md``.

A fixed 20-byte prefix, a JSON header (tensor table + architecture manifest), then a payload of
streams. Per tensor one encoding:

- ``raw``: the exact little-endian bytes;
- ``shared``: a codebook (the tensor's distinct values, at most 256) and one ``code_bits`` code per element;
- ``sparse``: relative index encoding of the nonzero positions (gaps of ``index_bits`` bits, a
  filler zero entry when a gap overflows) and per entry either a codebook code or the raw value.

Integer streams (codes, gaps) are bit-packed MSB-first or stored one per byte, and every stream may
be zstd-compressed (the entropy coder). Everything works on bit patterns, so a round trip is
bit-exact by construction; "zero" means the all-zero bit pattern (+0.0).

Torch-free: numpy and zstandard only. ``unpack(path)`` rebuilds a state_dict; no pickle anywhere.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

MAGIC = b"\x89MPK\r\n\x1a\n"
VERSION = 1
FORMAT = "modelpress.packed/v1"
PREFIX = struct.Struct("<8sHHII")  # magic, version, flags (0), header length, CRC-32 of the header
MAX_HEADER_BYTES = 64 * 1024 * 1024
FLAG_HEADER_ZSTD = 0x1  # flags bit 0: the header is one zstd frame (of the JSON text)
MAX_CODEBOOK = 256  # a tensor with more distinct values is not shared
MEDIA_TYPE = "application/vnd.modelpress.packed"
BIG_STREAM = 1 << 20  # streams over 1 MiB are compressed at zstd level 9 at most

# dtype name (safetensors spelling) -> numpy storage dtype (little-endian). BF16 is stored as its 16 bits.
DTYPES: dict[str, str] = {
    "F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2",
    "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1", "U8": "u1", "BOOL": "?",
}
FLOAT_DTYPES = frozenset({"F64", "F32", "F16", "BF16"})
_UINT = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}
_NUMPY_NAMES = {np.dtype(v).newbyteorder("<") if np.dtype(v).itemsize > 1 else np.dtype(v): k for k, v in DTYPES.items() if k != "BF16"}


class PackedFormatError(ValueError):
    """A file that is not a valid packed file: wrong magic, truncated, corrupted (checksum), inconsistent."""


# ---------------------------------------------------------------------------------------------- bits


def pack_bits(values: np.ndarray, bits: int) -> bytes:
    """Each value in ``bits`` bits, most significant bit first, concatenated; the last byte padded with 0 bits."""
    if not 1 <= bits <= 16:
        raise ValueError(f"bits must be 1..16, not {bits}")
    values = np.asarray(values)
    out = []
    for start in range(0, len(values), 1 << 20):
        chunk = values[start : start + (1 << 20)].astype(">u2").view(np.uint8).reshape(-1, 2)
        out.append(np.unpackbits(chunk, axis=1)[:, 16 - bits :].ravel())
    return np.packbits(np.concatenate(out) if out else np.zeros(0, np.uint8)).tobytes()


def unpack_bits(data: bytes, bits: int, count: int) -> np.ndarray:
    """Inverse of ``pack_bits``: ``count`` values as uint16."""
    if len(data) != (count * bits + 7) // 8:
        raise PackedFormatError(f"bit-packed stream holds {len(data)} bytes, {count} values of {bits} bits need {(count * bits + 7) // 8}")
    stream = np.unpackbits(np.frombuffer(data, np.uint8), count=count * bits).reshape(count, bits)
    out = np.empty(count, np.uint16)
    for start in range(0, count, 1 << 20):
        chunk = stream[start : start + (1 << 20)]
        padded = np.zeros((len(chunk), 16), np.uint8)
        padded[:, 16 - bits :] = chunk
        out[start : start + len(chunk)] = np.packbits(padded, axis=1).view(">u2").ravel()
    return out


# ----------------------------------------------------------------------------------- relative indexes


def relative_index(positions: np.ndarray, index_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Deep Compression's relative index encoding of increasing ``positions``.

    Returns ``(stored, real)``: per entry the stored value ``gap - 1`` (gap = position minus the previous
    entry's position, the first counted from -1), at most ``2**index_bits - 1``; a gap larger than
    ``2**index_bits`` is bridged by filler entries (``real`` False) whose value is zero.
    """
    span = 1 << index_bits
    gaps = np.diff(positions.astype(np.int64), prepend=-1)
    per = (gaps - 1) // span + 1  # entries per real position: fillers + itself
    total = int(per.sum())
    stored = np.full(total, span - 1, np.uint16)
    last = np.cumsum(per) - 1  # where each real entry lands
    stored[last] = (gaps - span * (per - 1) - 1).astype(np.uint16)
    real = np.zeros(total, bool)
    real[last] = True
    return stored, real


def entries_needed(positions: np.ndarray, index_bits: int) -> int:
    gaps = np.diff(positions.astype(np.int64), prepend=-1)
    return int(((gaps - 1) >> index_bits).sum()) + len(positions)


def positions_from_gaps(stored: np.ndarray, numel: int) -> np.ndarray:
    positions = np.cumsum(stored.astype(np.int64) + 1) - 1
    if len(positions) and positions[-1] >= numel:
        raise PackedFormatError(f"sparse indexes run past the tensor's {numel} elements")
    return positions


# ------------------------------------------------------------------------------------------- writing


@dataclass
class _Payload:
    chunks: list[bytes] = field(default_factory=list)
    size: int = 0

    def add(self, data: bytes, raw_length: int, compression: str, **extra: Any) -> dict[str, Any]:
        entry = {"offset": self.size, "length": len(data), "crc32": zlib.crc32(data), "compression": compression,
                 "raw_length": raw_length, **extra}
        self.chunks.append(data)
        self.size += len(data)
        return entry


def _compress(raw: bytes, entropy: str, level: int) -> tuple[bytes, str]:
    if entropy == "zstd" and raw:
        import zstandard

        if len(raw) > BIG_STREAM:  # level 19 is slow on megabytes; the coding of small-alphabet streams barely changes
            level = min(level, 9)
        packed = zstandard.ZstdCompressor(level=level, write_content_size=True).compress(raw)
        if len(packed) < len(raw):
            return packed, "zstd"
    return raw, "none"


def _int_stream(values: np.ndarray, bits: int, entropy: str, level: int) -> tuple[bytes, dict[str, Any]]:
    """The smaller of bit-packed and one-per-byte (when ``bits`` <= 8), each after the entropy coder."""
    options = [(pack_bits(values, bits), "bits")]
    if bits <= 8:
        options.append((values.astype(np.uint8).tobytes(), "u8"))
    best = None
    for raw, packing in options:
        data, compression = _compress(raw, entropy, level)
        if best is None or len(data) < len(best[0]):
            best = (data, {"packing": packing, "bits": bits, "compression": compression, "raw_length": len(raw)})
    return best


def _stream(payload_parts: dict[str, tuple[bytes, dict[str, Any]]]) -> int:
    return sum(len(d) for d, _ in payload_parts.values())


def _encode(name: str, dtype: str, array: np.ndarray, entropy: str, level: int, min_elements: int) -> tuple[str, dict, dict]:
    """Choose the smallest encoding of one tensor: returns (encoding, fields, streams {name: (bytes, meta)})."""
    flat = np.asarray(array, order="C").reshape(-1)
    itemsize = flat.dtype.itemsize
    raw_bytes = flat.tobytes()
    data, compression = _compress(raw_bytes, entropy, min(level, 3))  # float bytes barely compress; be quick
    best = ("raw", {}, {"data": (data, {"compression": compression, "raw_length": len(raw_bytes)})})
    if dtype not in FLOAT_DTYPES or flat.size < min_elements:
        return best
    patterns = flat.view(_UINT[itemsize])
    nonzero = patterns != 0
    candidates = []
    codebook, codes = np.unique(patterns, return_inverse=True)
    shared = len(codebook) <= MAX_CODEBOOK
    if shared:
        code_bits = max(1, math.ceil(math.log2(len(codebook))))
        book = codebook.astype(patterns.dtype).tobytes()
        candidates.append(("shared", {"code_bits": code_bits, "codebook_size": len(codebook)}, {
            "codebook": (book, {"compression": "none", "raw_length": len(book)}),
            "codes": _int_stream(codes, code_bits, entropy, level),
        }))
    positions = np.flatnonzero(nonzero)
    if len(positions) < 0.5 * flat.size:
        value_bits = (max(1, math.ceil(math.log2(len(codebook)))) if shared else 8 * itemsize)
        index_bits = min(range(1, 17), key=lambda b: entries_needed(positions, b) * (b + value_bits))
        stored, real = relative_index(positions, index_bits)
        fields = {"index_bits": index_bits, "entries": len(stored), "nonzeros": len(positions)}
        streams = {"gaps": _int_stream(stored, index_bits, entropy, level)}
        if shared:
            zero_code = int(np.searchsorted(codebook, 0))
            entry_codes = np.full(len(stored), zero_code, np.uint16)
            entry_codes[real] = codes[positions]
            fields.update(values="codebook", code_bits=value_bits, codebook_size=len(codebook))
            book = codebook.astype(patterns.dtype).tobytes()
            streams["codebook"] = (book, {"compression": "none", "raw_length": len(book)})
            streams["codes"] = _int_stream(entry_codes, value_bits, entropy, level)
        else:
            values = np.zeros(len(stored), patterns.dtype)
            values[real] = patterns[positions]
            raw = values.tobytes()
            data, compression = _compress(raw, entropy, min(level, 3))
            fields.update(values="raw")
            streams["values"] = (data, {"compression": compression, "raw_length": len(raw)})
        candidates.append(("sparse", fields, streams))
    for candidate in candidates:
        if _stream(candidate[2]) < _stream(best[2]):
            best = candidate
    return best


def dtype_name(array: np.ndarray) -> str:
    dt = array.dtype.newbyteorder("<") if array.dtype.itemsize > 1 else array.dtype
    try:
        return _NUMPY_NAMES[dt]
    except KeyError:
        raise ValueError(f"dtype {array.dtype} cannot be packed; supported: {sorted(DTYPES)}") from None


def pack(
    tensors: Mapping[str, np.ndarray],
    path: str | Path,
    *,
    manifest: dict[str, Any] | None = None,
    dtypes: Mapping[str, str] | None = None,
    entropy: str = "zstd",
    level: int = 19,
    min_elements: int = 256,
    metadata: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Write ``tensors`` (name -> array; ``dtypes`` overrides the dtype name, e.g. ``BF16`` for uint16 bits) to ``path``.

    Returns a summary: file bytes and per tensor its encoding and stored bytes.
    """
    if entropy not in ("zstd", "none"):
        raise ValueError("entropy must be 'zstd' or 'none'")
    payload = _Payload()
    table = []
    summary: dict[str, Any] = {"tensors": {}}
    for name, array in tensors.items():
        array = np.asarray(array)
        dtype = (dtypes or {}).get(name) or dtype_name(array)
        storage = np.dtype(DTYPES[dtype])
        if array.dtype.itemsize != storage.itemsize:
            raise ValueError(f"{name}: a {dtype} tensor needs {storage.itemsize}-byte elements, got {array.dtype}")
        array = np.asarray(array, order="C")
        array = array.view(storage) if array.dtype != storage else array
        encoding, fields, streams = _encode(name, dtype, array, entropy, level, min_elements)
        placed = {}
        for stream_name, (data, meta) in streams.items():
            placed[stream_name] = payload.add(data, **meta)
        table.append({"name": name, "dtype": dtype, "shape": list(array.shape), "encoding": encoding, **fields, "streams": placed})
        summary["tensors"][name] = {"encoding": encoding, "bytes": _stream(streams), **fields}
    body = b"".join(payload.chunks)
    header = {
        "format": FORMAT,
        "entropy": entropy,
        "tensors": table,
        "manifest": manifest,
        "metadata": dict(metadata or {}),
        "payload_bytes": len(body),
        "payload_sha256": hashlib.sha256(body).hexdigest(),
    }
    header_bytes = json.dumps(header, separators=(",", ":"), sort_keys=True).encode()
    flags = 0
    if entropy == "zstd":  # the JSON header (tensor table, manifest) is a large share of a small model's file
        compressed, how = _compress(header_bytes, entropy, level)
        if how == "zstd":
            header_bytes, flags = compressed, FLAG_HEADER_ZSTD
    prefix = PREFIX.pack(MAGIC, VERSION, flags, len(header_bytes), zlib.crc32(header_bytes))
    Path(path).write_bytes(prefix + header_bytes + body)
    summary["file_bytes"] = PREFIX.size + len(header_bytes) + len(body)
    summary["header_bytes"] = len(header_bytes)
    return summary


# ------------------------------------------------------------------------------------------- reading


def _read(path: str | Path) -> tuple[dict[str, Any], memoryview]:
    blob = Path(path).read_bytes()
    where = f"{path}"
    if len(blob) < PREFIX.size:
        raise PackedFormatError(f"{where}: truncated: {len(blob)} bytes, shorter than the {PREFIX.size}-byte prefix of a packed file")
    magic, version, flags, header_len, header_crc = PREFIX.unpack_from(blob)
    if magic != MAGIC:
        raise PackedFormatError(f"{where}: not a modelpress packed file (bad magic {magic[:8]!r})")
    if version != VERSION:
        raise PackedFormatError(f"{where}: packed format version {version}; this loader reads version {VERSION}")
    if header_len > MAX_HEADER_BYTES:
        raise PackedFormatError(f"{where}: header length {header_len} over the {MAX_HEADER_BYTES}-byte limit")
    if len(blob) < PREFIX.size + header_len:
        raise PackedFormatError(f"{where}: truncated: the header needs {header_len} bytes, {len(blob) - PREFIX.size} present")
    header_bytes = blob[PREFIX.size : PREFIX.size + header_len]
    if zlib.crc32(header_bytes) != header_crc:
        raise PackedFormatError(f"{where}: corrupted: header CRC-32 mismatch")
    if flags & ~FLAG_HEADER_ZSTD:
        raise PackedFormatError(f"{where}: unknown flags {flags:#06x}")
    if flags & FLAG_HEADER_ZSTD:
        import zstandard

        try:
            if not 0 <= zstandard.frame_content_size(header_bytes) <= MAX_HEADER_BYTES:
                raise PackedFormatError(f"{where}: header: the zstd frame does not declare a size within {MAX_HEADER_BYTES} bytes")
            header_bytes = zstandard.ZstdDecompressor().decompress(header_bytes, max_output_size=MAX_HEADER_BYTES)
        except zstandard.ZstdError as exc:
            raise PackedFormatError(f"{where}: header: zstd: {exc}") from None
    try:
        header = json.loads(header_bytes)
    except ValueError as exc:
        raise PackedFormatError(f"{where}: header is not valid JSON: {exc}") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise PackedFormatError(f"{where}: header format {header.get('format') if isinstance(header, dict) else None!r}, expected {FORMAT!r}")
    body = memoryview(blob)[PREFIX.size + header_len :]
    expected = header.get("payload_bytes")
    if not isinstance(expected, int) or len(body) != expected:
        kind = "truncated" if isinstance(expected, int) and len(body) < expected else "corrupted"
        raise PackedFormatError(f"{where}: {kind}: payload is {len(body)} bytes, the header says {expected}")
    if hashlib.sha256(body).hexdigest() != header.get("payload_sha256"):
        raise PackedFormatError(f"{where}: corrupted: payload SHA-256 mismatch")
    return header, body


def _stream_bytes(body: memoryview, meta: dict[str, Any], label: str) -> bytes:
    offset, length = meta["offset"], meta["length"]
    if offset < 0 or length < 0 or offset + length > len(body):
        raise PackedFormatError(f"{label}: stream bytes {offset}..{offset + length} outside the {len(body)}-byte payload")
    data = bytes(body[offset : offset + length])
    if zlib.crc32(data) != meta["crc32"]:
        raise PackedFormatError(f"{label}: corrupted: CRC-32 mismatch")
    raw_length = meta["raw_length"]
    if meta["compression"] == "zstd":
        import zstandard

        try:
            if zstandard.frame_content_size(data) != raw_length:  # checked before any allocation: no decompression bombs
                raise PackedFormatError(f"{label}: the zstd frame does not declare the expected {raw_length} bytes")
            data = zstandard.ZstdDecompressor().decompress(data, max_output_size=raw_length)
        except zstandard.ZstdError as exc:
            raise PackedFormatError(f"{label}: zstd: {exc}") from None
    elif meta["compression"] != "none":
        raise PackedFormatError(f"{label}: unknown compression {meta['compression']!r}")
    if len(data) != raw_length:
        raise PackedFormatError(f"{label}: {len(data)} bytes after decompression, expected {raw_length}")
    return data


def _ints(body, meta, count: int, label: str) -> np.ndarray:
    data = _stream_bytes(body, meta, label)
    bits = meta["bits"]
    if meta["packing"] == "u8" and bits <= 8:
        if len(data) != count:
            raise PackedFormatError(f"{label}: {len(data)} values, expected {count}")
        values = np.frombuffer(data, np.uint8).astype(np.uint16)
    elif meta["packing"] == "bits":
        values = unpack_bits(data, bits, count)
    else:
        raise PackedFormatError(f"{label}: unknown packing {meta['packing']!r}")
    return values


def _decode(entry: dict[str, Any], body: memoryview) -> np.ndarray:
    name, dtype = entry["name"], entry["dtype"]
    if dtype not in DTYPES:
        raise PackedFormatError(f"{name}: unknown dtype {dtype!r}")
    storage = np.dtype(DTYPES[dtype])
    shape = [int(d) for d in entry["shape"]]
    numel = math.prod(shape)
    streams = entry["streams"]
    label = lambda s: f"tensor {name!r}, stream {s!r}"  # noqa: E731
    encoding = entry["encoding"]
    if encoding == "raw":
        data = _stream_bytes(body, streams["data"], label("data"))
        if len(data) != numel * storage.itemsize:
            raise PackedFormatError(f"{label('data')}: {len(data)} bytes for {numel} {dtype} elements")
        return np.frombuffer(data, storage).reshape(shape).copy()  # writable
    uint = _UINT[storage.itemsize]
    if encoding not in ("shared", "sparse"):
        raise PackedFormatError(f"{name}: unknown encoding {encoding!r}")
    codebook = None
    if encoding == "shared" or entry.get("values") == "codebook":
        codebook = np.frombuffer(_stream_bytes(body, streams["codebook"], label("codebook")), uint)
        if len(codebook) != entry["codebook_size"] or not 0 < len(codebook) <= 1 << entry["code_bits"]:
            raise PackedFormatError(f"{label('codebook')}: {len(codebook)} entries do not fit code_bits={entry['code_bits']}")
    if encoding == "shared":
        codes = _ints(body, streams["codes"], numel, label("codes"))
        if len(codes) and codes.max() >= len(codebook):
            raise PackedFormatError(f"{label('codes')}: a code past the {len(codebook)}-entry codebook")
        return codebook[codes].view(storage).reshape(shape)
    entries = int(entry["entries"])
    if not 0 <= entries <= numel:
        raise PackedFormatError(f"{name}: {entries} sparse entries for {numel} elements")
    positions = positions_from_gaps(_ints(body, streams["gaps"], entries, label("gaps")), numel)
    out = np.zeros(numel, uint)
    if entry["values"] == "codebook":
        codes = _ints(body, streams["codes"], entries, label("codes"))
        if len(codes) and codes.max() >= len(codebook):
            raise PackedFormatError(f"{label('codes')}: a code past the {len(codebook)}-entry codebook")
        out[positions] = codebook[codes]
    elif entry["values"] == "raw":
        values = np.frombuffer(_stream_bytes(body, streams["values"], label("values")), uint)
        if len(values) != entries:
            raise PackedFormatError(f"{label('values')}: {len(values)} values for {entries} entries")
        out[positions] = values
    else:
        raise PackedFormatError(f"{name}: unknown sparse values {entry['values']!r}")
    return out.view(storage).reshape(shape)


def read_header(path: str | Path) -> dict[str, Any]:
    """The checked header (tensor table, manifest, metadata) of a packed file."""
    return _read(path)[0]


def read_raw(path: str | Path) -> tuple[dict[str, Any], dict[str, tuple[str, np.ndarray]]]:
    """(header, {name: (dtype name, array of the storage dtype)}); BF16 arrays hold the raw uint16 bits."""
    header, body = _read(path)
    out: dict[str, tuple[str, np.ndarray]] = {}
    for entry in header["tensors"]:
        try:
            out[entry["name"]] = (entry["dtype"], _decode(entry, body))
        except (KeyError, TypeError) as exc:
            raise PackedFormatError(f"tensor {entry.get('name')!r}: malformed table entry ({exc!r})") from None
    return header, out


def unpack(path: str | Path) -> dict[str, Any]:
    """A packed file back to a state_dict of numpy arrays (torch tensors: the SDK's ``unpack(path,
    framework="pt")`` in the SDK's packed module, which needs torch).

    Raises ``PackedFormatError`` for a corrupted, truncated or foreign file. bfloat16 has no numpy dtype:
    ask for ``framework="pt"`` (or use ``modelpress unpack`` to write safetensors).
    """
    _, raw = read_raw(path)
    bf16 = [n for n, (d, _) in raw.items() if d == "BF16"]
    if bf16:
        raise ValueError(f"{bf16[0]!r} is bfloat16, which numpy has no dtype for; use unpack(path, framework='pt')")
    return {n: a for n, (_, a) in raw.items()}


def write_safetensors(path: str | Path, tensors: Mapping[str, tuple[str, np.ndarray]], metadata: Mapping[str, str] | None = None) -> None:
    """A safetensors file from (dtype name, array) pairs, written directly (any dtype, BF16 included; no torch)."""
    header: dict[str, Any] = {}
    if metadata:
        header["__metadata__"] = dict(metadata)
    offset, chunks = 0, []
    for name, (dtype, array) in tensors.items():
        data = np.ascontiguousarray(array).tobytes()
        header[name] = {"dtype": dtype, "shape": list(array.shape), "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for chunk in chunks:
            f.write(chunk)


def unpack_to_safetensors(path: str | Path, out: str | Path) -> dict[str, Any]:
    """``modelpress unpack``: a packed file to a plain safetensors state_dict (manifest kept in its metadata)."""
    from modelpress_core.manifest import MANIFEST_KEY

    header, raw = read_raw(path)
    metadata = {MANIFEST_KEY: json.dumps(header["manifest"], separators=(",", ":"))} if header.get("manifest") else None
    write_safetensors(out, raw, metadata)
    return header


__all__ = ["MAGIC", "VERSION", "FORMAT", "PackedFormatError", "pack", "unpack", "read_header", "read_raw", "unpack_to_safetensors"]
