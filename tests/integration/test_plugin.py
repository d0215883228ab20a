"""A plugin architecture from an installed package compresses end to end (examples/modelpress-plugin-example)."""

from __future__ import annotations

import os
from importlib.metadata import PackageNotFoundError, version

import pytest
import torch
from safetensors.torch import save_file

from tests.integration.helpers import submit, wait

try:
    version("modelpress-plugin-example")
    INSTALLED = True
except PackageNotFoundError:
    INSTALLED = False

# The README's test command installs the example plugin; CI must run this, elsewhere it may be skipped.
pytestmark = pytest.mark.skipif(not INSTALLED and not os.environ.get("CI"), reason="pip install ./examples/modelpress-plugin-example")


def test_plugin_architecture_is_listed_and_compresses(api, tmp_path):
    from modelpress_plugin_example.architectures import TinyConvNet, TinyConvNetConfig

    architectures = api.get("/architectures").json()
    names = architectures if isinstance(architectures, list) else architectures.get("architectures", architectures)
    assert "tiny_convnet" in str(names)

    torch.manual_seed(0)
    path = tmp_path / "tiny.safetensors"
    save_file(TinyConvNet(TinyConvNetConfig()).state_dict(), str(path))
    job_spec = {
        "model": {"format": "safetensors", "architecture": "tiny_convnet", "config": {}},
        "steps": [{"method": "prune", "kind": "magnitude", "amount": 0.5, "scope": "layer"}],
        "evaluate": {"latency": False},
    }
    response = submit(api, path, job_spec)
    assert response.status_code == 202, response.text
    job = wait(api, response.json()["id"])
    assert job["state"] == "succeeded", job["error"]
    metrics = api.get(f"/jobs/{job['id']}/metrics").json()
    assert metrics["after"]["sparsity"] > 0.45
