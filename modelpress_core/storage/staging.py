"""Staging an upload: one streamed write into the store's staging folder, hashed while it streams.

``stage(source, folder, prefix)`` copies a readable binary stream into a private file under
``folder`` (0600, fsynced) and returns a ``StagedFile`` with its size and sha256, computed on the
way. The store then takes the file as it is (``ArtifactStore.adopt``): a local store renames it
into place (same file system: no second copy, no second hash), an S3 store uploads it once.
Whatever is not adopted is removed by ``StagedFile.discard`` (and, after a crash, by the workers'
stale-staging sweep, ``worker/workdirs.py``).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from modelpress_core.storage.private import private_dir

CHUNK = 1024 * 1024


@dataclass
class StagedFile:
    path: Path
    bytes: int
    sha256: str

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)


def stage(source: BinaryIO, folder: Path, prefix: str) -> StagedFile:
    """Stream ``source`` into a new file under ``folder``; hash and count it on the way."""
    private_dir(folder)
    digest, size = hashlib.sha256(), 0
    fd, name = tempfile.mkstemp(dir=folder, prefix=prefix)
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := source.read(CHUNK):
                digest.update(chunk)
                out.write(chunk)
                size += len(chunk)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return StagedFile(path=Path(name), bytes=size, sha256=digest.hexdigest())
