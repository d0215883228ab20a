"""Auth, tenants and limits on a private stack with MODELPRESS_AUTH=required.

One stack for the module. Each test uses its own tenants, so the per-tenant rate and concurrency
limits of one test never touch another. Jobs sleep (MODELPRESS_TEST_DELAY_S) so they stay unfinished
while a test looks at them, and are cancelled afterwards to free the single worker process.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import httpx
import pytest
import redis as redis_lib

from modelpress.cli import EXIT_OK, main
from modelpress.client import ModelpressClient
from modelpress.redis_server import free_port
from tests.integration.conftest import start_stack
from tests.integration.helpers import assert_cancel_accepted, in_test_delay, spec, submit, wait, wait_for

INT8 = spec({"method": "quantize", "kind": "dynamic_int8"})
SOFT_LIMIT_S = 10
AUTH_ENV = {
    "MODELPRESS_AUTH": "required",
    "MODELPRESS_SUBMIT_RATE_PER_MIN": "0.5",  # one token per 120 s: a test (5 requests, seconds) never earns a new one
    "MODELPRESS_SUBMIT_BURST": "4",
    "MODELPRESS_TENANT_MAX_ACTIVE_JOBS": "2",
    "MODELPRESS_TEST_DELAY_S": "60",  # every job sleeps (cancellable) until its soft time limit stops it
    "MODELPRESS_JOB_SOFT_TIME_LIMIT_S": str(SOFT_LIMIT_S),
    "MODELPRESS_JOB_TIME_LIMIT_S": str(SOFT_LIMIT_S + 20),
    "MODELPRESS_WORKER_MAX_MEMORY_MB": "8000",  # the guard runs; no job comes near it
}
CREATED_KEYS: list[str] = []


@pytest.fixture(scope="module")
def auth_stack(tmp_path_factory):
    s = start_stack(tmp_path_factory.mktemp("auth-stack"), api_log_level="info", **AUTH_ENV)
    yield s
    s.stop()


def new_key(stack, tenant: str, name: str = "") -> str:
    """A key made by the CLI, as an operator would."""
    out = subprocess.run(
        [sys.executable, "-m", "modelpress.cli", "keys", "create", "--tenant", tenant, "--name", name, "--json"],
        capture_output=True, text=True, env={**os.environ, "MODELPRESS_REDIS_URL": stack.redis_url}, check=True,
    ).stdout
    key = json.loads(out)["key"]
    CREATED_KEYS.append(key)
    return key


def client(stack, key: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(base_url=stack.base_url, timeout=60, headers=headers)


def assert_401(response: httpx.Response, error: str | None = None) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "https://modelpress.dev/problems/unauthorized"
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith("Bearer realm=\"modelpress\"")
    if error:
        assert f'error="{error}"' in challenge


def test_requests_without_a_valid_key_are_401(auth_stack, digits_mlp_path):
    with client(auth_stack, None) as anon:
        for method, path in [("GET", "/jobs"), ("GET", "/jobs/j_x"), ("GET", "/jobs/j_x/events"), ("GET", "/jobs/j_x/logs"),
                             ("GET", "/jobs/j_x/metrics"), ("GET", "/jobs/j_x/artifacts/a"), ("POST", "/jobs/j_x/cancel"),
                             ("DELETE", "/jobs/j_x"), ("GET", "/metrics")]:
            assert_401(anon.request(method, path))
        assert_401(submit(anon, digits_mlp_path, INT8))
        assert anon.get("/healthz").status_code == 200 and anon.get("/readyz").status_code == 200
        assert anon.get("/ui").status_code == 200  # a shell; its script asks for a key
    for bad in ["nonsense", "mp_0123456789abcdef_" + "A" * 43, "Basic abc"]:
        with client(auth_stack, bad) as c:
            assert_401(c.get("/jobs"), error="invalid_token")


def test_keys_cli_create_list_revoke(auth_stack, capsys, monkeypatch):
    url = ["--redis-url", auth_stack.redis_url]
    assert main(["keys", "create", "--tenant", "cli-t", "--name", "laptop", *url]) == EXIT_OK
    out, err = capsys.readouterr()
    key = out.strip()
    CREATED_KEYS.append(key)
    assert re.fullmatch(r"mp_[0-9a-f]{16}_[A-Za-z0-9_-]{43}", key) and "shown only this once" in err
    key_id = key.split("_")[1]
    with client(auth_stack, key) as c:
        assert c.get("/jobs").json() == {"items": [], "next_cursor": None}
    remote = ["--url", auth_stack.base_url]
    assert main(["list", *remote]) == 2  # no key: the API's 401
    assert "401" in capsys.readouterr().err
    assert main(["list", "--json", *remote, "--api-key", key]) == EXIT_OK
    assert json.loads(capsys.readouterr().out)["items"] == []
    monkeypatch.setenv("MODELPRESS_API_KEY", key)
    assert main(["list", *remote]) == EXIT_OK
    monkeypatch.delenv("MODELPRESS_API_KEY")

    assert main(["keys", "list", *url]) == EXIT_OK
    listing = capsys.readouterr().out
    assert key_id in listing and "cli-t" in listing and "laptop" in listing and "active" in listing
    assert key.split("_", 2)[2] not in listing
    assert main(["keys", "list", "--json", *url]) == EXIT_OK
    entry = next(k for k in json.loads(capsys.readouterr().out) if k["key_id"] == key_id)
    assert set(entry) == {"key_id", "tenant", "name", "created_at", "revoked_at"}

    assert main(["keys", "revoke", key_id, *url]) == EXIT_OK
    assert "revoked" in capsys.readouterr().out
    with client(auth_stack, key) as c:
        assert_401(c.get("/jobs"), error="invalid_token")
    assert main(["keys", "list", *url]) == EXIT_OK
    assert re.search(rf"{key_id}\s+cli-t\s+revoked", capsys.readouterr().out)
    assert main(["keys", "revoke", "ffffffffffffffff", *url]) == 2
    assert main(["keys", "create", "--tenant", "Bad Tenant!", *url]) == 2
    capsys.readouterr()


def test_keys_cli_finds_the_stacks_redis_from_its_data_dir_and_never_guesses(auth_stack, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("MODELPRESS_REDIS_URL", "MODELPRESS_DATA_DIR")}
    env["HOME"] = str(tmp_path)  # the default data dir (~/.modelpress) has no stack either

    def keys_create(*extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "modelpress.cli", "keys", "create", "--tenant", "dd", "--json", *extra],
                              capture_output=True, text=True, env=env, timeout=60, check=False)

    refused = keys_create()
    assert refused.returncode == 2 and refused.stdout == ""
    assert "no Redis to keep the keys in" in refused.stderr and "--redis-url" in refused.stderr
    made = keys_create("--data-dir", str(auth_stack.data_dir))
    assert made.returncode == 0, made.stderr
    key = json.loads(made.stdout)["key"]
    CREATED_KEYS.append(key)
    with client(auth_stack, key) as c:
        assert c.get("/jobs").status_code == 200


def test_tenants_see_only_their_own_jobs(auth_stack, digits_mlp_path):
    with client(auth_stack, new_key(auth_stack, "alice")) as a, client(auth_stack, new_key(auth_stack, "bob")) as b:
        job = submit(a, digits_mlp_path, INT8).json()
        jid = job["id"]
        mine = submit(b, digits_mlp_path, INT8).json()["id"]
        missing = b.get("/jobs/j_20260101000000aaaaaaaaaaaa").json()
        for method, path in [("GET", f"/jobs/{jid}"), ("GET", f"/jobs/{jid}/events"), ("GET", f"/jobs/{jid}/logs"),
                             ("GET", f"/jobs/{jid}/metrics"), ("GET", f"/jobs/{jid}/report"),
                             ("GET", f"/jobs/{jid}/artifacts/model.torchscript.pt"), ("POST", f"/jobs/{jid}/cancel"),
                             ("DELETE", f"/jobs/{jid}"), ("DELETE", f"/jobs/{jid}?purge=true")]:
            r = b.request(method, path)
            assert r.status_code == 404, (method, path, r.text)
            assert r.json()["type"] == missing["type"] == "https://modelpress.dev/problems/job-not-found"
        assert [j["id"] for j in b.get("/jobs").json()["items"]] == [mine]
        assert [j["id"] for j in a.get("/jobs").json()["items"]] == [jid]
        assert a.get(f"/jobs/{jid}").json()["state"] not in ("cancelling", "cancelled")  # bob's cancel did nothing
        assert a.get(f"/jobs/{jid}/logs").status_code == 200
        with ModelpressClient(auth_stack.base_url, api_key=a.headers["authorization"][7:]) as sdk:
            assert sdk.job(jid)["id"] == jid
            first = next(iter(sdk.events(jid, timeout=30)))
            assert first["event"] == "state" and first["id"] == jid
        for c, i in ((a, jid), (b, mine)):
            assert_cancel_accepted(c.post(f"/jobs/{i}/cancel"))


def test_idempotency_keys_are_per_tenant(auth_stack, digits_mlp_path):
    headers = {"Idempotency-Key": "same-key"}
    with client(auth_stack, new_key(auth_stack, "idem-a")) as a, client(auth_stack, new_key(auth_stack, "idem-b")) as b:
        first = submit(a, digits_mlp_path, INT8, headers=headers)
        assert first.status_code == 202
        other = submit(b, digits_mlp_path, spec({"method": "quantize", "kind": "fp16"}), headers=headers)
        assert other.status_code == 202 and other.json()["id"] != first.json()["id"]  # not 409: another tenant's key
        again = submit(a, digits_mlp_path, INT8, headers=headers)
        assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
        for c, r in ((a, first), (b, other)):
            c.post(f"/jobs/{r.json()['id']}/cancel")


def test_submit_rate_limit_is_429_with_retry_after(auth_stack, digits_mlp_path):
    with client(auth_stack, new_key(auth_stack, "eager")) as c, client(auth_stack, new_key(auth_stack, "calm")) as calm:
        for _ in range(4):  # the burst; invalid specs, so no job is created, but each request takes a token
            assert submit(c, digits_mlp_path, "{}").status_code == 422
        r = submit(c, digits_mlp_path, INT8)
        assert r.status_code == 429 and r.json()["type"] == "https://modelpress.dev/problems/rate-limited"
        assert 1 <= int(r.headers["retry-after"]) <= 120  # the refill period at 0.5 per minute
        assert c.get("/jobs").json()["items"] == []
        assert submit(calm, digits_mlp_path, "{}").status_code == 422  # another tenant has its own bucket


def test_concurrent_jobs_per_tenant_limit(auth_stack, digits_mlp_path):
    with client(auth_stack, new_key(auth_stack, "busy")) as c:
        ids = [submit(c, digits_mlp_path, INT8).json()["id"] for _ in range(2)]
        r = submit(c, digits_mlp_path, INT8)
        assert r.status_code == 429, r.text
        assert r.json()["type"] == "https://modelpress.dev/problems/tenant-job-limit" and r.json()["limit"] == 2
        assert int(r.headers["retry-after"]) > 0
        assert len(c.get("/jobs").json()["items"]) == 2  # the refused request stored nothing
        c.post(f"/jobs/{ids[1]}/cancel")
        wait(c, ids[1], timeout=60)
        third = submit(c, digits_mlp_path, INT8)
        assert third.status_code == 202, third.text
        for i in (ids[0], third.json()["id"]):
            c.post(f"/jobs/{i}/cancel")


def test_a_job_past_its_soft_time_limit_fails_with_the_reason(auth_stack, digits_mlp_path):
    with client(auth_stack, new_key(auth_stack, "slow")) as c:
        job_id = submit(c, digits_mlp_path, INT8).json()["id"]
        wait_for(c, job_id, in_test_delay, timeout=120)
        job = wait(c, job_id, timeout=SOFT_LIMIT_S + 60)
    assert job["state"] == "failed"
    assert job["error"]["type"] == "https://modelpress.dev/problems/time-limit"
    assert f"soft time limit ({SOFT_LIMIT_S} s)" in job["error"]["detail"]


def test_compose_runs_the_api_with_auth_required():
    from tests.integration.test_compose import compose

    api = compose()["services"]["api"]
    env = api["environment"]
    assert env["MODELPRESS_AUTH"] == "required"
    assert env["MODELPRESS_API_HOST"] == api["command"][api["command"].index("--host") + 1]


def test_auth_off_is_refused_on_a_non_loopback_bind(tmp_path):
    port = free_port()
    env = {**os.environ, "MODELPRESS_AUTH": "off", "MODELPRESS_REDIS_URL": "redis://127.0.0.1:1/0"}
    result = subprocess.run(
        [sys.executable, "-m", "uvicorn", "service.main:create_app", "--factory", "--host", "0.0.0.0", "--port", str(port)],
        capture_output=True, text=True, env=env, timeout=60,
    )
    assert result.returncode != 0
    assert "authentication may only be off when the API binds to a loopback address" in result.stderr


@pytest.mark.skipif(not (shutil.which("chromium") or shutil.which("chromium-browser")) and not os.environ.get("CI"),
                    reason="needs chromium")
def test_dashboard_with_a_key_shows_only_the_tenants_jobs(auth_stack, digits_mlp_path, tmp_path):
    from tests.integration.test_ui import rendered_dom

    with client(auth_stack, key := new_key(auth_stack, "web")) as c, client(auth_stack, new_key(auth_stack, "web-other")) as o:
        job_id = submit(c, digits_mlp_path, INT8).json()["id"]
        other_id = submit(o, digits_mlp_path, INT8).json()["id"]
        for api_, i in ((c, job_id), (o, other_id)):
            api_.post(f"/jobs/{i}/cancel")
            wait(api_, i, timeout=60)
    page = rendered_dom(f"{auth_stack.base_url}/ui#key={key}", tmp_path)
    assert re.search(rf'<tr data-id="{job_id}">.*?cancelled', page, flags=re.S), page[-3000:]
    assert other_id not in page and key not in page
    for attempt in range(3):  # a loaded machine can starve one headless render before the stream's end event arrives
        page = rendered_dom(f"{auth_stack.base_url}/ui/jobs/{job_id}#key={key}", tmp_path / f"job{attempt}", budget_ms=30000)
        if 'data-stream="ended"' in page:
            break
    shown = re.findall(r'<(?:span|p|body)[^>]*id="(?:state|message)"[^>]*>.*?</(?:span|p)>|<body[^>]*>', page, flags=re.S)
    assert 'id="state" class="state cancelled"' in page and 'data-stream="ended"' in page, shown
    assert "attempt" in page or "cancelled" in page
    page = rendered_dom(f"{auth_stack.base_url}/ui", tmp_path / "nokey")
    assert "send an API key" in page



def test_keys_never_reach_logs_records_or_events(auth_stack):
    """Runs last in this module: every key the tests used, searched for in the stack's logs and in Redis."""
    assert CREATED_KEYS
    logs = {p.name: p.read_text(errors="replace") for p in auth_stack.log_dir.iterdir()}
    assert "GET /jobs HTTP/1.1" in logs["api.log"]  # the access log is on, so the check means something
    client_ = redis_lib.Redis.from_url(auth_stack.redis_url)
    stored = []
    for name in client_.scan_iter(count=500):
        kind = client_.type(name)
        if kind == b"string":
            stored.append(client_.get(name) or b"")
        elif kind == b"list":
            stored.extend(client_.lrange(name, 0, -1))
        elif kind == b"hash":
            stored.extend(v for kv in client_.hgetall(name).items() for v in kv)
    dump = b"\n".join(stored)
    for key in CREATED_KEYS:
        secret = key.split("_", 2)[2]
        for name, text in logs.items():
            assert secret not in text, f"a key's secret is in {name}"
        assert secret.encode() not in dump, "a key's secret is stored in Redis"
