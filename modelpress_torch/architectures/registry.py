"""The architecture registry: name -> (config model, builder, example input).

Builders take a validated pydantic config and return an ``nn.Module`` whose
``state_dict`` keys match the original implementation (torchvision, Hugging Face,
or the plain ``nn.Sequential`` the spec documents), so users' weights load with
``load_state_dict(strict=True)``.

Built-ins register themselves when ``modelpress_torch.architectures`` is imported; installed
packages add more through the ``modelpress.architectures`` entry-point group
(each entry point names a module to import, whose import registers builders with
``@architecture``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Callable

from pydantic import BaseModel, ConfigDict, ValidationError

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "modelpress.architectures"


class ArchitectureConfig(BaseModel):
    """Base of every builder's config: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")


class UnknownArchitecture(LookupError):
    pass


class InvalidArchitectureConfig(ValueError):
    def __init__(self, name: str, error: ValidationError):
        self.name = name
        self.errors = error.errors(include_url=False)
        super().__init__(f"invalid config for architecture {name!r}: {error}")


@dataclass(frozen=True)
class Architecture:
    name: str
    config_model: type[ArchitectureConfig]
    builder: Callable[[Any], Any]
    input_shape: Callable[[Any], list[int]]
    input_dtype: str
    description: str
    family: str
    source: str  # "builtin" or the plugin's distribution/module

    def parse_config(self, config: dict | None) -> ArchitectureConfig:
        try:
            return self.config_model.model_validate(config or {})
        except ValidationError as exc:
            raise InvalidArchitectureConfig(self.name, exc) from exc

    def build(self, config: dict | None):
        return self.builder(self.parse_config(config))

    def describe(self) -> dict:
        default_input = None
        try:
            default_input = {"shape": self.input_shape(self.config_model()), "dtype": self.input_dtype}
        except ValidationError:
            pass  # no default config: input depends on required fields
        return {
            "name": self.name,
            "family": self.family,
            "description": self.description,
            "source": self.source,
            "config_schema": self.config_model.model_json_schema(),
            "default_input": default_input,
        }


_REGISTRY: dict[str, Architecture] = {}
_current_source = "builtin"


def architecture(
    name: str,
    config_model: type[ArchitectureConfig],
    *,
    input_shape: Callable[[Any], list[int]],
    input_dtype: str = "float32",
    description: str,
    family: str = "custom",
):
    """Register ``builder(config) -> nn.Module`` under ``name``."""

    def register(builder):
        if name in _REGISTRY and _REGISTRY[name].builder is not builder:
            raise ValueError(f"architecture {name!r} is already registered by {_REGISTRY[name].source}")
        _REGISTRY[name] = Architecture(
            name=name,
            config_model=config_model,
            builder=builder,
            input_shape=input_shape,
            input_dtype=input_dtype,
            description=description,
            family=family,
            source=_current_source,
        )
        return builder

    return register


def get_architecture(name: str) -> Architecture:
    _ensure_loaded()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownArchitecture(name) from None


def list_architectures() -> list[Architecture]:
    _ensure_loaded()
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def build_model(name: str, config: dict | None):
    return get_architecture(name).build(config)


_loaded = False


def _ensure_loaded() -> None:
    global _loaded, _current_source
    if _loaded:
        return
    _loaded = True
    import modelpress_torch.architectures.builtin  # noqa: F401  (registers the zoo)

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        _current_source = f"plugin:{ep.dist.name if ep.dist else ep.value}"
        try:
            ep.load()
        except Exception:  # a broken plugin must not take the worker down
            log.exception("could not load architecture plugin %s", ep.value)
        finally:
            _current_source = "builtin"
