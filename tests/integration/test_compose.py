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
# what compose.env.example asks the operator to set
REQUIRED = {"REDIS_PASSWORD": "pw", "FLOWER_BASIC_AUTH": "admin:secret"}


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_compose_file_is_valid():
    if not shutil.which("docker-compose"):
        if os.environ.get("CI"):
            pytest.fail("docker-compose is not installed (.ci/run installs the Debian package)")
        pytest.skip("docker-compose not installed")
    env = {**os.environ, **REQUIRED}
    subprocess.run(["docker-compose", "-f", str(COMPOSE), "config", "-q"], check=True, cwd=ROOT, env=env)
    subprocess.run(["docker-compose", "-f", str(COMPOSE), "--profile", "gpu", "config", "-q"], check=True, cwd=ROOT, env=env)
    missing = subprocess.run(["docker-compose", "-f", str(COMPOSE), "config", "-q"], cwd=ROOT, capture_output=True, text=True,
                             env={k: v for k, v in os.environ.items() if k not in REQUIRED})
    assert missing.returncode != 0 and "REDIS_PASSWORD" in missing.stderr  # secrets are required, never defaulted


def test_compose_declares_the_product_services():
    services = compose()["services"]
    assert set(services) >= {"redis", "api", "worker-cpu", "worker-gpu", "flower"}
    assert "--appendonly" in services["redis"]["command"] and "--requirepass" in services["redis"]["command"]
    assert services["worker-gpu"]["profiles"] == ["gpu"]
    device = services["worker-gpu"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert device["driver"] == "nvidia"
    assert services["worker-cpu"]["command"][-4:-2] == ["-Q", "cpu"] and "-Q" in services["worker-gpu"]["command"]
    assert "container_name" not in services["worker-cpu"]  # scalable with --scale
    for name, service in services.items():
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
        assert service.get("restart") == "unless-stopped", name
    api_env = services["api"]["environment"]
    assert api_env["MODELPRESS_AUTH"] == "required" and "WEB_CONCURRENCY" in api_env
    for name in ("api", "worker-cpu", "worker-gpu", "flower"):
        env = services[name]["environment"]
        assert {"MODELPRESS_REDIS_URL", "MODELPRESS_ARTIFACT_STORE", "MODELPRESS_S3_BUCKET"} <= set(env), name


def interpolate(value) -> str:
    """Compose's ${VAR:-default} and ${VAR:?error} substitution, for the values this file uses."""
    def one(m: re.Match) -> str:
        name, op, arg = m.group(1), m.group(2), m.group(3)
        if op == ":?":
            return os.environ.get(name) or REQUIRED[name]
        return os.environ.get(name) or arg

    return re.sub(r"\$\{(\w+)(:-|:\?)([^}]*)\}", one, str(value))


def local_command(command: list[str], port: int) -> list[str]:
    """The compose command, run from this venv, with servers bound to loopback on a free port."""
    command = [sys.executable, "-m", command[0], *command[1:]]
    if "--port" in command:
        command[command.index("--port") + 1] = str(port)
    if "--host" in command:
        command[command.index("--host") + 1] = "127.0.0.1"
    command = [f"--port={port}" if c.startswith("--port=") else c for c in command]
    return ["--address=127.0.0.1" if c.startswith("--address=") else c for c in command]


def service_env(name: str, tmp_path: Path, redis_port: int) -> dict[str, str]:
    env = {**os.environ, **{k: interpolate(v) for k, v in compose()["services"][name]["environment"].items()}}
    env.update(MODELPRESS_REDIS_URL=f"redis://:pw@127.0.0.1:{redis_port}/0", MODELPRESS_DATA_DIR=str(tmp_path),
               MODELPRESS_ARTIFACT_DIR=str(tmp_path / "artifacts"), MODELPRESS_WORKER_HEARTBEAT_S="1",
               WEB_CONCURRENCY="2")  # several uvicorn processes, as in compose (2: this machine is small)
    return env


def wait_for_200(url: str, children: list[Child], deadline: float, **kwargs) -> httpx.Response | None:
    response = None
    while time.monotonic() < deadline:
        for child in children:
            assert child.alive(), f"{child.name} exited:\n{tail(child.log_path)}"
        try:
            response = httpx.get(url, timeout=2, **kwargs)
        except httpx.HTTPError:
            response = None
        if response is not None and response.status_code == 200:
            return response
        time.sleep(0.5)
    return response


def test_each_compose_service_command_becomes_ready(tmp_path):
    services = compose()["services"]
    redis_port, api_port, flower_port = free_port(), free_port(), free_port()
    (tmp_path / "redis").mkdir()
    children = [Child("redis", redis_command(tmp_path / "redis", redis_port, "pw"), tmp_path / "redis.log", dict(os.environ))]
    for name, port in (("api", api_port), ("worker-cpu", api_port), ("flower", flower_port)):
        children.append(Child(name, local_command(services[name]["command"], port), tmp_path / f"{name}.log",
                              service_env(name, tmp_path, redis_port)))
    try:
        for child in children:
            child.start()
            time.sleep(0.3)
        deadline = time.monotonic() + 120
        ready = wait_for_200(f"http://127.0.0.1:{api_port}/readyz", children, deadline)
        assert ready is not None and ready.status_code == 200, "\n".join(f"--- {c.name}\n{tail(c.log_path)}" for c in children)
        assert ready.json()["queues"] == {"cpu": 1, "gpu": 0}
        flower = wait_for_200(f"http://127.0.0.1:{flower_port}/healthcheck", children, deadline)
        assert flower is not None and flower.status_code == 200, tail(children[-1].log_path)
        assert httpx.get(f"http://127.0.0.1:{flower_port}/workers", timeout=5).status_code == 401  # basic auth is on
        assert httpx.get(f"http://127.0.0.1:{flower_port}/workers", timeout=10, auth=("admin", "secret")).status_code == 200
    finally:
        for child in reversed(children):
            child.stop(timeout=20)
