"""The worker's checks on the files a sandbox child names as its outputs.

The child runs user code, so a name in its ``Result`` is a claim, not a fact. Each output must be a
known format under its own artifact name, at a relative path of plain components, reached without
following any symlink (every directory opened ``O_NOFOLLOW`` relative to the last), a regular file
with exactly one link. The worker copies it, from the descriptor it checked, into a directory the
child never had access to; only that copy is stored.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
from pathlib import Path

from modelpress_core.errors import SandboxFailed
from modelpress_core.formats import FORMATS
from worker.pipeline import Output
from worker.sandbox.protocol import OutputFile

COMPONENT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
MAX_DEPTH = 4


def _refuse(output: OutputFile, why: str) -> SandboxFailed:
    return SandboxFailed(f"the sandboxed job named an output the worker refuses ({output.path[:100]!r}): {why}")


def _open_checked(work_dir: Path, output: OutputFile) -> int:
    parts = output.path.split("/")
    if len(parts) > MAX_DEPTH or not all(COMPONENT.match(p) and p not in (".", "..") for p in parts):
        raise _refuse(output, "not a relative path of plain names")
    fd = os.open(work_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        for part in parts[:-1]:
            next_fd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            os.close(fd)
            fd = next_fd
        file_fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=fd)
    except OSError as exc:
        raise _refuse(output, f"cannot be opened without following a link ({exc.strerror})") from None
    finally:
        os.close(fd)
    info = os.fstat(file_fd)
    if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
        os.close(file_fd)
        raise _refuse(output, "not a regular file with a single link")
    return file_fd


def collect(outputs: list[OutputFile], work_dir: Path, dest_dir: Path) -> list[Output]:
    """Check every output and copy it into ``dest_dir`` (which the child cannot reach); return them there."""
    if not outputs:
        raise SandboxFailed("the sandboxed job reported no outputs")
    dest_dir.mkdir(parents=True, exist_ok=True)
    collected, seen = [], set()
    for output in outputs:
        fmt = FORMATS.get(output.format)
        if fmt is None or fmt.file_name != output.name or output.name in seen:
            raise _refuse(output, "not the artifact name of a known output format, or named twice")
        seen.add(output.name)
        fd = _open_checked(work_dir, output)
        target = dest_dir / output.name
        with os.fdopen(fd, "rb") as source, open(target, "xb") as copy:
            shutil.copyfileobj(source, copy, 1 << 20)
        collected.append(Output(name=output.name, format=output.format, path=target, media_type=fmt.media_type))
    return collected
