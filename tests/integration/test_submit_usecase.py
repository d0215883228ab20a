"""Submit as a use case, on the real stack: each upload staged once and adopted by the store, typed inputs on the
record, no KEYS scan, and no round trip to a worker when the workers have published the expected shapes."""

from __future__ import annotations

import hashlib
import json
import threading
import time

import numpy as np
import redis as redis_lib

from modelpress_core.inspection import shapes_digest
from modelpress_core.job import JobRecord
from modelpress_core.storage import keys
from tests.integration.helpers import MLP_MODEL, staging_files, submit, wait

STEPS = [{"method": "prune", "kind": "magnitude", "amount": 0.5}]


class CommandLog:
    """Every command Redis runs between ``start()`` and the marker ``stop()`` sends (MONITOR; no clock windows)."""

    def __init__(self, url: str):
        self.client = redis_lib.Redis.from_url(url, socket_timeout=60)
        self.marker = f"end-of-log-{time.monotonic_ns()}"
        self.commands: list[str] = []
        self._ready = threading.Event()

    def _run(self) -> None:
        with self.client.monitor() as monitor:
            self.client.echo("monitor-ready")
            for event in monitor.listen():
                command = event["command"]
                if "monitor-ready" in command:
                    self._ready.set()
                    continue
                if self.marker in command:
                    return
                self.commands.append(command)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        assert self._ready.wait(30)

    def stop(self) -> list[str]:
        self.client.echo(self.marker)
        self._thread.join(30)
        assert not self._thread.is_alive()
        return self.commands


def _wait_for_key(client: redis_lib.Redis, key: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while client.get(key) is None:
        assert time.monotonic() < deadline, f"no worker published {key}"
        time.sleep(0.1)


def test_an_upload_is_stored_once_with_typed_inputs(api, stack, digits_mlp_path, artifact_root, tmp_path):
    data = tmp_path / "eval.npz"
    rng = np.random.default_rng(0)
    np.savez(data, inputs=rng.normal(size=(8, 784)).astype("float32"), labels=rng.integers(0, 10, 8))
    response = api.post("/jobs", files={"model": ("m.safetensors", digits_mlp_path.read_bytes()), "eval": ("e.npz", data.read_bytes())},
                        data={"spec": json.dumps({"model": MLP_MODEL, "steps": STEPS})})
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    record = JobRecord.model_validate_json(redis_lib.Redis.from_url(stack.redis_url).get(keys.job(job_id)))
    assert record.model.name == "model.safetensors" and record.model.sha256 == hashlib.sha256(digits_mlp_path.read_bytes()).hexdigest()
    assert set(record.data) == {"eval"} and record.data["eval"].name == "eval.npz"
    assert record.data["eval"].sha256 == hashlib.sha256(data.read_bytes()).hexdigest()
    stored = artifact_root / job_id / "inputs"
    assert hashlib.sha256((stored / "model.safetensors").read_bytes()).hexdigest() == record.model.sha256
    assert [i.name for i in record.inputs] == ["model.safetensors", "eval.npz"]  # what GET /jobs/{id} lists, as before
    assert staging_files(artifact_root) == []
    assert wait(api, job_id)["state"] == "succeeded"


def test_a_fitting_upload_needs_no_worker_round_trip_and_no_keys_scan(api, stack, digits_mlp_path):
    client = redis_lib.Redis.from_url(stack.redis_url)
    first = submit(api, digits_mlp_path, {"model": MLP_MODEL, "steps": STEPS})  # a worker checks it and publishes the shapes
    assert first.status_code == 202, first.text
    _wait_for_key(client, keys.expected_shapes(shapes_digest("mlp", MLP_MODEL["config"])))
    default_config = {k: v for k, v in MLP_MODEL.items() if k != "config"}  # the zoo's defaults: published at start-up
    _wait_for_key(client, keys.expected_shapes(shapes_digest("mlp", {})))
    # whether the steps apply needs the model built: a worker answers once per (architecture, config, steps) and
    # publishes its verdict before it replies, so after these two submits the same specs need no round trip
    warm = submit(api, digits_mlp_path, {"model": default_config, "steps": STEPS})
    assert warm.status_code == 202, warm.text

    log = CommandLog(stack.redis_url)
    log.start()
    again = submit(api, digits_mlp_path, {"model": MLP_MODEL, "steps": STEPS})
    default = submit(api, digits_mlp_path, {"model": default_config, "steps": STEPS})
    commands = log.stop()
    assert again.status_code == 202 and default.status_code == 202, (again.text, default.text)
    assert any(keys.expected_shapes("") in c for c in commands), "the published shapes were read"
    assert not [c for c in commands if keys.inspect_requests() in c and "RPUSH" in c.upper()], "no request to a worker"
    assert not [c for c in commands if c.upper().startswith('"KEYS"')], "no KEYS scan"

    unseen = {**MLP_MODEL, "config": {**MLP_MODEL["config"], "activation": "relu"}}  # same shapes, a config not yet published
    log = CommandLog(stack.redis_url)
    log.start()
    asked = submit(api, digits_mlp_path, {"model": unseen, "steps": STEPS})
    commands = log.stop()
    assert asked.status_code == 202, asked.text
    assert [c for c in commands if keys.inspect_requests() in c and "RPUSH" in c.upper()], "an unseen config is asked of a worker"
    for job_id in (first.json()["id"], warm.json()["id"], again.json()["id"], default.json()["id"], asked.json()["id"]):
        assert wait(api, job_id)["state"] == "succeeded"


def test_a_state_dict_that_does_not_fit_still_gets_the_worker_s_report(api, stack, digits_mlp_path):
    wrong = {**MLP_MODEL, "config": {"sizes": [784, 200, 10]}}
    response = submit(api, digits_mlp_path, {"model": wrong, "steps": STEPS})
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["type"].endswith("/upload-invalid") and problem["mismatched"], problem
