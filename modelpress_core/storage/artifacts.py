"""The artifact store: files per job, written once and atomically, hashed.

One interface (``ArtifactStore``), two implementations:

- ``LocalArtifactStore``: a directory (default ``<data dir>/artifacts``; shared between hosts only
  through a network file system). Writes go to a temp name in the target directory, then rename.
- ``S3ArtifactStore`` (``modelpress_core/storage/s3.py``): an S3-compatible bucket (AWS S3, MinIO, Ceph…),
  so an API and workers on different hosts share inputs and artifacts. A PUT (or a multipart
  upload) becomes visible only once complete, so readers never see half an object.

Layout: ``<job_id>/inputs/<name>`` and ``<job_id>/outputs/<name>`` (under the bucket prefix for S3).
Names are chosen by modelpress, never taken from uploads; they are still checked.
``make_store(settings)`` picks the implementation from ``MODELPRESS_ARTIFACT_STORE``.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import shutil
import tempfile
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Iterator

from modelpress_core.errors import ArtifactNotFound
from modelpress_core.storage.private import private_dir

if TYPE_CHECKING:
    from modelpress_core.config import Settings
    from modelpress_core.storage.staging import StagedFile

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_SAFE_JOB = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
AREAS = ("inputs", "outputs")
CHUNK = 1024 * 1024


def check_name(job_id: str, area: str, name: str) -> None:
    if not _SAFE_JOB.match(job_id) or not _SAFE_NAME.match(name) or ".." in name:
        raise ValueError(f"unsafe artifact path {job_id!r}/{name!r}")
    if area not in AREAS:
        raise ValueError(f"unknown artifact area {area!r}")


def missing(job_id: str, area: str, name: str) -> ArtifactNotFound:
    return ArtifactNotFound(f"job {job_id} has no {area} file {name!r}")


class HashingReader:
    """Wraps a binary stream; counts and sha256-hashes what is read through it (sequential reads)."""

    def __init__(self, source: BinaryIO):
        self.source = source
        self.digest = hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        chunk = self.source.read(n)
        self.digest.update(chunk)
        self.size += len(chunk)
        return chunk


class ArtifactStore(ABC):
    """What the API and the workers need from a store. Every method is safe to call from threads."""

    kind: str

    @abstractmethod
    def put_stream(self, job_id: str, area: str, name: str, source: BinaryIO) -> tuple[int, str]:
        """Store ``source`` atomically (all or nothing); return (bytes, sha256 hex)."""

    def put_file(self, job_id: str, area: str, name: str, source: Path) -> tuple[int, str]:
        with open(source, "rb") as f:
            return self.put_stream(job_id, area, name, f)

    def adopt(self, job_id: str, area: str, name: str, staged: "StagedFile") -> tuple[int, str]:
        """Store a staged upload (``modelpress_core/storage/staging.py``) as ``area/name``; return (bytes, sha256 hex).

        This default uploads it once; the staged file is left for the caller to discard."""
        return self.put_file(job_id, area, name, staged.path)

    @abstractmethod
    def open(self, job_id: str, area: str, name: str) -> BinaryIO:
        """A readable binary stream of the file (close it); ArtifactNotFound if there is none."""

    @abstractmethod
    def stream(self, job_id: str, area: str, name: str) -> tuple[int, Iterator[bytes]]:
        """(size in bytes, chunks) from one read of the file: what an HTTP download needs."""

    def size(self, job_id: str, area: str, name: str) -> int:
        size, chunks = self.stream(job_id, area, name)
        close = getattr(chunks, "close", None)
        if close:
            close()
        return size

    def iter_chunks(self, job_id: str, area: str, name: str) -> Iterator[bytes]:
        return self.stream(job_id, area, name)[1]

    @abstractmethod
    def fetch(self, job_id: str, area: str, name: str, workdir: Path) -> Path:
        """A local file with the content, for a worker to read: the file itself (local store) or a copy in ``workdir``."""

    @abstractmethod
    def list(self, job_id: str) -> list[str]:
        """``area/name`` of every file the job has, sorted."""

    @abstractmethod
    def remove_area(self, job_id: str, area: str) -> None:
        """Delete the job's files in one area (no error if there are none)."""

    @abstractmethod
    def remove_job(self, job_id: str) -> None:
        """Delete all of the job's files (no error if there are none)."""

    @abstractmethod
    def check(self) -> None:
        """Raise if the store cannot be reached (readiness)."""


