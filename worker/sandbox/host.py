"""The worker's side of the sandbox: start a confined child for one job, relay what it says, end it.

The child is a fresh interpreter (``subprocess`` exec, not a fork: nothing of the worker's memory,
Redis URL or settings is in it) with a minimal environment, its own process group, stdin closed,
stdout/stderr drained into a bounded tail, and two pipes: the request in, typed messages out.
While it runs, the worker relays progress and log lines to the job record and polls the record for
a cancel. It SIGKILLs the child's process group on cancel, the soft time limit, the memory guard and
any exception, and as soon as the final message is in (no wait for torch's teardown). The result's
files are checked and copied by ``outputs.collect``.
"""

from __future__ import annotations

import collections
import os
import re
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from celery.utils.log import get_logger

from modelpress_core.errors import PROBLEM_BASE, JobFailed, ModelpressError, SandboxFailed, problem_class
from worker.sandbox import policy, protocol

log = get_logger("modelpress.sandbox")  # under celery's logger: shown in the worker log (the root logger is not hijacked)

STDERR_TAIL_BYTES = 8192
SLUG = re.compile(r"^[a-z0-9-]{1,60}$")
# settings the pipeline reads itself (get_settings()) that the child needs; none is a secret
CHILD_SETTINGS = ("search_max_seconds", "sensitivity_max_layers", "sensitivity_max_samples", "torchscript_op_check")
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def child_environment(work_dir: Path, *, scrub: bool, threads: int, settings) -> dict[str, str]:
    """The child's whole environment: only what Python and torch need (``scrub``), or the worker's own."""
    pythonpath = str(policy.project_root())
    if not scrub:
        return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (pythonpath, os.environ.get("PYTHONPATH")) if p)}
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": str(work_dir), "TMPDIR": str(work_dir),
           "PYTHONPATH": pythonpath, "PYTHONNOUSERSITE": "1", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1"}
    for name in THREAD_VARIABLES:
        if threads:
            env[name] = str(threads)
        elif name in os.environ:
            env[name] = os.environ[name]
    for name in CHILD_SETTINGS:
        env[f"MODELPRESS_{name.upper()}"] = str(getattr(settings, name))
    return env


class SandboxChild:
    """One running child. ``read(timeout)`` returns the messages that arrived, or None once it closed its pipe."""

    def __init__(self, request: protocol.Request, env: dict[str, str]):
        request.parent_pid = os.getpid()
        encoded = protocol.encode(request)  # before anything starts: over the cap, nothing is left running
        request_r, request_w = os.pipe()
        message_r, message_w = os.pipe()
        output_r, output_w = os.pipe()
        self.started = time.monotonic()
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-P", "-m", "worker.sandbox.child", str(request.parent_pid), str(request_r), str(message_w)],
                stdin=subprocess.DEVNULL, stdout=output_w, stderr=output_w, env=env, cwd=request.work_dir,
                close_fds=True, pass_fds=(request_r, message_w), start_new_session=True,
            )
        finally:
            for fd in (request_r, message_w, output_w):
                os.close(fd)
        self.pid = self.process.pid
        self._messages = message_r
        self._lines = protocol.LineReader()
        self._tail: collections.deque[bytes] = collections.deque()
        self._tail_bytes = 0
        self._drainer = threading.Thread(target=self._drain, args=(output_r,), name=f"sandbox-{self.pid}-output", daemon=True)
        self._drainer.start()
        self._request = (request_w, encoded)

    def send_request(self) -> None:
        fd, data = self._request
        try:
            with os.fdopen(fd, "wb") as pipe:
                pipe.write(data)
        except BrokenPipeError:
            pass  # it died before reading: its exit says why

    def _drain(self, fd: int) -> None:
        with os.fdopen(fd, "rb", buffering=0) as pipe:
            while chunk := pipe.read(65536):
                self._tail.append(chunk)
                self._tail_bytes += len(chunk)
                while self._tail_bytes - len(self._tail[0]) >= STDERR_TAIL_BYTES:
                    self._tail_bytes -= len(self._tail.popleft())

    def output_tail(self) -> str:
        return b"".join(self._tail)[-STDERR_TAIL_BYTES:].decode(errors="replace")

    def read(self, timeout: float) -> list[protocol.Message] | None:
        ready, _, _ = select.select([self._messages], [], [], timeout)
        if not ready:
            return []
        data = os.read(self._messages, 1 << 20)
        if not data:
            return None
        return [protocol.parse(line) for line in self._lines.feed(data)]

    def pending(self, timeout: float) -> bool:
        """Is there anything left to read on the message pipe?"""
        return bool(select.select([self._messages], [], [], timeout)[0])

    def kill(self) -> int | None:
        """SIGKILL the child's whole process group (it and anything it forked); reap it; return its exit status."""
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            code = self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            code = None
        os.close(self._messages)
        self._drainer.join(timeout=5)
        return code


def problem_error(failure: protocol.Failure) -> ModelpressError:
    """The child's Failure as an error the task stores as the job's problem (type checked, detail capped)."""
    slug = failure.type[len(PROBLEM_BASE):] if failure.type.startswith(PROBLEM_BASE) else ""
    known = problem_class(slug) if SLUG.match(slug) else None
    detail = protocol.bounded_text(failure.detail, protocol.MAX_DETAIL_CHARS)
    if known is None:  # outside the namespace, or no class of ours: the child cannot invent a problem type
        return JobFailed(detail)
    return known(detail, title=failure.title[:200])


def run_child(request: protocol.Request, env: dict[str, str], *, on_message: Callable[[protocol.Message, float], None],
              check_cancelled: Callable[[], None] = lambda: None, poll_s: float = 0.5,
              watch: Callable[[int | None], None] = lambda pid: None) -> protocol.Result | protocol.Ready:
    """Run one child to its end: its final message (a Result; the Ready of a probe), or raise.

    ``on_message(message, seconds since start)`` sees every Ready/Progress/Log; ``check_cancelled``
    runs every ``poll_s`` (it raises to stop the job); ``watch`` is told the child's pid (then None)."""
    child = SandboxChild(request, env)
    watch(child.pid)
    final: protocol.Message | None = None
    try:
        child.send_request()
        next_poll = time.monotonic() + poll_s
        while True:
            messages = child.read(timeout=poll_s)
            if messages is None or (not messages and child.process.poll() is not None and not child.pending(0.1)):
                break  # its pipe closed, or it exited (a grandchild may still hold the pipe open)
            for message in messages:
                if isinstance(message, (protocol.Result, protocol.Failure)) or (request.probe and isinstance(message, protocol.Ready)):
                    final = message
                    break
                on_message(message, time.monotonic() - child.started)
            if final is not None:
                break  # no need to wait for its interpreter to tear torch down: it is killed below
            if time.monotonic() >= next_poll:
                check_cancelled()
                next_poll = time.monotonic() + poll_s
    except protocol.ProtocolError as exc:
        raise SandboxFailed(f"the sandboxed job broke its protocol: {exc}") from None
    finally:
        watch(None)
        code = child.kill()
        if final is None or isinstance(final, protocol.Failure):
            log.warning("sandbox child %s ended (exit %s); its last output:\n%s", child.pid, code, child.output_tail()[-2000:])
    if isinstance(final, protocol.Failure):
        raise problem_error(final)
    if final is None:
        how = f"was killed by signal {-code}" if code is not None and code < 0 else f"exited with code {code}"
        raise SandboxFailed(f"the sandboxed job {how} before it sent a result")
    return final
