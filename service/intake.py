"""Upload sniffing, torch-free: what a file is, from its bytes, never its name.

Safetensors headers are parsed and checked completely (offsets, dtypes, sizes)
before anything else touches the file. Pickles, and zip archives holding
pickles (``torch.save`` output), are recognised and refused. A TorchScript
archive's pickles are walked and its code is read against the op allowlist
(``service.torchscript_scan``) before any worker loads it.
"""

from __future__ import annotations

import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from service.domain import strict_json
from service.domain.errors import InvalidUpload, UnsafeUpload, UnsupportedUpload
from service.picklescan import check_pickle
from service.torchscript_scan import CodeLimits, scan_archive
from service.zipsafety import ZipLimits, check_zip

MAX_HEADER_BYTES = 100 * 1024 * 1024

DTYPE_BYTES = {
    "F64": 8, "F32": 4, "F16": 2, "BF16": 2,
    "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1,
}
FLOAT_DTYPES = {"F64", "F32", "F16", "BF16"}

SAVE_AS_SAFETENSORS = (
    "Save the weights instead: "
    "`from safetensors.torch import save_file; save_file(model.state_dict(), 'model.safetensors')` "
    "and upload model.safetensors with the architecture named in the spec."
)


@dataclass
class TensorInfo:
    dtype: str
    shape: list[int]

    @property
    def numel(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n


@dataclass
class SafetensorsHeader:
    tensors: dict[str, TensorInfo]
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def parameters(self) -> int:
        return sum(t.numel for t in self.tensors.values())

    def shapes(self) -> dict[str, list[int]]:
        return {k: t.shape for k, t in self.tensors.items()}


def sniff(
    path: Path, zip_limits: ZipLimits = ZipLimits(), *, op_check: bool = True, code_limits: CodeLimits = CodeLimits()
) -> str:
    """Return 'safetensors' or 'torchscript', or raise the problem that tells the user what to send.

    A zip is checked for safety (entries, sizes, ratios, names, CRCs) before its layout is read;
    a TorchScript archive's pickles are walked (never run) against an allowlist of globals, and,
    with ``op_check``, its code is parsed (never run) against the op allowlist."""
    with open(path, "rb") as f:
        head = f.read(16)
    if len(head) == 0:
        raise InvalidUpload("the model file is empty")
    if head[:1] == b"\x80" and len(head) > 1 and 2 <= head[1] <= 5:
        raise UnsafeUpload("this is a Python pickle. " + SAVE_AS_SAFETENSORS, detected="pickle")
    if head[:4] == b"PK\x03\x04":
        names = check_zip(path, zip_limits)
        kind = zip_kind(names)
        if kind == "torchscript":
            _check_torchscript(path, names, op_check, code_limits)
            return "torchscript"
        if kind == "pt2":
            raise UnsupportedUpload(
                "this is a torch.export ExportedProgram (.pt2). torch 2.13's torch.export.load unpickles its weights "
                "and constants with weights_only=False, so it cannot be loaded safely. Upload a TorchScript archive "
                "(torch.jit.save) or a safetensors state_dict instead.",
                detected="exported_program",
            )
        if kind == "torch-pickle":
            raise UnsafeUpload(
                "this is a torch.save() checkpoint, which is a pickle inside a zip. " + SAVE_AS_SAFETENSORS,
                detected="torch.save zip",
            )
        raise UnsupportedUpload("a zip archive that is not a model modelpress knows. " + SAVE_AS_SAFETENSORS, detected="zip")
    if len(head) >= 9:
        (n,) = struct.unpack("<Q", head[:8])
        if 2 <= n <= MAX_HEADER_BYTES and head[8:9] == b"{":
            return "safetensors"
    raise UnsupportedUpload(
        "unrecognised model file: modelpress accepts a safetensors state_dict. " + SAVE_AS_SAFETENSORS, detected="unknown"
    )


def zip_kind(names: list[str]) -> str:
    """'torchscript', 'pt2', 'torch-pickle', 'npz' or 'zip', from the entry names of a checked zip."""
    if any("/code/" in n for n in names) and any(n.endswith("constants.pkl") for n in names):
        return "torchscript"
    if any(n == "archive_format" or n.endswith("/archive_format") for n in names):
        return "pt2"
    if any(n.endswith("data.pkl") for n in names):
        return "torch-pickle"
    if names and all(n.endswith(".npy") for n in names):
        return "npz"
    return "zip"


def _check_torchscript(path: Path, names: list[str], op_check: bool, code_limits: CodeLimits) -> None:
    roots = {n.split("/", 1)[0] for n in names}
    if len(roots) != 1:
        raise InvalidUpload(f"a TorchScript archive has one top-level folder; this one has {len(roots)}")
    root = roots.pop()
    for required in ("data.pkl", "constants.pkl"):
        if f"{root}/{required}" not in names:
            raise InvalidUpload(f"not a complete TorchScript archive: {required} is missing")
    if f"{root}/version" not in names and f"{root}/.data/version" not in names:  # torch writes either
        raise InvalidUpload("not a complete TorchScript archive: version is missing")
    with zipfile.ZipFile(path) as archive:
        for name in names:
            if name.endswith((".pkl", ".debug_pkl")):
                check_pickle(archive.read(name), name)
        if op_check:
            scan_archive(archive, names, code_limits)


def read_safetensors_header(path: Path, *, max_tensors: int, max_parameters: int) -> SafetensorsHeader:
    """Parse and fully check a safetensors header without reading tensor data."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        raw_n = f.read(8)
        if len(raw_n) < 8:
            raise InvalidUpload("truncated safetensors file: no header length")
        (n,) = struct.unpack("<Q", raw_n)
        if n > MAX_HEADER_BYTES or n > size - 8:
            raise InvalidUpload(f"corrupt safetensors file: header claims {n} bytes, the file has {size}")
        raw = f.read(n)
    try:
        header = strict_json.loads(raw)  # a duplicate tensor name could mean one thing here and another to the loader
    except strict_json.DuplicateKey as exc:
        raise InvalidUpload(f"corrupt safetensors header: the key {exc.key!r} appears twice in one object") from None
    except RecursionError:
        raise InvalidUpload("corrupt safetensors header: nested too deeply") from None
    except ValueError as exc:  # not UTF-8, not JSON, NaN/Infinity
        raise InvalidUpload(f"corrupt safetensors header: not JSON ({exc})") from None
    if not isinstance(header, dict):
        raise InvalidUpload("corrupt safetensors header: not a JSON object")
    metadata = header.pop("__metadata__", {}) or {}
    if not isinstance(metadata, dict):
        raise InvalidUpload("corrupt safetensors header: __metadata__ is not an object")
    if len(header) > max_tensors:
        raise InvalidUpload(f"too many tensors: {len(header)} (limit {max_tensors})")
    data_len = size - 8 - n
    tensors: dict[str, TensorInfo] = {}
    spans: list[tuple[int, int]] = []
    total = 0
    for name, entry in header.items():
        if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
            raise InvalidUpload(f"corrupt safetensors header: bad entry for {name!r}")
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if dtype not in DTYPE_BYTES:
            raise InvalidUpload(f"tensor {name!r} has dtype {dtype!r}; allowed: {', '.join(sorted(DTYPE_BYTES))}")
        if not (isinstance(shape, list) and all(isinstance(d, int) and 0 <= d for d in shape) and len(shape) <= 8):
            raise InvalidUpload(f"corrupt safetensors header: bad shape for {name!r}")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)):
            raise InvalidUpload(f"corrupt safetensors header: bad data_offsets for {name!r}")
        info = TensorInfo(dtype, shape)
        begin, end = offsets
        if not 0 <= begin <= end <= data_len or end - begin != info.numel * DTYPE_BYTES[dtype]:
            raise InvalidUpload(f"corrupt or truncated safetensors file: tensor {name!r} does not fit the file")
        total += info.numel
        if total > max_parameters:
            raise InvalidUpload(f"too many parameters: over {max_parameters}")
        tensors[name] = info
        spans.append((begin, end))
    spans.sort()
    for (b1, e1), (b2, _) in zip(spans, spans[1:]):
        if b2 < e1:
            raise InvalidUpload("corrupt safetensors file: tensors overlap")
    return SafetensorsHeader(tensors, metadata)