class LocalArtifactStore(ArtifactStore):
    kind = "local"

    def __init__(self, root: Path):
        self.root = Path(root)

    def path(self, job_id: str, area: str, name: str) -> Path:
        check_name(job_id, area, name)
        return self.root / job_id / area / name

    def put_stream(self, job_id: str, area: str, name: str, source: BinaryIO) -> tuple[int, str]:
        target = self.path(job_id, area, name)
        private_dir(target.parent)  # 0700 directories; mkstemp's file is 0600
        reader = HashingReader(source)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := reader.read(CHUNK):
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return reader.size, reader.digest.hexdigest()

    def adopt(self, job_id: str, area: str, name: str, staged: "StagedFile") -> tuple[int, str]:
        """Rename the staged file into place: it was written, fsynced and hashed once while staging."""
        target = self.path(job_id, area, name)
        private_dir(target.parent)
        try:
            os.replace(staged.path, target)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            return super().adopt(job_id, area, name, staged)  # staging on another file system: copy once
        return staged.bytes, staged.sha256

    def open(self, job_id: str, area: str, name: str) -> BinaryIO:
        try:
            return open(self.path(job_id, area, name), "rb")
        except (FileNotFoundError, ValueError):
            raise missing(job_id, area, name) from None

    def stream(self, job_id: str, area: str, name: str) -> tuple[int, Iterator[bytes]]:
        f = self.open(job_id, area, name)
        size = os.fstat(f.fileno()).st_size

        def chunks() -> Iterator[bytes]:
            with f:
                while chunk := f.read(CHUNK):
                    yield chunk

        return size, chunks()

    def size(self, job_id: str, area: str, name: str) -> int:
        try:
            return self.path(job_id, area, name).stat().st_size
        except (FileNotFoundError, ValueError):
            raise missing(job_id, area, name) from None

    def fetch(self, job_id: str, area: str, name: str, workdir: Path) -> Path:
        path = self.path(job_id, area, name)
        if not path.is_file():
            raise missing(job_id, area, name)
        return path

    def list(self, job_id: str) -> list[str]:
        check_name(job_id, "inputs", "x")
        return sorted(
            f"{area}/{p.name}" for area in AREAS for p in (self.root / job_id / area).glob("*")
            if p.is_file() and not p.name.startswith(".")
        )

    def remove_area(self, job_id: str, area: str) -> None:
        check_name(job_id, area, "x")
        shutil.rmtree(self.root / job_id / area, ignore_errors=True)

    def remove_job(self, job_id: str) -> None:
        check_name(job_id, "inputs", "x")
        shutil.rmtree(self.root / job_id, ignore_errors=True)

    def check(self) -> None:
        private_dir(self.root)


_stores: dict[tuple, ArtifactStore] = {}


def make_store(settings: "Settings") -> ArtifactStore:
    """The store the settings ask for; one per process (a forked pool child makes its own S3 client)."""
    if settings.artifact_store == "s3":
        key = ("s3", os.getpid(), settings.s3_bucket, settings.s3_prefix, settings.s3_endpoint_url, settings.s3_region)
        if key not in _stores:
            from modelpress_core.storage.s3 import S3ArtifactStore

            _stores[key] = S3ArtifactStore(
                bucket=settings.s3_bucket, prefix=settings.s3_prefix,
                endpoint_url=settings.s3_endpoint_url, region=settings.s3_region,
            )
        return _stores[key]
    return LocalArtifactStore(settings.artifacts_path)
