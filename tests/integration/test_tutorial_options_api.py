"""The tutorial's options over HTTP, on real digits: the demo's recipe (prune + finetune + int8 in the packed sparse
int8 layout), pruning masks kept (permanent: false) and reloaded with torch's hooks, and an ExecuTorch .pte."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from torch.nn.utils import prune

from modelpress.artifacts import load_packed, load_pruned
from modelpress.datasets import digits_28x28
from modelpress.examples import accuracy
from tests.integration.helpers import spec, wait
from tests.integration.test_job_flow import download, user_mlp
from tests.integration.test_packed_api import npz


def post(api, model_path, job_spec, **parts):
    files = {"model": ("m.safetensors", model_path.read_bytes(), "application/octet-stream"),
             **{k: (f"{k}.npz", v, "application/zip") for k, v in parts.items()}}
    response = api.post("/jobs", files=files, data={"spec": json.dumps(job_spec)})
    assert response.status_code == 202, response.text
    job = wait(api, response.json()["id"], timeout=300)
    assert job["state"] == "succeeded", job["error"]
    return job, api.get(f"/jobs/{job['id']}/metrics").json()


def test_the_demo_recipe_is_small_and_keeps_accuracy(api, digits_mlp_path, digits_test_set, tmp_path):
    x_train, y_train, _, _ = digits_28x28()
    job_spec = spec({"method": "prune", "kind": "magnitude", "amount": 0.9},
                    {"method": "finetune", "kind": "train", "epochs": 5},
                    {"method": "quantize", "kind": "dynamic_int8"}, outputs=["packed"])
    job, metrics = post(api, digits_mlp_path, job_spec,
                        train=npz(inputs=x_train[:700].astype(np.float16), labels=y_train[:700]))  # under the 3 MiB upload limit
    path = download(api, job, "model.mpk", tmp_path)
    model = load_packed(path, skeleton=user_mlp())
    original = user_mlp()
    original.load_state_dict(load_file(str(digits_mlp_path)))
    x, y = digits_test_set
    acc_before, acc_after = accuracy(original.eval(), x, y), accuracy(model, x, y)
    assert metrics["verdict"]["size_ratio"] > 15 and metrics["artifacts"]["model.mpk"]["check"]["layout"] == "sparse int8 (dynamic)"
    assert acc_before - acc_after <= 0.02, (acc_before, acc_after)
    assert not any("storage/transport format" in w for w in metrics["verdict"]["warnings"])  # int8 kernels ran


def test_prune_int8_torchscript_warns_that_pruning_did_not_shrink_it(api, digits_mlp_path):
    _, metrics = post(api, digits_mlp_path, spec({"method": "prune", "kind": "magnitude", "amount": 0.9},
                                                 {"method": "quantize", "kind": "dynamic_int8"}))
    assert any(w.startswith("pruning did not shrink the file") and "'packed'" in w for w in metrics["verdict"]["warnings"])


def test_kept_masks_come_back_as_torchs_reparametrization(api, digits_mlp_path, tmp_path):
    job, metrics = post(api, digits_mlp_path, spec({"method": "prune", "kind": "magnitude", "amount": 0.5, "permanent": False},
                                                   {"method": "prune", "kind": "magnitude", "amount": 0.5, "permanent": False}))
    path = download(api, job, "model.safetensors", tmp_path)
    reloaded = load_pruned(path, skeleton=user_mlp())
    by_hand = user_mlp()
    by_hand.load_state_dict(load_file(str(digits_mlp_path)))
    for _ in range(2):
        prune.global_unstructured([(by_hand[i], "weight") for i in (0, 2, 4)], pruning_method=prune.L1Unstructured, amount=0.5)
    for i in (0, 2, 4):
        assert prune.is_pruned(reloaded[i]) and torch.equal(reloaded[i].weight_mask, by_hand[i].weight_mask)
        assert torch.equal(reloaded[i].weight_orig, by_hand[i].weight_orig)
    assert metrics["after"]["sparsity"] == pytest.approx(0.75, abs=0.005)  # over every parameter, biases (unpruned) included
    assert "75.0% of the targeted weight values are now zero" in metrics["notes"][-1]


def test_executorch_int8_pte(api, digits_mlp_path, tmp_path):
    pytest.importorskip("executorch")
    from modelpress.artifacts import load_executorch

    job, metrics = post(api, digits_mlp_path, spec({"method": "quantize", "kind": "dynamic_int8", "runtime": "executorch"}))
    assert [a["name"] for a in job["artifacts"]] == ["model.pte"]
    assert metrics["verdict"]["runtime"] == "executorch" and metrics["fidelity"]["top1_agreement"] >= 0.95
    program = load_executorch(download(api, job, "model.pte", tmp_path))
    assert program(torch.zeros(2, 784)).shape == (2, 10)
