"""Auth off, but the API really bound to 0.0.0.0 with no --host on its command line (uvicorn started from
Python): the dashboard refuses a non-loopback client exactly as the API does, over real sockets."""

from __future__ import annotations

import fcntl
import os
import socket
import struct
import subprocess
import sys
import time

import httpx
import pytest

from modelpress.redis_server import free_port
from modelpress.stack import tail

SIOCGIFADDR = 0x8915


def non_loopback_ipv4() -> str | None:
    """An IPv4 address of this host that is not loopback (the test connects to itself over it)."""
    for _, name in socket.if_nameindex():
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                packed = fcntl.ioctl(s.fileno(), SIOCGIFADDR, struct.pack("256s", name.encode()[:15]))
            except OSError:
                continue
        address = socket.inet_ntoa(packed[20:24])
        if not address.startswith("127."):
            return address
    return None


PUBLIC = non_loopback_ipv4()


@pytest.fixture
def api_on_all_addresses(private_redis, tmp_path):
    """uvicorn.run(host='0.0.0.0') from Python: neither MODELPRESS_API_HOST nor the command line says 0.0.0.0."""
    port = free_port()
    kwargs = private_redis.connection_pool.connection_kwargs
    env = {k: v for k, v in os.environ.items() if k not in ("MODELPRESS_API_HOST", "UVICORN_HOST")}
    env.update(MODELPRESS_AUTH="off", MODELPRESS_DATA_DIR=str(tmp_path / "data"),
               MODELPRESS_REDIS_URL=f"redis://:{kwargs['password']}@127.0.0.1:{kwargs['port']}/0")
    code = f"import uvicorn; uvicorn.run('service.main:create_app', factory=True, host='0.0.0.0', port={port}, log_level='warning')"
    log = tmp_path / "api.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, tail(log)
            time.sleep(0.2)
        yield port, log
    finally:
        process.terminate()
        process.wait(30)


@pytest.mark.skipif(PUBLIC is None, reason="this host has no non-loopback IPv4 address to connect over")
def test_the_dashboard_obeys_the_apis_rule_for_a_non_loopback_client(api_on_all_addresses):
    port, log = api_on_all_addresses
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as local:
        assert local.get("/jobs").status_code == 200
        page = local.get("/ui")
        assert page.status_code == 200 and 'id="keyform"' not in page.text  # auth off: the server renders tenant local's jobs
    with httpx.Client(base_url=f"http://{PUBLIC}:{port}", timeout=30) as remote:
        for path in ("/jobs", "/ui", "/ui/jobs/j_20250101000000abcdefabcdef", "/jobs/j_x/events"):
            response = remote.get(path)
            assert response.status_code == 401, (path, response.text[:300])
            assert response.headers["content-type"] == "application/problem+json"
            assert response.json()["detail"] == "authentication is off on this server, so it serves loopback clients only"
    assert "the API is bound to a non-loopback address" in log.read_text()
