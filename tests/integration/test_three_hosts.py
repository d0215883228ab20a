"""Scale-out across hosts: the API and two Celery workers as if on three machines. Each process has
its own data directory and its own TMPDIR (no shared disk); they share only one Redis and the S3
store (a real moto.server). Jobs submitted on the API run on either worker, and their artifacts,
written by a worker to the bucket, download intact from the API.

Which worker takes which job is settled by events, not timing: each worker runs one job at a time
and prefetches nothing more (``worker_concurrency=1``, ``worker_prefetch_multiplier=1``, late acks),
and every job waits in the test delay until its worker's own release file exists (a file in that
worker's data directory, so not shared either). Two jobs held in the delay at once must be on
different workers; once released, more jobs run through to the end.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from pathlib import Path

import httpx
import pytest
import redis

from modelpress.redis_server import free_port
from modelpress.stack import Child, Stack, tail
from modelpress_core.storage.jobs import JobRepository
from tests.integration.conftest import FAST_ENV
from tests.integration.helpers import in_test_delay, spec, stored_job_dirs, submit, wait, wait_for
from worker.workdirs import prefix

PRUNE = {"method": "prune", "kind": "magnitude", "scope": "global", "amount": 0.5}
WORKERS = ("host-b", "host-c")


def host_env(host_dir: Path) -> dict[str, str]:
    tmp = host_dir / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    return {"MODELPRESS_DATA_DIR": str(host_dir), "TMPDIR": str(tmp)}


@pytest.fixture(scope="module")
def three_hosts(tmp_path_factory, s3_server):
    root = tmp_path_factory.mktemp("three-hosts")
    bucket = s3_server.new_bucket()
    common = {**FAST_ENV, **s3_server.env(bucket), "MODELPRESS_TEST_DELAY_S": "600", "MODELPRESS_WORKER_CONCURRENCY": "1"}
    api_dir = root / "host-a"
    api = Stack(data_dir=api_dir, api_port=free_port(), workers=0, extra_env={**common, **host_env(api_dir)})
    workers: dict[str, tuple[Child, Path]] = {}
    try:
        api.start(wait=False)  # redis-server and the API on host A; /readyz waits for a worker
        for name in WORKERS:
            host_dir = root / name
            env = {**os.environ, "PYTHONUNBUFFERED": "1", **common, **host_env(host_dir), "MODELPRESS_REDIS_URL": api.redis_url,
                   "MODELPRESS_TEST_DELAY_RELEASE_FILE": str(host_dir / "release")}
            child = Child(name, [sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker", "-Q", "cpu",
                                 "-n", f"{name}@%h", "--loglevel", "INFO", "--pool", "prefork"],
                          host_dir / f"{name}.log", env)
            child.start()
            workers[name] = (child, host_dir)
        api.wait_ready(180)
        yield api, workers
    except Exception:
        for child in [*api.children, *(c for c, _ in workers.values())]:
            print(f"--- {child.name} ---\n{tail(child.log_path, 60)}")
        raise
    finally:
        for child, _ in workers.values():
            child.stop(timeout=30)
        api.stop()


def wait_for_workers(client: httpx.Client, count: int, timeout: float = 180) -> list[dict]:
    """Poll GET /workers until ``count`` live workers have registered (each imports torch first)."""
    deadline = time.monotonic() + timeout
    listing: dict = {}
    while time.monotonic() < deadline:
        listing = client.get("/workers").json()
        if len(listing["workers"]) >= count:
            return listing["workers"]
        time.sleep(0.2)
    raise AssertionError(f"only these workers registered: {listing}")


def test_jobs_from_the_api_run_on_both_workers_with_no_shared_disk(three_hosts, s3_server, digits_mlp_path):
    api, workers = three_hosts
    records = JobRepository(redis.Redis.from_url(api.redis_url, socket_timeout=10))
    with httpx.Client(base_url=api.base_url, timeout=60) as client:
        assert client.get("/readyz").json()["store"] == "s3"
        assert {w["name"].split("@")[0] for w in wait_for_workers(client, 2)} == set(WORKERS)

        held = [submit(client, digits_mlp_path, spec(PRUNE)).json()["id"] for _ in range(2)]
        for job_id in held:
            wait_for(client, job_id, in_test_delay, timeout=180)
        # both in the delay at once, each worker holding one job: they are on different workers
        assert {ran_on(records, job_id) for job_id in held} == set(WORKERS)
        for job_id in held:  # each job's scratch folder is in its own worker's TMPDIR, and only there
            where = {name for name, (_, host_dir) in workers.items() if list((host_dir / "tmp").glob(f"{prefix(job_id)}*"))}
            assert where == {ran_on(records, job_id)}
        for _, host_dir in workers.values():
            (host_dir / "release").touch()

        more = [submit(client, digits_mlp_path, spec(PRUNE)).json()["id"] for _ in range(2)]
        finished = [wait(client, job_id, timeout=300) for job_id in held + more]
        assert [j["state"] for j in finished] == ["succeeded"] * 4, [j["error"] for j in finished]
        assert {ran_on(records, j["id"]) for j in finished} == set(WORKERS)

        for job in finished:
            (info,) = [a for a in job["artifacts"] if a["name"] == "model.safetensors"]
            body = client.get(f"/jobs/{job['id']}/artifacts/model.safetensors").content
            assert len(body) == info["bytes"] and hashlib.sha256(body).hexdigest() == info["sha256"]
            listing = s3_server.client().list_objects_v2(Bucket=s3_server_bucket(api), Prefix=f"modelpress/{job['id']}/outputs/")
            assert any(o["Key"].endswith("model.safetensors") for o in listing.get("Contents", []))

    # no host kept a job's files: inputs and artifacts live in the bucket only
    for host_dir in [api.data_dir, *(d for _, d in workers.values())]:
        assert stored_job_dirs(host_dir / "artifacts") == set()
    for _, host_dir in workers.values():  # and each worker removed its scratch folders after each job
        assert not [p for job in finished for p in (host_dir / "tmp").glob(f"{prefix(job['id'])}*")]


def ran_on(records: JobRepository, job_id: str) -> str:
    """The worker that ran the job, from the record's ``worker`` field (its Celery hostname; the API does not show it)."""
    return records.get(job_id).worker.split("@")[0]


def s3_server_bucket(api: Stack) -> str:
    return api.extra_env["MODELPRESS_S3_BUCKET"]
