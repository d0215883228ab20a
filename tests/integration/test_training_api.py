"""The training steps over HTTP on real data (scikit-learn digits): finetune after pruning, distillation,
QAT, each with a ``train`` part (and an ``eval`` part for accuracy), plus the submit-time 422s."""

from __future__ import annotations

import io
import json
import warnings

import numpy as np
import pytest
import torch

from modelpress.datasets import digits_28x28
from tests.integration.helpers import spec, wait
from tests.integration.test_job_flow import download

FINETUNE = {"method": "finetune", "epochs": 3, "lr": 1e-3, "batch_size": 64, "max_seconds": 20}
STUDENT = {"architecture": "mlp", "config": {"sizes": [784, 32, 10]}}
CASES = {
    # name: (steps, data parts, max accuracy drop on the held-out eval split); the cheap one first
    "distill_data_free": ([{"method": "distill", "student": STUDENT, "epochs": 1, "synthetic_samples": 256}], ("eval",), 1.0),
    "magnitude_finetune": ([{"method": "prune", "kind": "magnitude", "amount": 0.9}, FINETUNE], ("train", "eval"), 0.02),
    "structured_finetune_int8": (
        [{"method": "prune", "kind": "structured", "amount": 0.5}, FINETUNE, {"method": "quantize", "kind": "static_int8"}],
        ("train", "eval"), 0.04,
    ),
    "distill": ([{"method": "distill", "student": STUDENT, "epochs": 8, "lr": 3e-3, "max_seconds": 20}], ("train", "eval"), 0.06),
    "qat": ([{"method": "quantize", "kind": "qat", "epochs": 2, "max_seconds": 20}], ("train", "eval"), 0.02),
}


