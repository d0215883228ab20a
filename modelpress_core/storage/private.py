"""Files only the service's own user may read: every directory 0700, every file 0600.

The data dir holds uploaded models, artifacts, the Redis AOF (API keys' hashes, every job record),
the Redis password and URL, and logs. ``private_dir`` creates a directory that way (and fixes an
existing one), ``tighten`` fixes a whole existing tree on start, ``write_private`` writes a file
that is never readable by others, not even for an instant. Children that write files of their own
(redis-server) start with ``PRIVATE_UMASK``.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger("modelpress.storage")

DIR_MODE = 0o700
FILE_MODE = 0o600
PRIVATE_UMASK = 0o077


def private_dir(path: Path) -> Path:
    """``path`` as a directory with mode 0700, with any parents it had to create (0700 too)."""
    path = Path(path).expanduser()
    missing = []
    for parent in (path, *path.parents):
        if parent.exists():
            break
        missing.append(parent)
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=DIR_MODE)
        except FileExistsError:
            pass
    _set_mode(path, DIR_MODE)
    return path


def tighten(root: Path) -> int:
    """Make every directory under ``root`` (itself included) 0700 and every file 0600; symlinks are
    left alone and not followed. Returns how many modes it changed."""
    root = Path(root).expanduser()
    if not root.is_dir():
        return 0
    changed = int(_set_mode(root, DIR_MODE))
    for top, dirs, files in os.walk(root, followlinks=False):
        for name in dirs:
            changed += _set_mode(Path(top, name), DIR_MODE)
        for name in files:
            changed += _set_mode(Path(top, name), FILE_MODE)
    if changed:
        log.warning("made %d files and directories under %s private (0700 directories, 0600 files)", changed, root)
    return changed


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path``, created 0600 (an existing file is made 0600 before it is written)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, FILE_MODE)
    os.fchmod(fd, FILE_MODE)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def open_private_append(path: Path):
    """A binary append handle on ``path``, created 0600 (an existing file is made 0600)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, FILE_MODE)
    os.fchmod(fd, FILE_MODE)
    return os.fdopen(fd, "ab")


def _set_mode(path: Path, mode: int) -> bool:
    try:
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode) or stat.S_IMODE(st.st_mode) == mode:
            return False
        os.chmod(path, mode)
        return True
    except FileNotFoundError:  # removed meanwhile (a job's files, a redis temp file)
        return False
    except PermissionError:
        log.warning("cannot make %s private (mode %o): not ours", path, mode)
        return False
