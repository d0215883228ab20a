"""What a hostile tenant sends, over HTTP on the shared stack: absurd integers and duplicate keys are
422 at submit; an exception text of any length comes back as a bounded detail."""

from __future__ import annotations

import io
import json

import pytest
import torch

from modelpress_core.errors import MAX_DETAIL_CHARS
from tests.integration.helpers import MLP_MODEL, spec, submit, wait

INT8 = {"method": "quantize", "kind": "dynamic_int8"}
MESSAGE_CHARS = 200_000


class LoudFailure(torch.nn.Module):
    """A TorchScript model whose forward raises an exception with a 200,000-character message."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 2)
        self.message = "A" * MESSAGE_CHARS

    def forward(self, x):
        y = self.fc(x)
        if bool(torch.isfinite(y).all()):
            raise RuntimeError(self.message)
        return y


def problem_of(response, status: int = 422) -> dict:
    assert response.status_code == status, response.text[:500]
    assert response.headers["content-type"] == "application/problem+json"
    return response.json()


@pytest.mark.usefixtures("nothing_left_behind")
def test_a_seed_of_2_to_the_70_is_refused_at_submit_naming_the_field(api, digits_mlp_path):
    problem = problem_of(submit(api, digits_mlp_path, spec(INT8, seed=2**70)))
    assert problem["type"].endswith("/spec-invalid")
    assert problem["errors"][0]["loc"] == "seed" and "4294967295" in problem["errors"][0]["msg"]


@pytest.mark.usefixtures("nothing_left_behind")
def test_a_duplicate_key_is_refused_at_submit_naming_it(api, digits_mlp_path):
    text = json.dumps(spec({"method": "prune", "kind": "magnitude", "amount": 0.1}, INT8)).replace(
        '"amount": 0.1', '"amount": 0.1, "amount": 0.95')
    problem = problem_of(submit(api, digits_mlp_path, text))
    assert problem["type"].endswith("/spec-invalid")
    assert problem["errors"] == [{"loc": "amount", "msg": "duplicate key", "type": "json_duplicate_key"}]
    nested = json.dumps({"model": MLP_MODEL, "steps": [INT8]}).replace('"dtype": "float32"', '"dtype": "float32", "dtype": "float16"')
    assert "'dtype' twice" in problem_of(submit(api, digits_mlp_path, nested))["detail"]


def test_a_failed_jobs_detail_is_capped(api):
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(LoudFailure().eval()), buffer)
    job_spec = {"model": {"format": "torchscript", "input": {"shape": [1, 4], "dtype": "float32"}},
                "steps": [{"method": "prune", "kind": "magnitude", "amount": 0.5}], "evaluate": {"latency": False}}
    response = submit(api, buffer.getvalue(), job_spec, filename="loud.pt")
    assert response.status_code == 202, response.text[:500]
    job_id = response.json()["id"]
    job = wait(api, job_id)
    assert job["state"] == "failed"
    detail = job["error"]["detail"]
    assert len(detail) <= MAX_DETAIL_CHARS and "AAAA" in detail
    assert "cut:" in detail and "shown]" in detail  # the marker says it was cut
    assert len(json.dumps(job["error"])) < 3 * MAX_DETAIL_CHARS
    failed_line = next(line for line in api.get(f"/jobs/{job_id}/logs").json()["lines"] if line["message"].startswith("failed:"))
    assert len(failed_line["message"]) <= MAX_DETAIL_CHARS + len("failed: ")
