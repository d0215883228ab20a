"""Upload sniffing, torch-free: what a file is, from its bytes, never its name.

Safetensors headers are parsed and checked completely (offsets, dtypes, sizes)
before anything else touches the file. Pickles, and zip archives holding
pickles (``torch.save`` output), are recognised and refused. A TorchScript
archive's pickles are walked and its code is read against the op allowlist
(``modelpress_core.torchscript_scan``) before any worker loads it.
"""

from __future__ import annotations

import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from modelpress_core.budget import InspectionBudget
from modelpress_core.errors import InvalidUpload, UnsafeUpload, UnsupportedUpload, UploadTooLarge
from modelpress_core.jsonscan import JsonShapeError, iter_members, scan_object
from modelpress_core.picklescan import check_pickle
from modelpress_core.torchscript_scan import CodeLimits, scan_archive
from modelpress_core.zipsafety import ZipLimits, check_zip

MAX_HEADER_BYTES = 100 * 1024 * 1024  # what sniff() still recognises as a safetensors header; the limit is header_limit()
HEADER_BYTES_PER_TENSOR = 256  # a real entry is 104-135 bytes (docs/limits.md); about 2x margin
HEADER_METADATA_BYTES = 1024 * 1024  # __metadata__, braces, padding; also the largest single member
MAX_PICKLE_BYTES = 64 * 1024 * 1024  # data.pkl / constants.pkl: structure only, the tensors live in data/
HEADER_MAX_DEPTH = 3  # {"name": {"shape": [..]}}: a safetensors header is never deeper

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


@dataclass(slots=True)
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
    path: Path, zip_limits: ZipLimits = ZipLimits(), budget: InspectionBudget | None = None, *,
    op_check: bool = True, code_limits: CodeLimits = CodeLimits(),
) -> str:
    """Return 'safetensors' or 'torchscript', or raise the problem that tells the user what to send.

    A zip's layout is judged from its central directory (entries, names, declared sizes and ratios)
    before anything inflates; only a TorchScript archive is then streamed through (CRCs, byte and CPU
    budget), its pickles walked (never run) against an allowlist of globals and, with ``op_check``,
    its code parsed (never run) against the op allowlist."""
    with open(path, "rb") as f:
        head = f.read(16)
    if len(head) == 0:
        raise InvalidUpload("the model file is empty")
    if head[:1] == b"\x80" and len(head) > 1 and 2 <= head[1] <= 5:
        raise UnsafeUpload("this is a Python pickle. " + SAVE_AS_SAFETENSORS, detected="pickle")
    if head[:4] == b"PK\x03\x04":
        budget = budget or zip_limits.budget()
        names = check_zip(path, zip_limits, accept=_accept_torchscript, budget=budget)
        _check_torchscript(path, names, budget, op_check, code_limits)
        return "torchscript"
    if len(head) >= 9:
        (n,) = struct.unpack("<Q", head[:8])
        if 2 <= n <= MAX_HEADER_BYTES and head[8:9] == b"{":
            return "safetensors"
    raise UnsupportedUpload(
        "unrecognised model file: modelpress accepts a safetensors state_dict. " + SAVE_AS_SAFETENSORS, detected="unknown"
    )


def _accept_torchscript(names: list[str]) -> None:
    """Refuse, from the entry names alone, every zip that is not a TorchScript archive."""
    kind = zip_kind(names)
    if kind == "torchscript":
        _check_torchscript_layout(names)
        return
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


def _check_torchscript_layout(names: list[str]) -> None:
    roots = {n.split("/", 1)[0] for n in names}
    if len(roots) != 1:
        raise InvalidUpload(f"a TorchScript archive has one top-level folder; this one has {len(roots)}")
    root = roots.pop()
    for required in ("data.pkl", "constants.pkl"):
        if f"{root}/{required}" not in names:
            raise InvalidUpload(f"not a complete TorchScript archive: {required} is missing")
    if f"{root}/version" not in names and f"{root}/.data/version" not in names:  # torch writes either
        raise InvalidUpload("not a complete TorchScript archive: version is missing")


def _check_torchscript(path: Path, names: list[str], budget: InspectionBudget, op_check: bool, code_limits: CodeLimits) -> None:
    with zipfile.ZipFile(path) as archive:
        for name in names:
            if name.endswith((".pkl", ".debug_pkl")):
                size = archive.getinfo(name).file_size
                if size > MAX_PICKLE_BYTES:
                    raise UploadTooLarge(f"{name} is {size} bytes; a TorchScript pickle is at most {MAX_PICKLE_BYTES}", limit=MAX_PICKLE_BYTES)
                with archive.open(name) as stream:
                    check_pickle(stream, name, budget)
        if op_check:
            scan_archive(archive, names, code_limits)


