"""Deep Compression over HTTP: prune -> quantize:kmeans (codebooks fine-tuned on an uploaded train part) ->
``outputs: ["packed"]``; the downloaded ``model.mpk`` unpacks (library and CLI) and loads strictly."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import numpy as np
import torch
from safetensors.torch import load_file

from modelpress import unpack
from modelpress.artifacts import load_packed
from modelpress.datasets import digits_28x28
from modelpress.examples import accuracy
from tests.integration.helpers import spec, wait
from tests.integration.test_job_flow import download, user_mlp


def npz(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def test_prune_kmeans_packed_end_to_end(api, digits_mlp_path, digits_test_set, tmp_path):
    x_train, y_train, _, _ = digits_28x28()
    x_train, y_train = x_train[:600].astype(np.float16), y_train[:600]  # under the test stack's 3 MiB upload limit
    job_spec = spec(
        {"method": "prune", "kind": "magnitude", "amount": 0.8, "scope": "layer"},
        {"method": "quantize", "kind": "kmeans", "bits": 4, "layer_bits": {"4": 5}, "finetune_epochs": 3, "learning_rate": 3e-3},
        outputs=["packed"],
    )
    response = api.post(
        "/jobs",
        files={"model": ("m.safetensors", digits_mlp_path.read_bytes(), "application/octet-stream"),
               "train": ("train.npz", npz(inputs=x_train, labels=y_train), "application/zip")},
        data={"spec": json.dumps(job_spec)},
    )
    assert response.status_code == 202, response.text
    job = wait(api, response.json()["id"])
    assert job["state"] == "succeeded", job["error"]
    assert [a["name"] for a in job["artifacts"]] == ["model.mpk"]
    path = download(api, job, "model.mpk", tmp_path)
    metrics = api.get(f"/jobs/{job['id']}/metrics").json()

    state = unpack(path, framework="pt")  # the library: a state_dict, no pickle
    model = user_mlp()
    model.load_state_dict(state, strict=True)
    for i, bits in ((0, 4), (2, 4), (4, 5)):
        assert torch.unique(model[i].weight).numel() <= 2**bits
        assert (model[i].weight == 0).float().mean() >= 0.79
    assert torch.equal(load_packed(path)[0].weight, model[0].weight)  # through the manifest

    out = tmp_path / "unpacked.safetensors"  # the CLI
    done = subprocess.run([sys.executable, "-m", "modelpress.cli", "unpack", str(path), "-o", str(out)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    again = user_mlp()
    again.load_state_dict(load_file(str(out)), strict=True)
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), model.state_dict().values()))

    original = user_mlp()
    original.load_state_dict(load_file(str(digits_mlp_path)))
    x, y = digits_test_set
    acc_before, acc_after = accuracy(original.eval(), x, y), accuracy(model.eval(), x, y)
    print(f"\npacked: accuracy {acc_before:.4f} -> {acc_after:.4f}, {metrics['verdict']['size_ratio']}x smaller")
    assert acc_before - acc_after <= 0.05
    assert metrics["verdict"]["size_ratio"] > 12 and metrics["after"]["artifact"] == "model.mpk"
    assert metrics["artifacts"]["model.mpk"]["check"]["round_trip"] == "bit-exact"
    assert any("packed is a storage/transport format" in w for w in metrics["verdict"]["warnings"])
    assert any("fine-tuned 3 epochs" in n for n in metrics["notes"])


def test_kmeans_followed_by_a_step_is_422(api, digits_mlp_path):
    from tests.integration.helpers import submit

    response = submit(api, digits_mlp_path, spec({"method": "quantize", "kind": "kmeans"}, {"method": "prune", "kind": "magnitude", "amount": 0.5}))
    assert response.status_code == 422
    assert "codebooks" in response.json()["detail"]
