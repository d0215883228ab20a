"""What users import: the HTTP client, the CLI, the embedded stack and artifact loaders."""

from modelpress.client import ApiError, ModelpressClient
from modelpress.packed import PackedFormatError, unpack

__version__ = "0.1.0"
__all__ = ["ApiError", "ModelpressClient", "PackedFormatError", "unpack", "__version__"]
