"""A small, pure-Python `kustomize build` for the subset modelpress's manifests use.

Supported: ``resources`` (YAML files, or directories holding a kustomization.yaml) and ``patches``
whose inline patch is a strategic-merge ``$patch: delete`` of one object. Any other kustomization
field is refused, so this renderer can never silently disagree with kustomize (where kubectl is
installed, the test compares the two).
"""

from __future__ import annotations

from pathlib import Path

import yaml

SUPPORTED = {"apiVersion", "kind", "resources", "patches"}


def _identity(obj: dict) -> tuple[str, str, str]:
    group = obj["apiVersion"].split("/")[0] if "/" in obj["apiVersion"] else ""
    return group, obj["kind"], obj["metadata"]["name"]


def render(directory: Path) -> list[dict]:
    """The objects ``kustomize build directory`` would emit (in resource order)."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unsupported = set(kustomization) - SUPPORTED
    if unsupported:
        raise ValueError(f"{directory}: kustomization fields this renderer does not support: {sorted(unsupported)}")
    objects: list[dict] = []
    for entry in kustomization.get("resources", []):
        path = (directory / entry).resolve()
        if path.is_dir():
            objects += render(path)
        else:
            objects += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    for patch in kustomization.get("patches", []):
        if set(patch) != {"patch"}:
            raise ValueError(f"{directory}: only inline patches are supported, got {sorted(patch)}")
        body = yaml.safe_load(patch["patch"])
        if body.pop("$patch", None) != "delete":
            raise ValueError(f"{directory}: only `$patch: delete` patches are supported")
        target = _identity(body)
        remaining = [obj for obj in objects if _identity(obj) != target]
        if len(remaining) != len(objects) - 1:
            raise ValueError(f"{directory}: the delete patch for {target} matches no object")
        objects = remaining
    return objects
