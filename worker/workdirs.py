"""Job work folders in the temp dir, and removing the ones a killed run left behind.

A run works in ``<tmp>/modelpress-<job>-<random>/`` and holds an exclusive ``flock`` on its
``.lock`` file for as long as it runs. The kernel drops the lock when the process dies, however it
dies (``kill -9``, OOM), so a folder whose lock can be taken belongs to no live run on this host and
is removed: at worker start and then every ``ORPHAN_SCAN_S`` by every worker (temp dirs are per host).

Staging leftovers in the local artifact store (an upload in ``.staging/``, a half-written
``.tmp-*`` file of a store write) are removed once untouched for ``STALE_FILE_S``: a live upload
or write keeps changing its file long before that.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger("modelpress.worker")

LOCK_NAME = ".lock"
ORPHAN_SCAN_S = 300.0
STALE_FILE_S = 3600.0  # also the age after which a job folder without a lock file (older versions) is an orphan
_JOB_FOLDER = re.compile(r"^modelpress-j_[A-Za-z0-9]+-[A-Za-z0-9_]+$")


def prefix(job_id: str) -> str:
    return f"modelpress-{job_id}-"


@contextmanager
def job_workdir(job_id: str, root: Path | None = None) -> Iterator[Path]:
    """A fresh work folder for one run of ``job_id``, locked while the run lasts, removed after."""
    path = Path(tempfile.mkdtemp(prefix=prefix(job_id), dir=root))
    fd = os.open(path / LOCK_NAME, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
        os.close(fd)


def remove_orphan_workdirs(root: Path | None = None, now: float | None = None) -> list[Path]:
    """Remove job work folders in ``root`` (default: the temp dir) that no live run holds; return them."""
    root = Path(root or tempfile.gettempdir())
    now = now or time.time()
    removed = []
    try:
        entries = list(os.scandir(root))
    except OSError:
        return []
    for entry in entries:
        if not _JOB_FOLDER.match(entry.name) or not entry.is_dir(follow_symlinks=False):
            continue
        path = Path(entry.path)
        if _orphaned(path, now):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    if removed:
        log.info("removed %d orphaned job folder(s): %s", len(removed), ", ".join(p.name for p in removed))
    return removed


def _orphaned(path: Path, now: float) -> bool:
    try:
        fd = os.open(path / LOCK_NAME, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:  # just made (the lock comes next) or made by an older version: go by age
        return _age(path, now) > STALE_FILE_S
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False  # a live run holds it
    finally:
        os.close(fd)  # (closing drops a lock we took: the folder is removed next, nobody can take it over)
    return True


def remove_stale_staging(artifacts: Path, now: float | None = None) -> list[Path]:
    """Remove staged uploads and half-written store files untouched for ``STALE_FILE_S``; return them."""
    now = now or time.time()
    candidates: list[Path] = []
    staging = artifacts / ".staging"
    if staging.is_dir():
        candidates += [p for p in staging.iterdir() if p.is_file()]
    try:
        job_dirs = [Path(e.path) for e in os.scandir(artifacts) if e.is_dir(follow_symlinks=False) and not e.name.startswith(".")]
    except OSError:
        job_dirs = []
    for job_dir in job_dirs:
        for area in ("inputs", "outputs"):
            candidates += list((job_dir / area).glob(".tmp-*"))
    removed = []
    for path in candidates:
        if _age(path, now) > STALE_FILE_S:
            path.unlink(missing_ok=True)
            removed.append(path)
    if removed:
        log.info("removed %d stale staging file(s)", len(removed))
    return removed


def _age(path: Path, now: float) -> float:
    try:
        return now - path.stat().st_mtime
    except OSError:
        return 0.0
