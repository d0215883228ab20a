"""Bounds on the numbers a spec may carry, so an absurd value is a 422 at submit, not a failure an hour later.

Every integer field of the spec and its steps has a ``Field(ge=..., le=...)``; the free-form
architecture configs (``model.config``, a distill ``student.config``) are walked by ``check_config``.
"""

from __future__ import annotations

from typing import Any

SEED_MAX = 2**32 - 1  # numpy's seed range; torch.manual_seed takes up to 2**64 - 1 (the workers add small offsets)
INPUT_DIM_MAX = 50_000_000  # one dimension of model.input.shape (the product is capped at the same)
RANK_MAX = 65_536  # lowrank:svd rank; never above the layer's smaller dimension in practice
SIZE_BYTES_MAX = 2**40  # goal.max_size_bytes: 1 TiB
CONFIG_INT_MAX = 2**31 - 1  # any integer inside an architecture config (layer widths, class counts, vocab sizes)
CONFIG_DEPTH_MAX = 8  # nesting of an architecture config


def check_config(config: Any, depth: int = 0, where: str = "") -> Any:
    """Refuse integers outside ±CONFIG_INT_MAX and nesting deeper than CONFIG_DEPTH_MAX anywhere in ``config``,
    naming the place (ValueError)."""
    if depth > CONFIG_DEPTH_MAX:
        raise ValueError(f"config{where} is nested more than {CONFIG_DEPTH_MAX} levels deep")
    if isinstance(config, bool):
        return config
    if isinstance(config, int) and not -CONFIG_INT_MAX <= config <= CONFIG_INT_MAX:
        raise ValueError(f"config{where} = {str(config)[:40]} is out of range (at most {CONFIG_INT_MAX} in magnitude)")
    if isinstance(config, dict):
        for key, value in config.items():
            check_config(value, depth + 1, f"{where}.{key}")
    elif isinstance(config, list):
        for i, value in enumerate(config):
            check_config(value, depth + 1, f"{where}[{i}]")
    return config
