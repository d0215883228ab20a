"""The embedded default: a private redis-server, the API and Celery workers as supervised children.

``Stack(...).start()`` returns once ``/readyz`` answers 200; ``stop()`` ends every child
(each in its own process group, and each told by the kernel to exit if we die), so
nothing is left behind. ``supervise()`` restarts a child that dies.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from modelpress.redis_server import free_port, load_or_create_password, redis_command
from modelpress_core.storage.private import PRIVATE_UMASK, open_private_append, private_dir, tighten, write_private

PR_SET_PDEATHSIG = 1


def _child_setup() -> None:
    """In each child before it runs: die with the stack, and create every file private (redis-server's AOF)."""
    os.umask(PRIVATE_UMASK)
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


@dataclass
class Child:
    name: str
    command: list[str]
    log_path: Path
    env: dict[str, str]
    process: subprocess.Popen | None = None
    restarts: int = 0

    def start(self) -> None:
        log = open_private_append(self.log_path)
        self.process = subprocess.Popen(
            self.command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=self.env,
            start_new_session=True,
            preexec_fn=_child_setup,
        )
        log.close()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float) -> None:
        if not self.alive():
            return
        assert self.process is not None
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        # celery's pool children share the group; make sure none outlived their parent
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@dataclass
class Stack:
    data_dir: Path
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    redis_url: str | None = None  # external Redis; None starts a private one
    workers: int = 1
    queues: str = "cpu"
    pool: str | None = None  # default: prefork on cpu, solo on gpu (CUDA does not survive fork)
    api_workers: int = 1  # uvicorn worker processes
    api_log_level: str = "warning"  # "info" adds uvicorn's access log
    extra_env: dict[str, str] = field(default_factory=dict)
    children: list[Child] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://{self.api_host}:{self.api_port}"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"

    def start(self, ready_timeout: float = 180.0, wait: bool = True) -> "Stack":
        """Start the children; with ``wait``, return once ``/readyz`` answers 200 (which needs a live worker:
        a stack of ``workers=0`` whose workers run elsewhere starts with ``wait=False``, then ``wait_ready``)."""
        private_dir(self.data_dir)
        tighten(self.data_dir)  # a data dir from before modes were kept private
        private_dir(self.log_dir)
        env = {**os.environ, "MODELPRESS_DATA_DIR": str(self.data_dir), "PYTHONUNBUFFERED": "1", **self.extra_env}
        if self.redis_url is None:
            redis_dir = self.data_dir / "redis"
            private_dir(redis_dir)
            port, password = free_port(), load_or_create_password(redis_dir)
            self.redis_url = f"redis://:{password}@127.0.0.1:{port}/0"
            write_private(redis_dir / "url", self.redis_url)  # for `modelpress keys` on this machine
            self._add("redis", redis_command(redis_dir, port, password), env)
            self.children[-1].start()
            self._wait_for_redis()
        env["MODELPRESS_REDIS_URL"] = self.redis_url
        env["MODELPRESS_API_HOST"], env["MODELPRESS_API_PORT"] = self.api_host, str(self.api_port)  # the auth rule reads the bind
        self._add(
            "api",
            [sys.executable, "-m", "uvicorn", "service.main:create_app", "--factory",
             "--host", self.api_host, "--port", str(self.api_port), "--log-level", self.api_log_level,
             "--http", "httptools", "--loop", "uvloop",  # the [server] extra's C parser and event loop
             *(["--workers", str(self.api_workers)] if self.api_workers > 1 else [])],
            env,
        )
        for i in range(self.workers):
            self._add(
                f"worker-{i}",
                [sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker", "-Q", self.queues,
                 "-n", f"{self.queues.replace(',', '-')}-{i}-{os.getpid()}@%h", "--loglevel", "INFO",
                 "--pool", self.pool or ("solo" if "gpu" in self.queues else "prefork")],
                env,
            )
        for child in self.children:
            if not child.alive():
                child.start()
        if wait:
            self.wait_ready(ready_timeout)
        return self

    def _add(self, name: str, command: list[str], env: dict[str, str]) -> None:
        self.children.append(Child(name, command, self.log_dir / f"{name}.log", dict(env)))

    def _wait_for_redis(self, timeout: float = 20.0) -> None:
        import redis

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                redis.Redis.from_url(self.redis_url, socket_timeout=1).ping()
                return
            except redis.RedisError:
                if not self.children[-1].alive():
                    raise RuntimeError(f"redis-server exited; see {self.children[-1].log_path}")
                time.sleep(0.1)
        raise RuntimeError(f"redis-server did not answer within {timeout}s")

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            for child in self.children:
                if not child.alive():
                    raise RuntimeError(f"{child.name} exited during start-up; see {child.log_path}:\n{tail(child.log_path)}")
            try:
                r = httpx.get(self.base_url + "/readyz", timeout=2)
                if r.status_code == 200:
                    return
                last = r.json().get("detail", r.text)
            except httpx.HTTPError as exc:
                last = type(exc).__name__
            time.sleep(0.25)
        raise RuntimeError(f"the stack was not ready within {timeout}s: {last}")

    def supervise_once(self) -> list[str]:
        """Restart any child that died; return the names restarted."""
        restarted = []
        for child in self.children:
            if not child.alive():
                child.restarts += 1
                child.start()
                restarted.append(child.name)
        return restarted

    def stop(self) -> None:
        for child in reversed(self.children):
            child.stop(timeout=30 if child.name.startswith("worker") else 10)

    def __enter__(self) -> "Stack":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def embedded_redis_url(data_dir: Path) -> str | None:
    """The Redis URL of the last private redis-server ``modelpress up`` started in ``data_dir``, if any."""
    try:
        return (data_dir / "redis" / "url").read_text().strip() or None
    except OSError:
        return None


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
