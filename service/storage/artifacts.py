"""The artifact store: files per job, written once (temp name, then rename), hashed.

Layout under the root: ``<job_id>/inputs/<name>`` and ``<job_id>/outputs/<name>``.
Names are chosen by modelpress, never taken from uploads; they are still checked.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO, Iterator

from service.domain.errors import NotFound

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_SAFE_JOB = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
CHUNK = 1024 * 1024


class ArtifactNotFound(NotFound):
    slug = "artifact-not-found"
    title = "Artifact not found"


def _check(job_id: str, name: str) -> None:
    if not _SAFE_JOB.match(job_id) or not _SAFE_NAME.match(name) or ".." in name:
        raise ValueError(f"unsafe artifact path {job_id!r}/{name!r}")


class LocalArtifactStore:
    def __init__(self, root: Path):
        self.root = Path(root)

    def path(self, job_id: str, area: str, name: str) -> Path:
        _check(job_id, name)
        if area not in ("inputs", "outputs"):
            raise ValueError(area)
        return self.root / job_id / area / name

    def put_stream(self, job_id: str, area: str, name: str, source: BinaryIO) -> tuple[int, str]:
        """Copy ``source`` into place atomically; return (bytes, sha256 hex)."""
        target = self.path(job_id, area, name)
        target.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        size = 0
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := source.read(CHUNK):
                    digest.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return size, digest.hexdigest()

    def put_file(self, job_id: str, area: str, name: str, source: Path) -> tuple[int, str]:
        with open(source, "rb") as f:
            return self.put_stream(job_id, area, name, f)

    def open(self, job_id: str, area: str, name: str) -> BinaryIO:
        try:
            return open(self.path(job_id, area, name), "rb")
        except (FileNotFoundError, ValueError):
            raise ArtifactNotFound(f"job {job_id} has no {area} file {name!r}") from None

    def size(self, job_id: str, area: str, name: str) -> int:
        try:
            return self.path(job_id, area, name).stat().st_size
        except (FileNotFoundError, ValueError):
            raise ArtifactNotFound(f"job {job_id} has no {area} file {name!r}") from None

    def iter_chunks(self, job_id: str, area: str, name: str) -> Iterator[bytes]:
        with self.open(job_id, area, name) as f:
            while chunk := f.read(CHUNK):
                yield chunk

    def local_path(self, job_id: str, area: str, name: str) -> Path:
        """A path a worker can read directly (for the local store, the file itself)."""
        path = self.path(job_id, area, name)
        if not path.exists():
            raise ArtifactNotFound(f"job {job_id} has no {area} file {name!r}")
        return path

    def remove_area(self, job_id: str, area: str) -> None:
        _check(job_id, "x")
        shutil.rmtree(self.root / job_id / area, ignore_errors=True)

    def remove_job(self, job_id: str) -> None:
        _check(job_id, "x")
        shutil.rmtree(self.root / job_id, ignore_errors=True)
