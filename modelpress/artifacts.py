"""Load what the service produced (needs torch): a model that changed shape reloads from its
safetensors file and the architecture manifest in its metadata, a packed file from its codebooks.
No pickle involved. The implementation lives in ``modelpress_torch.artifacts``, shared with the workers."""

from modelpress_core.manifest import MANIFEST_KEY, MANIFEST_SCHEMA, read_manifest
from modelpress_torch.artifacts import load_executorch, load_packed, load_pruned, manifest_of, rebuild

__all__ = ["MANIFEST_KEY", "MANIFEST_SCHEMA", "load_executorch", "load_packed", "load_pruned", "manifest_of", "read_manifest", "rebuild"]
