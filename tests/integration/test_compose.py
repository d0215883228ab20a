"""docker-compose.yml is valid, and each service's own command runs and becomes ready here."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from modelpress.redis_server import free_port, redis_command
from modelpress.stack import Child, tail

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_compose_file_is_valid():
    if not shutil.which("docker-compose"):
        if os.environ.get("CI"):
            pytest.fail("docker-compose is not installed (.ci/run installs the Debian package)")
        pytest.skip("docker-compose not installed")
    subprocess.run(["docker-compose", "-f", str(COMPOSE), "config", "-q"], check=True, cwd=ROOT)
    subprocess.run(["docker-compose", "-f", str(COMPOSE), "--profile", "gpu", "config", "-q"], check=True, cwd=ROOT)


def test_compose_declares_the_product_services():
    services = compose()["services"]
    assert set(services) >= {"redis", "api", "worker-cpu", "worker-gpu"}
    assert "--appendonly" in services["redis"]["command"]
    assert services["worker-gpu"]["profiles"] == ["gpu"]
    device = services["worker-gpu"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert device["driver"] == "nvidia"
    assert "-Q" in services["worker-cpu"]["command"] and "cpu" in services["worker-cpu"]["command"]


def interpolate(value) -> str:
    """Compose's ${VAR:-default} substitution, for the values this file uses."""
    return re.sub(r"\$\{(\w+):-([^}]*)\}", lambda m: os.environ.get(m.group(1), m.group(2)), str(value))


def local_command(command: list[str], port: int) -> list[str]:
    """The compose command, run from this venv, with the API bound to loopback on a free port."""
    command = [sys.executable, "-m", command[0], *command[1:]]
    if "--port" in command:
        command[command.index("--port") + 1] = str(port)
    if "--host" in command:
        command[command.index("--host") + 1] = "127.0.0.1"
    return command


def test_each_compose_service_command_becomes_ready(tmp_path):
    services = compose()["services"]
    redis_port, api_port = free_port(), free_port()
    env = {**os.environ, **{k: interpolate(v) for k, v in services["api"]["environment"].items()}}
    env.update(MODELPRESS_REDIS_URL=f"redis://:pw@127.0.0.1:{redis_port}/0", MODELPRESS_DATA_DIR=str(tmp_path),
               MODELPRESS_ARTIFACT_DIR=str(tmp_path / "artifacts"), MODELPRESS_WORKER_HEARTBEAT_S="1")
    (tmp_path / "redis").mkdir()
    children = [Child("redis", redis_command(tmp_path / "redis", redis_port, "pw"), tmp_path / "redis.log", env)]
    for name in ("api", "worker-cpu"):
        children.append(Child(name, local_command(services[name]["command"], api_port), tmp_path / f"{name}.log", env))
    try:
        for child in children:
            child.start()
            time.sleep(0.3)
        deadline = time.monotonic() + 120
        status = None
        while time.monotonic() < deadline:
            for child in children:
                assert child.alive(), f"{child.name} exited:\n{tail(child.log_path)}"
            try:
                status = httpx.get(f"http://127.0.0.1:{api_port}/readyz", timeout=2).status_code
            except httpx.HTTPError:
                status = None
            if status == 200:
                break
            time.sleep(0.5)
        assert status == 200, "\n".join(f"--- {c.name}\n{tail(c.log_path)}" for c in children)
    finally:
        for child in reversed(children):
            child.stop(timeout=20)
