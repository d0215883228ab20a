"""What users import: the HTTP client, the CLI, the embedded stack and artifact loaders."""

from modelpress.client import ApiError, ModelpressClient

__version__ = "0.1.0"
__all__ = ["ApiError", "ModelpressClient", "__version__"]
