"""The packed transport format (``.mpk``): read, write and unpack without torch (see docs/packed-format.md).
The implementation lives in ``modelpress_core.packed``, shared with the workers."""

from modelpress_core import packed as _core
from modelpress_core.packed import (
    FORMAT,
    MAGIC,
    MEDIA_TYPE,
    VERSION,
    PackedFormatError,
    pack,
    pack_bits,
    read_header,
    read_raw,
    relative_index,
    unpack_bits,
    unpack_to_safetensors,
)



def unpack(path, framework: str = "numpy") -> dict:
    """A packed file back to a state_dict: numpy arrays (``framework="numpy"``) or torch tensors (``"pt"``,
    needs torch; keeps bfloat16). Raises ``PackedFormatError`` for a corrupted, truncated or foreign file."""
    if framework == "numpy":
        return _core.unpack(path)
    if framework == "pt":
        from modelpress_torch.artifacts import tensors_from_raw

        return tensors_from_raw(read_raw(path)[1])
    raise ValueError("framework must be 'numpy' or 'pt'")


__all__ = [
    "FORMAT", "MAGIC", "MEDIA_TYPE", "VERSION", "PackedFormatError", "pack", "pack_bits", "read_header", "read_raw",
    "relative_index", "unpack", "unpack_bits", "unpack_to_safetensors",
]
