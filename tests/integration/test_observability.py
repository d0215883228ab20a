"""Metrics schema, report and Prometheus metrics, through the real stack."""

from __future__ import annotations

import jsonschema
import pytest

from tests.integration.helpers import spec, submit, wait

PRUNE = {"method": "prune", "kind": "magnitude", "scope": "global", "amount": 0.8}
INT8 = {"method": "quantize", "kind": "dynamic_int8"}


@pytest.fixture(scope="module")
def finished_job(stack, digits_mlp_path):
    import httpx

    with httpx.Client(base_url=stack.base_url, timeout=60) as api:
        job = submit(api, digits_mlp_path, spec(PRUNE, INT8, evaluate={"latency": True, "batch_sizes": [1, 16]})).json()
        job = wait(api, job["id"])
    assert job["state"] == "succeeded", job
    return job


def test_real_job_metrics_validate_against_the_published_schema(api, finished_job):
    schema = api.get("/schemas/metrics")
    assert schema.status_code == 200
    metrics = api.get(f"/jobs/{finished_job['id']}/metrics").json()
    jsonschema.validate(metrics, schema.json())
    assert metrics["schema"] == "modelpress.metrics/v1"
    assert metrics["after"]["layers"][0]["dtype"] == "qint8"
    assert set(metrics["provenance"]["cpu"]["flags"]) >= {"avx2", "avx512", "vnni", "amx"}
    before, after = metrics["before"], metrics["after"]
    assert before["macs"]["macs"] == 784 * 300 + 300 * 100 + 100 * 10 == after["macs"]["macs"]  # unstructured: dense MACs
    assert [lat["batch_size"] for lat in after["latency"]] == [1, 16]
    assert all(lat["p99"] >= lat["p50"] and lat["throughput"] > 0 for lat in before["latency"] + after["latency"])
    assert before["memory"]["rss_peak_growth_bytes"] > 0 and after["memory"]["rss_peak_growth_bytes"] > 0
    assert metrics["verdict"]["simulated_only"] is False and metrics["fidelity"]["source"] == "synthetic"
    assert metrics["verdict"]["quality"]["metric"] == "output_cosine"


def test_report_is_a_downloadable_html_page_with_svg_plots(api, finished_job):
    response = api.get(f"/jobs/{finished_job['id']}/report")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    assert html.count("<svg") == 4 and "<script" not in html  # layer size, sparsity, latency, MACs
    assert finished_job["id"] in html and "Verdict" in html and "batch 16" in html
    download = api.get(f"/jobs/{finished_job['id']}/report", params={"download": True})
    assert download.headers["content-disposition"] == f'attachment; filename="{finished_job["id"]}-report.html"'
    assert download.text == html
    assert finished_job["links"]["report"].endswith(f"/jobs/{finished_job['id']}/report")


def sample(text: str, name: str, **labels) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    raise KeyError(f"{name} {labels} not in the exposition")


def listed(api, state: str) -> int:
    """How many jobs GET /jobs lists in ``state`` (the shared stack has one tenant: auth is off)."""
    count, cursor = 0, 0
    while cursor is not None:
        page = api.get("/jobs", params={"state": state, "limit": 200, "cursor": cursor}).json()
        count, cursor = count + len(page["items"]), page["next_cursor"]
    return count


def test_prometheus_metrics_count_jobs_queues_and_uploads(api, finished_job, digits_mlp_path):
    from tests.integration.helpers import wait_until_idle

    wait_until_idle(api)  # the shared stack: other modules' jobs must not be queued or running while we count
    response = api.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert sample(text, "modelpress_redis_up") == 1
    assert sample(text, "modelpress_jobs", state="succeeded") >= 1
    for state in ("queued", "running", "cancelling", "succeeded", "failed", "cancelled", "expired"):
        assert sample(text, "modelpress_jobs", state=state) == listed(api, state), state  # every state, even at zero
    assert sample(text, "modelpress_job_duration_seconds_count", method="prune+quantize") >= 1
    assert sample(text, "modelpress_job_duration_seconds_bucket", method="prune+quantize", le="+Inf") >= 1
    assert sample(text, "modelpress_queue_depth", queue="cpu") == 0  # idle: no message waits in either queue
    assert sample(text, "modelpress_queue_depth", queue="gpu") == 0
    uploaded = sample(text, "modelpress_upload_bytes_total")
    assert uploaded >= digits_mlp_path.stat().st_size
    # the route does not shadow the job's metrics
    assert api.get(f"/jobs/{finished_job['id']}/metrics").json()["schema"] == "modelpress.metrics/v1"


def test_queue_depth_reads_celery_lists(stack, api):
    import redis

    from modelpress_core.storage import keys

    client = redis.Redis.from_url(stack.redis_url)
    key = keys.celery_queue("gpu")  # the test stack runs no gpu worker: nothing consumes it
    before = sample(api.get("/metrics").text, "modelpress_queue_depth", queue="gpu")
    client.rpush(key, b"{}", b"{}")
    try:
        text = api.get("/metrics").text
        assert sample(text, "modelpress_queue_depth", queue="gpu") == before + 2
    finally:
        client.lrem(key, 2, b"{}")
    assert sample(api.get("/metrics").text, "modelpress_queue_depth", queue="gpu") == before
