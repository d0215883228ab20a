"""worker.sandbox.landlock in a real child process: what a restricted process can and cannot reach."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from worker.sandbox import landlock

pytestmark = pytest.mark.skipif(landlock.abi_version() < 1, reason="this kernel has no Landlock")

ROOT = Path(__file__).resolve().parents[2]

CHILD = textwrap.dedent("""
    import json, os, socket, sys
    from worker.sandbox import landlock
    args = json.loads(sys.argv[1])
    if args["restrict"]:
        landlock.restrict(read=args["read"], write=args["write"])
    results = {}
    def attempt(name, action):
        try:
            action()
            results[name] = "ok"
        except OSError as exc:
            results[name] = f"{type(exc).__name__}:{exc.errno}"
    for i, path in enumerate(args["reads"]):
        attempt(f"read{i}", lambda path=path: open(path, "rb").read())
    for i, path in enumerate(args["writes"]):
        attempt(f"write{i}", lambda path=path: open(path, "wb").write(b"x"))
    for i, path in enumerate(args["execs"]):
        attempt(f"exec{i}", lambda path=path: os.posix_spawn(path, [path], {}))
    if args["port"]:
        attempt("connect", lambda: socket.create_connection(("127.0.0.1", args["port"]), timeout=5).close())
    print(json.dumps(results))
""")


def run_restricted(*, read=(), write=(), reads=(), writes=(), execs=(), port=0, restrict=True) -> dict:
    python_roots = sorted({sys.prefix, sys.base_prefix, "/usr/lib", "/lib", "/lib64", "/etc/ld.so.cache", str(ROOT / "worker")})
    args = {"restrict": restrict, "read": [*python_roots, *map(str, read)], "write": list(map(str, write)),
            "reads": list(map(str, reads)), "writes": list(map(str, writes)), "execs": list(map(str, execs)), "port": port}
    done = subprocess.run([sys.executable, "-c", CHILD, json.dumps(args)], capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(ROOT), "PATH": os.environ.get("PATH", "")}, check=True)
    return json.loads(done.stdout)


@pytest.fixture
def tree(tmp_path):
    allowed, sibling, out = tmp_path / "allowed", tmp_path / "sibling", tmp_path / "out"
    for d in (allowed, sibling, out):
        d.mkdir()
    (allowed / "a.txt").write_text("allowed")
    (sibling / "secret.txt").write_text("secret")
    return allowed, sibling, out


def test_abi_is_a_version_number():
    assert landlock.abi_version() >= 1


def test_reads_only_beneath_the_allowed_dir(tree):
    allowed, sibling, _ = tree
    result = run_restricted(read=[allowed], reads=[allowed / "a.txt", sibling / "secret.txt", "/etc/passwd"])
    assert result == {"read0": "ok", "read1": "PermissionError:13", "read2": "PermissionError:13"}


def test_without_the_restriction_the_same_reads_succeed(tree):
    allowed, sibling, _ = tree
    result = run_restricted(restrict=False, reads=[allowed / "a.txt", sibling / "secret.txt"])
    assert result == {"read0": "ok", "read1": "ok"}


def test_a_single_file_rule_allows_that_file_only(tree):
    allowed, sibling, _ = tree
    (sibling / "input.bin").write_bytes(b"input")
    result = run_restricted(read=[sibling / "input.bin"], reads=[sibling / "input.bin", sibling / "secret.txt"])
    assert result == {"read0": "ok", "read1": "PermissionError:13"}


def test_writes_only_in_the_writable_dir(tree):
    allowed, sibling, out = tree
    result = run_restricted(read=[allowed], write=[out], writes=[out / "new.bin", allowed / "a.txt", sibling / "secret.txt"])
    assert result == {"write0": "ok", "write1": "PermissionError:13", "write2": "PermissionError:13"}
    assert (allowed / "a.txt").read_text() == "allowed" and (sibling / "secret.txt").read_text() == "secret"


def test_proc_self_root_does_not_lead_around_the_rules(tree):
    _, sibling, _ = tree
    result = run_restricted(read=["/proc/self"], reads=[f"/proc/self/root{sibling / 'secret.txt'}"])
    assert result == {"read0": "PermissionError:13"}


def test_no_file_may_be_executed(tree):
    result = run_restricted(read=["/usr/bin", "/bin"], execs=["/bin/true"])
    assert result == {"exec0": "PermissionError:13"}


@pytest.mark.skipif(landlock.abi_version() < 4, reason="Landlock TCP rights need ABI 4")
def test_tcp_connect_is_denied_even_to_loopback():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert run_restricted(port=port, restrict=False) == {"connect": "ok"}
        assert run_restricted(port=port) == {"connect": "PermissionError:13"}
