"""The one rule for serving without a key, shared by the API and the dashboard (service/api/access.py)."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from starlette.requests import Request
from starlette.testclient import TestClient

from service.api.access import auth_required_for, declared_bind_hosts, unauthenticated_tenant
from modelpress_core.config import InsecureSettings, Settings
from service.main import create_app

NO_REDIS = "redis://127.0.0.1:1/0"  # the refused requests never reach Redis


def test_uvicorns_host_variable_is_a_witness_of_the_bind():
    settings = Settings(auth="auto", api_host="127.0.0.1")
    assert declared_bind_hosts(settings, argv=["uvicorn"], environ={"UVICORN_HOST": "0.0.0.0"}) == {"127.0.0.1", "0.0.0.0"}
    assert declared_bind_hosts(settings, argv=["uvicorn", "--host", "::"], environ={}) == {"127.0.0.1", "::"}
    assert auth_required_for(settings, argv=["uvicorn"], environ={}) is False
    assert auth_required_for(settings, argv=["uvicorn"], environ={"UVICORN_HOST": "0.0.0.0"}) is True
    with pytest.raises(InsecureSettings, match="loopback"):
        auth_required_for(Settings(auth="off", api_host="127.0.0.1"), argv=["uvicorn"], environ={"UVICORN_HOST": "0.0.0.0"})


def _request(auth_required: bool, client: tuple[str, int] | None, server: tuple[str, int] | None) -> Request:
    app = FastAPI()
    app.state.auth_required = auth_required
    app.state.settings = Settings(auth="off" if not auth_required else "required")
    return Request({"type": "http", "app": app, "client": client, "server": server, "headers": [], "method": "GET", "path": "/"})


@pytest.mark.parametrize("client,server,served", [
    (("127.0.0.1", 5000), ("127.0.0.1", 8000), True),
    (("::1", 5000), ("::1", 8000), True),
    (None, None, True),  # a unix socket: only local processes can connect
    (("192.0.2.9", 5000), ("127.0.0.1", 8000), False),  # a remote peer
    (("127.0.0.1", 5000), ("192.0.2.2", 8000), False),  # arrived on a non-loopback address: the real bind is not loopback
    (("192.0.2.2", 5000), ("192.0.2.2", 8000), False),  # this host, over its public address
    (("testclient", 50000), ("testserver", 80), False),  # no exemption for test clients
])
def test_auth_off_serves_loopback_requests_only(client, server, served):
    from modelpress_core.errors import Unauthorized

    request = _request(False, client, server)
    if served:
        assert unauthenticated_tenant(request) == "local"
    else:
        with pytest.raises(Unauthorized, match="loopback clients only"):
            unauthenticated_tenant(request)


def test_with_keys_required_the_rule_defers_to_the_key():
    assert unauthenticated_tenant(_request(True, ("192.0.2.9", 5000), ("192.0.2.2", 8000))) is None


@pytest.mark.parametrize("base_url,peer", [("http://127.0.0.1:8000", ("192.0.2.9", 5000)),
                                           ("http://192.0.2.2:8000", ("127.0.0.1", 5000))])
@pytest.mark.parametrize("path", ["/jobs", "/ui", "/ui/jobs/j_20250101000000abcdefabcdef", "/jobs/j_x/events"])
def test_the_dashboard_answers_a_non_local_request_exactly_as_the_api(base_url, peer, path):
    app = create_app(Settings(auth="off", api_host="127.0.0.1", redis_url=NO_REDIS))
    response = TestClient(app, base_url=base_url, client=peer).get(path)
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == "authentication is off on this server, so it serves loopback clients only"
