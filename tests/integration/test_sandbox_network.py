"""A sandbox child cannot reach the test's real redis-server on 127.0.0.1, by two independent locks
(a fresh network namespace, and Landlock's TCP rights); without them the same code reaches it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from worker.sandbox import host, landlock

pytestmark = pytest.mark.skipif(landlock.abi_version() < 4, reason="needs Landlock ABI 4 (TCP rights)")


def attempt(mode: str, port: int, work_dir) -> dict:
    env = host.child_environment(work_dir, scrub=True, threads=1, settings=type("S", (), {
        "search_max_seconds": 1, "sensitivity_max_layers": 1, "sensitivity_max_samples": 1,
        "torchscript_op_check": True})())
    done = subprocess.run([sys.executable, "-P", "-m", "tests.integration.sandbox_net_child", mode, str(port), str(work_dir)],
                          capture_output=True, text=True, timeout=120, env=env, cwd=work_dir, check=True)
    return json.loads(done.stdout)


@pytest.fixture
def redis_port(private_redis):
    return private_redis.connection_pool.connection_kwargs["port"]


def test_unconfined_the_child_reaches_redis(redis_port, tmp_path):
    outcome = attempt("off", redis_port, tmp_path)
    assert outcome["connected"] and outcome["reply"].startswith("-NOAUTH"), outcome


def test_confined_the_child_cannot_reach_redis(redis_port, tmp_path):
    outcome = attempt("on", redis_port, tmp_path)  # both locks; Landlock's check comes first
    assert outcome == {"connected": False, "error": "PermissionError: Permission denied"}


def test_the_network_namespace_alone_blocks_it(redis_port, tmp_path):
    assert attempt("netns", redis_port, tmp_path) == {"connected": False, "error": "OSError: Network is unreachable"}


def test_landlock_alone_blocks_it(redis_port, tmp_path):
    assert attempt("landlock", redis_port, tmp_path) == {"connected": False, "error": "PermissionError: Permission denied"}
