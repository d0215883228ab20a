"""Built-in model builders and the plugin registry (see ``registry``)."""

from modelpress_torch.architectures.registry import (
    Architecture,
    ArchitectureConfig,
    InvalidArchitectureConfig,
    UnknownArchitecture,
    architecture,
    build_model,
    get_architecture,
    list_architectures,
)

__all__ = [
    "Architecture",
    "ArchitectureConfig",
    "InvalidArchitectureConfig",
    "UnknownArchitecture",
    "architecture",
    "build_model",
    "get_architecture",
    "list_architectures",
]
