"""What users import: the HTTP client, the CLI, the embedded stack and artifact loaders."""

from modelpress.client import ApiError, ModelpressClient
from modelpress.packed import PackedFormatError, unpack
from modelpress_core import __version__
__all__ = ["ApiError", "ModelpressClient", "PackedFormatError", "unpack", "__version__"]
