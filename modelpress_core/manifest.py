"""The architecture manifest: how a model that changed shape (structured pruning, low-rank) is
described in its safetensors metadata, so it reloads without pickle. Torch-free; the torch side
(``modelpress_torch.artifacts``) writes manifests and rebuilds models from them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

MANIFEST_KEY = "modelpress.manifest"
MANIFEST_SCHEMA = "modelpress.manifest/v1"


def read_manifest(path: str | Path) -> dict[str, Any] | None:
    """The manifest in a safetensors file's metadata, or None."""
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as f:
        text = (f.metadata() or {}).get(MANIFEST_KEY)
    return json.loads(text) if text else None