def npz(inputs: np.ndarray, labels: np.ndarray | None = None) -> bytes:
    """Compressed, float16 inputs (the worker casts to the model's float32): the whole request fits the tier's 3 MiB limit."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, inputs=inputs.astype(np.float16), **({"labels": labels} if labels is not None else {}))
    return buffer.getvalue()


@pytest.fixture(scope="module")
def parts() -> dict[str, bytes]:
    x_train, y_train, x_test, y_test = digits_28x28()
    return {
        "train": npz(x_train, y_train),
        "eval": npz(x_test, y_test),
        "train_unlabelled": npz(x_train[:64]),
    }


def submit_with(api, model_path, job_spec: dict, data: dict[str, bytes]):
    files = {"model": ("model.safetensors", model_path.read_bytes(), "application/octet-stream")}
    files.update({name: (f"{name}.npz", content, "application/zip") for name, content in data.items()})
    return api.post("/jobs", files=files, data={"spec": json.dumps(job_spec)})


@pytest.fixture(scope="module")
def finished(stack, digits_mlp_path, parts, tmp_path_factory):
    import httpx

    from modelpress import ModelpressClient

    with httpx.Client(base_url=stack.base_url, timeout=60) as api:
        ids = {}
        for name, (steps, names, _) in CASES.items():
            if name == "qat":  # through the SDK's data parts
                folder = tmp_path_factory.mktemp("parts")
                paths = {n: folder / f"{n}.npz" for n in names}
                for n, path in paths.items():
                    path.write_bytes(parts[n])
                with ModelpressClient(stack.base_url) as client:
                    ids[name] = client.submit(digits_mlp_path, spec(*steps), data=paths)["id"]
                continue
            response = submit_with(api, digits_mlp_path, spec(*steps), {n: parts[n] for n in names})
            assert response.status_code == 202, response.text
            ids[name] = response.json()["id"]
        return {name: wait(api, job_id, timeout=300) for name, job_id in ids.items()}


@pytest.mark.parametrize("name", list(CASES))
def test_training_step_end_to_end(name, finished, api, tmp_path):
    steps, _, max_drop = CASES[name]
    job = finished[name]
    assert job["state"] == "succeeded", job["error"]
    metrics = api.get(f"/jobs/{job['id']}/metrics").json()
    from modelpress_core.metrics import Metrics

    assert len(Metrics.model_validate(metrics).training) == sum(s["method"] in ("finetune", "distill") or s["kind"] == "qat"
                                                                for s in steps)
    quality = metrics["quality"]
    print(f"\n{name}: " + json.dumps({
        "accuracy": [quality["top1_accuracy_before"], quality["top1_accuracy_after"]],
        "params": [metrics["before"]["parameters"], metrics["after"]["parameters"]],
        "size_ratio": metrics["verdict"]["size_ratio"], "speedup": metrics["verdict"].get("speedup"),
        "training": [(t["step"], t["epoch_loss"], t["seconds"]) for t in metrics["training"]],
    }))
    assert quality["accuracy_drop"] <= max_drop
    for record in metrics["training"]:
        assert record["epochs_completed"] >= 1 and record["epoch_loss"]
    if name == "magnitude_finetune":
        after = {layer["name"]: layer for layer in metrics["after"]["layers"]}
        weights = [layer for layer in after.values() if layer["type"] == "Linear"]
        # the zeros stay zero: exactly 90% of the weights across the layers (global magnitude pruning)
        zeros = sum(layer["sparsity"] * np.prod(layer["shape"]) for layer in weights)
        total = sum(np.prod(layer["shape"]) for layer in weights)
        assert zeros / total == pytest.approx(0.9, abs=1e-3)
        assert any("kept exactly as sparse" in n for n in metrics["notes"])
    if name == "structured_finetune_int8":
        assert "qint8" in metrics["after"]["dtypes"]
        assert metrics["after"]["parameters"] < 0.6 * metrics["before"]["parameters"]
    if name.startswith("distill"):
        assert metrics["after"]["parameters"] * 10 <= metrics["before"]["parameters"]
        path = download(api, job, "model.safetensors", tmp_path)
        from modelpress.artifacts import load_pruned

        student = load_pruned(path)  # rebuilt from the manifest: the student's architecture
        assert sum(p.numel() for p in student.parameters()) == metrics["after"]["parameters"]
    if name == "distill_data_free":
        assert any("data-free" in w for w in metrics["verdict"]["warnings"])
    if name == "qat":
        assert "qint8" in metrics["after"]["dtypes"]
        path = download(api, job, "model.torchscript.pt", tmp_path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = torch.jit.load(str(path))
            assert model(torch.zeros(2, 784)).shape == (2, 10)


@pytest.mark.parametrize(
    "steps,data,loc,needle",
    [
        ([FINETUNE], (), "steps.0", "send a 'train' part"),
        ([FINETUNE], ("train_unlabelled",), "steps.0", "needs 'labels'"),
        ([{"method": "quantize", "kind": "qat"}], ("eval",), "steps.0", "send a 'train' part"),
        ([{"method": "distill", "student": {"architecture": "no_such_net"}}], (), "steps.0.student.architecture", "unknown student"),
        ([{"method": "distill", "student": {"architecture": "mlp", "config": {"sizes": "wide"}}}], (), "steps.0.student.config", "config"),
        ([{"method": "distill", "student": {"prune_amount": 1.5}}], (), "steps.0.distill.student.prune_amount", "less than 1"),
        ([{"method": "prune", "kind": "magnitude", "amount": 1.0}, FINETUNE], ("train",), "steps.0.prune.magnitude.amount", "less than 1"),
        ([{"method": "quantize", "kind": "qat"}, FINETUNE], ("train",), "spec", "put quantization last"),
    ],
)
def test_training_specs_that_cannot_run_are_422(api, digits_mlp_path, parts, nothing_left_behind, steps, data, loc, needle):
    data_parts = {("train" if n == "train_unlabelled" else n): parts[n] for n in data}
    response = submit_with(api, digits_mlp_path, spec(*steps), data_parts)
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["type"].endswith("spec-invalid")
    assert needle in json.dumps(problem)
    assert loc == "spec" or any(e["loc"].startswith(loc) for e in problem["errors"]), problem


def test_a_training_job_reports_its_epochs_and_stops_when_cancelled(api, digits_mlp_path, parts, finished):
    """Progress shows phase 'training' with the epoch and its loss; a cancel lands between batches."""
    from tests.integration.helpers import wait_for

    long = {**FINETUNE, "epochs": 1000, "max_seconds": 300}
    response = submit_with(api, digits_mlp_path, spec(long), {"train": parts["train"]})
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    job = wait_for(api, job_id, lambda j: j["progress"]["phase"] == "training" and "loss" in j["progress"]["message"], timeout=120)
    assert job["progress"]["message"].startswith("finetune: epoch ") and job["progress"]["step"] == 0
    assert api.post(f"/jobs/{job_id}/cancel").status_code == 202
    job = wait(api, job_id, timeout=60)
    assert job["state"] == "cancelled" and job["artifacts"] == []