def header_limit(max_tensors: int, *, per_tensor: int = HEADER_BYTES_PER_TENSOR, metadata: int = HEADER_METADATA_BYTES) -> int:
    """The largest safetensors header accepted for up to ``max_tensors`` tensors (see docs/limits.md)."""
    return metadata + per_tensor * max_tensors


def read_safetensors_header(
    path: Path, *, max_tensors: int, max_parameters: int, max_header_bytes: int | None = None,
    budget: InspectionBudget | None = None,
) -> SafetensorsHeader:
    """Parse and fully check a safetensors header without reading tensor data.

    Bounded before anything is built: the header's length against ``max_header_bytes`` (default
    ``header_limit(max_tensors)``), its nesting depth and member count by a vectorised scan, then
    one member at a time (at most ``HEADER_METADATA_BYTES`` each), so memory is the header's bytes
    plus one member and the checked result."""
    limit = header_limit(max_tensors) if max_header_bytes is None else max_header_bytes
    size = path.stat().st_size
    with open(path, "rb") as f:
        raw_n = f.read(8)
        if len(raw_n) < 8:
            raise InvalidUpload("truncated safetensors file: no header length")
        (n,) = struct.unpack("<Q", raw_n)
        if n > size - 8:
            raise InvalidUpload(f"corrupt safetensors file: header claims {n} bytes, the file has {size}")
        if n > limit:
            raise UploadTooLarge(
                f"the safetensors header is {n} bytes; at most {limit} are accepted for up to {max_tensors} tensors "
                "(MODELPRESS_MAX_TENSORS, MODELPRESS_HEADER_BYTES_PER_TENSOR, MODELPRESS_HEADER_METADATA_BYTES)",
                limit=limit,
            )
        raw = f.read(n)
    try:
        scan = scan_object(raw, max_depth=HEADER_MAX_DEPTH, max_members=max_tensors + 1)
    except JsonShapeError as exc:
        raise InvalidUpload(f"corrupt safetensors header: {exc}") from None
    data_len = size - 8 - n
    tensors: dict[str, TensorInfo] = {}
    metadata: dict[str, str] = {}
    spans: list[tuple[int, int]] = []
    total = 0
    try:
        for i, (name, entry) in enumerate(iter_members(raw, scan, max_member_bytes=HEADER_METADATA_BYTES)):
            if budget is not None and i % 1024 == 0:
                budget.spend()
            if name == "__metadata__":
                metadata = _metadata(entry)
                continue
            info, begin, end = _tensor_entry(name, entry, data_len)
            total += info.numel
            if total > max_parameters:
                raise InvalidUpload(f"too many parameters: over {max_parameters}")
            tensors[name] = info
            spans.append((begin, end))
    except JsonShapeError as exc:
        raise InvalidUpload(f"corrupt safetensors header: {exc}") from None
    if len(tensors) > max_tensors:
        raise InvalidUpload(f"too many tensors: {len(tensors)} (limit {max_tensors})")
    spans.sort()
    for (b1, e1), (b2, _) in zip(spans, spans[1:]):
        if b2 < e1:
            raise InvalidUpload("corrupt safetensors file: tensors overlap")
    return SafetensorsHeader(tensors, metadata)


def _short(name: str, limit: int = 80) -> str:
    return repr(name if len(name) <= limit else name[:limit] + "...")


def _metadata(entry: object) -> dict[str, str]:
    if entry is None:
        return {}
    if not isinstance(entry, dict) or not all(isinstance(v, str) for v in entry.values()):
        raise InvalidUpload("corrupt safetensors header: __metadata__ is not an object of strings")
    return entry


def _tensor_entry(name: str, entry: object, data_len: int) -> tuple[TensorInfo, int, int]:
    if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
        raise InvalidUpload(f"corrupt safetensors header: bad entry for {_short(name)}")
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if not isinstance(dtype, str) or dtype not in DTYPE_BYTES:
        raise InvalidUpload(f"tensor {_short(name)} has dtype {_short(str(dtype), 16)}; allowed: {', '.join(sorted(DTYPE_BYTES))}")
    if not (isinstance(shape, list) and len(shape) <= 8 and all(type(d) is int and 0 <= d for d in shape)):
        raise InvalidUpload(f"corrupt safetensors header: bad shape for {_short(name)}")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(type(o) is int for o in offsets)):
        raise InvalidUpload(f"corrupt safetensors header: bad data_offsets for {_short(name)}")
    info = TensorInfo(dtype, shape)
    begin, end = offsets
    if not 0 <= begin <= end <= data_len or end - begin != info.numel * DTYPE_BYTES[dtype]:
        raise InvalidUpload(f"corrupt or truncated safetensors file: tensor {_short(name)} does not fit the file")
    return info, begin, end
