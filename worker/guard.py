"""Per-job resource guards: a memory cap on the process's RSS, and the hard time limit's record update.

Celery's ``worker_max_memory_per_child`` only replaces a pool process *after* its task, and the
kernel's OOM killer takes the whole process without a word. So while a job runs, a watcher thread
reads the process's RSS (``/proc/self/statm``, plus its sandbox child's, see ``watch``) every
``interval`` s; past the cap it:

1. raises ``MemoryLimitExceeded`` in the job's thread (``PyThreadState_SetAsyncExc``; it lands at the
   next Python bytecode, so a long C kernel finishes first); the task fails the job with a
   ``memory-limit`` problem, and ``worker_max_memory_per_child`` then recycles the process;
2. if the job still runs ``grace_s`` later (the exception was swallowed, or one C call keeps
   growing), calls ``on_kill`` (which fails the job with the same reason) and SIGKILLs its own
   process: with the prefork pool Celery starts a fresh child and the redelivered message finds the
   job finished. (With ``--pool solo`` that is the whole worker; its supervisor restarts it.)

RLIMIT_AS is not used: torch and its thread pools reserve far more address space than they touch.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator

from modelpress_core.errors import MemoryLimitExceeded  # noqa: F401  (raised and re-exported here)

log = logging.getLogger("modelpress.worker")

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_mb(pid: int | str = "self") -> float:
    """Resident memory of a process (this one by default); 0 for one that is gone."""
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * PAGE / 2**20
    except (OSError, IndexError, ValueError):
        if pid == "self":
            raise
        return 0.0


def memory_problem(limit_mb: int, seen_mb: float) -> dict:
    return MemoryLimitExceeded(
        f"the job's worker process reached {seen_mb:.0f} MiB resident memory, over its cap of {limit_mb} MiB "
        "(MODELPRESS_WORKER_MAX_MEMORY_MB); use a smaller model or data, or raise the cap",
        limit_mb=limit_mb, rss_mb=round(seen_mb),
    ).to_problem()


class MemoryGuard:
    def __init__(self, limit_mb: int, *, on_kill: Callable[[float], None] | None = None,
                 interval: float = 0.1, grace_s: float = 5.0):
        self.limit_mb = limit_mb
        self.on_kill = on_kill
        self.interval = interval
        self.grace_s = grace_s
        self.peak_mb = 0.0
        self.tripped = False
        self._stop = threading.Event()
        self._target = threading.get_ident()
        self.child: int | None = None  # a sandbox child working for this job: its memory counts too

    def watch(self, pid: int | None) -> None:
        """Count ``pid``'s resident memory with this process's (None: stop counting it)."""
        self.child = pid

    def rss(self) -> float:
        child = self.child
        return rss_mb() + (rss_mb(child) if child else 0.0)

    def _watch(self) -> None:
        tripped_at = None
        while not self._stop.wait(self.interval):
            rss = self.rss()
            self.peak_mb = max(self.peak_mb, rss)
            if rss <= self.limit_mb:
                continue
            if tripped_at is None:
                tripped_at = time.monotonic()
                self.tripped = True
                log.warning("job over its memory cap: %.0f MiB > %d MiB; stopping it", rss, self.limit_mb)
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(self._target), ctypes.py_object(MemoryLimitExceeded))
            elif time.monotonic() - tripped_at > self.grace_s and not self._stop.is_set():
                log.error("job still over its memory cap %.1f s after the stop request; killing the process", self.grace_s)
                try:
                    if self.on_kill:
                        self.on_kill(self.peak_mb)
                finally:
                    os.kill(os.getpid(), signal.SIGKILL)

    def problem(self) -> dict:
        return memory_problem(self.limit_mb, self.peak_mb)


@contextmanager
def memory_guard(limit_mb: int, **kwargs) -> Iterator[MemoryGuard | None]:
    """Watch this thread's process while the block runs; ``limit_mb`` 0 watches nothing."""
    if not limit_mb:
        yield None
        return
    guard = MemoryGuard(limit_mb, **kwargs)
    thread = threading.Thread(target=guard._watch, name="memory-guard", daemon=True)
    thread.start()
    try:
        yield guard
    finally:
        guard._stop.set()
        thread.join()
        if guard.tripped:  # an exception not yet delivered must not land in whatever runs next
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(guard._target), None)
