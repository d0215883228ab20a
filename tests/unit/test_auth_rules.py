"""API key format and hashing, and the rule that auth may be off only on a loopback bind."""

from __future__ import annotations

import pytest

from modelpress_core.config import AuthMode, InsecureSettings, Settings, is_loopback
from service.api.access import command_line_host
from modelpress_core.storage.apikeys import KEY_RE, check_tenant, hash_secret, new_key, parse_key
from modelpress_core.errors import InvalidSpec


def test_a_new_key_parses_back_and_only_its_hash_is_kept():
    key_id, secret, token = new_key()
    assert KEY_RE.match(token) and token == f"mp_{key_id}_{secret}"
    assert parse_key(token) == (key_id, secret)
    digest = hash_secret(secret)
    assert len(digest) == 64 and secret not in digest and digest == hash_secret(secret)
    assert hash_secret(secret + "x") != digest
    assert len({new_key()[2] for _ in range(100)}) == 100


@pytest.mark.parametrize("token", ["", "mp_", "mp_abc_def", "Bearer mp_x", "mp_0123456789abcdef_short",
                                   "mp_0123456789ABCDEF_" + "a" * 43, "xx_0123456789abcdef_" + "a" * 43])
def test_malformed_keys_do_not_parse(token):
    assert parse_key(token) is None


def test_tenant_names():
    assert check_tenant("team-a.prod_1") == "team-a.prod_1"
    for bad in ("", "A", "-x", "a b", "a/b", "x" * 64):
        with pytest.raises(InvalidSpec):
            check_tenant(bad)


@pytest.mark.parametrize("host,loopback", [("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("[::1]", True),
                                           ("localhost", True), ("0.0.0.0", False), ("::", False), ("10.0.0.5", False),
                                           ("example.com", False), ("", False)])
def test_is_loopback(host, loopback):
    assert is_loopback(host) is loopback


@pytest.mark.parametrize("mode,host,required", [
    ("auto", "127.0.0.1", False), ("auto", "0.0.0.0", True), ("auto", "::1", False), ("auto", "192.168.1.2", True),
    ("required", "127.0.0.1", True), ("required", "0.0.0.0", True), ("off", "127.0.0.1", False), ("off", "localhost", False),
])
def test_auth_mode_and_bind(mode, host, required):
    assert Settings(auth=AuthMode(mode), api_host=host).auth_required() is required


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "modelpress.internal"])
def test_auth_off_is_refused_on_a_non_loopback_bind(host):
    with pytest.raises(InsecureSettings, match="loopback"):
        Settings(auth="off", api_host=host).auth_required()
    with pytest.raises(InsecureSettings):  # the command line's --host is a second witness of the bind
        Settings(auth="off", api_host="127.0.0.1").auth_required(bind_host=host)


def test_the_bind_host_is_read_from_a_uvicorn_command_line():
    assert command_line_host(["uvicorn", "service.main:create_app", "--factory", "--host", "0.0.0.0"]) == "0.0.0.0"
    assert command_line_host(["uvicorn", "x", "--host=::"]) == "::"
    assert command_line_host(["pytest", "-q"]) is None


def test_settings_from_the_environment(monkeypatch):
    monkeypatch.setenv("MODELPRESS_AUTH", "required")
    monkeypatch.setenv("MODELPRESS_SUBMIT_RATE_PER_MIN", "12")
    monkeypatch.setenv("MODELPRESS_TENANT_MAX_ACTIVE_JOBS", "3")
    s = Settings()
    assert (s.auth, s.submit_rate_per_min, s.tenant_max_active_jobs) == (AuthMode.required, 12.0, 3)


def test_the_hard_time_limit_must_come_after_the_soft_one():
    # Celery's prefork pool arms the hard limit when the soft one fires, so hard <= soft would mean hard = soft
    with pytest.raises(ValueError, match="must be greater"):
        Settings(job_soft_time_limit_s=100, job_time_limit_s=8)
    assert Settings(job_soft_time_limit_s=3, job_time_limit_s=6).job_time_limit_s == 6
