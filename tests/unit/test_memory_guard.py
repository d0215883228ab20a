"""The per-job memory guard, in a child process that really grows past its cap."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PRELUDE = """
import sys
from worker.guard import MemoryLimitExceeded, memory_guard, rss_mb
cap = int(rss_mb()) + 64
hold = []
"""


def run(code: str, tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(PRELUDE) + textwrap.dedent(code)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, env={"PYTHONPATH": str(ROOT), "OUT": str(tmp_path)})


def test_a_job_past_the_cap_is_stopped_with_the_reason(tmp_path):
    result = run("""
        try:
            import time
            with memory_guard(cap, interval=0.05) as guard:
                while rss_mb() < cap + 32:
                    hold.append(bytearray(8 * 2**20))
                deadline = time.monotonic() + 30  # the guard thread may be slow to run on a loaded machine
                while time.monotonic() < deadline:
                    sum(range(20000))  # Python bytecode, where the stop lands
        except MemoryLimitExceeded:
            problem = guard.problem()
            print(problem["type"], problem["limit_mb"] == cap, problem["rss_mb"] > cap)
            sys.exit(0)
        sys.exit(3)
    """, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["https://modelpress.dev/problems/memory-limit", "True", "True"]


def test_a_job_that_swallows_the_stop_is_killed_after_recording_why(tmp_path):
    result = run("""
        import os
        def record(peak):
            open(os.environ["OUT"] + "/killed", "w").write(str(peak))
        with memory_guard(cap, interval=0.05, grace_s=0.5, on_kill=record):
            while True:
                try:
                    hold.append(bytearray(8 * 2**20)) if len(hold) < 16 else sum(range(1000))
                except BaseException:
                    pass  # a careless job: ignores the stop request
    """, tmp_path)
    assert result.returncode == -signal.SIGKILL
    assert float((tmp_path / "killed").read_text()) > 64


def test_no_cap_no_guard():
    from worker.guard import memory_guard

    with memory_guard(0) as guard:
        assert guard is None


def test_a_watched_child_s_memory_counts_too():
    from worker.guard import MemoryGuard, rss_mb

    child = subprocess.Popen([sys.executable, "-c", "import sys; b = bytearray(200 * 2**20); sys.stdin.read()"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        guard = MemoryGuard(limit_mb=10**6)
        own = guard.rss()
        guard.watch(child.pid)
        for _ in range(200):  # until the child has touched its 200 MiB
            if rss_mb(child.pid) > 150:
                break
            time.sleep(0.05)
        assert guard.rss() >= own + 150
        guard.watch(None)
        assert guard.rss() < own + 150
    finally:
        child.communicate("")
    assert rss_mb(child.pid) == 0.0  # gone: counted as nothing
