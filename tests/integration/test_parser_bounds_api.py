"""The upload parsers' bounds over HTTP on a real stack (redis-server, uvicorn, a Celery worker):
deep and oversized safetensors headers, the zip-of-zeros .npz, the CPU budget, and /healthz while
an upload is being checked. The API's memory and CPU are read from /proc/<api pid>."""

from __future__ import annotations

import json
import os
import re
import struct
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from modelpress_core import intake
from tests.integration.conftest import start_stack
from tests.integration.helpers import spec, submit
from tests.zips import deflated_zip

MIB = 1024 * 1024
INT8 = {"method": "quantize", "kind": "dynamic_int8"}
HEADER_LIMIT = intake.header_limit(100_000)  # the default MODELPRESS_MAX_TENSORS
RSS_BOUND_MB = 450  # the bound on the API process's high-water mark (docs/limits.md)
CPU_BUDGET_S = 4.0  # a header at the limit takes about 1 s of CPU to check


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    s = start_stack(
        tmp_path_factory.mktemp("parsers"),
        MODELPRESS_MAX_UPLOAD_BYTES=str(64 * MIB),
        MODELPRESS_MAX_ZIP_BYTES=str(100 * 1024**3),  # so the CPU budget, not the byte or ratio limits, ends the slow zip
        MODELPRESS_MAX_ZIP_RATIO="2000",
        MODELPRESS_INSPECTION_CPU_S=str(CPU_BUDGET_S),
        MODELPRESS_INSPECTION_WAIT_S="300",  # four big uploads on a slow machine queue, they are not refused
    )
    yield s
    s.stop()


def api_pid(stack) -> int:
    return next(child.process.pid for child in stack.children if child.name == "api")


def api_status_kb(stack, field: str) -> int:
    with open(f"/proc/{api_pid(stack)}/status") as f:
        return int(re.search(rf"^{field}:\s+(\d+) kB", f.read(), re.MULTILINE).group(1))


def api_cpu_s(stack) -> float:
    with open(f"/proc/{api_pid(stack)}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def assert_problem(response: httpx.Response, status: int, slug: str) -> dict:
    assert response.status_code == status, response.text[:500]
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["type"].endswith("/" + slug), problem
    return problem


def safetensors_bytes(raw_header: bytes, data_len: int) -> bytes:
    return struct.pack("<Q", len(raw_header)) + raw_header + b"\0" * data_len


def header_at_the_limit(last_dtype: str = "C64") -> bytes:
    """100,000 entries, names padded so the header is exactly the limit; the last entry's dtype is
    refused, so the whole header is parsed before the 422."""
    n = 100_000

    def header(pad: int) -> str:
        return "{" + ",".join(
            f'"{"m" * pad}.{i:06d}":{{"dtype":"{last_dtype if i == n - 1 else "BF16"}","shape":[1,1],'
            f'"data_offsets":[{2 * i},{2 * i + 2}]}}'
            for i in range(n)
        ) + "}"

    raw = header((HEADER_LIMIT - len(header(0))) // n).encode()
    raw += b" " * (HEADER_LIMIT - len(raw))
    assert len(raw) == HEADER_LIMIT
    return safetensors_bytes(raw, 2 * n)


@pytest.fixture(scope="module")
def small_model() -> bytes:
    return safetensors_bytes(json.dumps({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode(), 8)


def test_a_50000_deep_header_is_a_422_problem(api, nothing_left_behind):
    raw = b'{"a":' + b"[" * 50_000 + b"]" * 50_000 + b"}"
    problem = assert_problem(submit(api, safetensors_bytes(raw, 0), spec(INT8)), 422, "upload-invalid")
    assert "nested more than 3 deep" in problem["detail"]
    assert api.get("/healthz").json() == {"status": "ok"}


def test_three_headers_at_the_limit_and_one_over_are_4xx_within_the_memory_bound(stack, api, nothing_left_behind):
    at_limit = header_at_the_limit()
    over = safetensors_bytes(b"{" + b" " * (HEADER_LIMIT - 1) + b"}", 0)
    bodies = [at_limit, at_limit, at_limit, over]
    print(f"API VmHWM before: {api_status_kb(stack, 'VmHWM') / 1024:.0f} MB")

    def post(body: bytes) -> httpx.Response:
        with httpx.Client(base_url=stack.base_url, timeout=600) as client:
            return submit(client, body, spec(INT8))

    with ThreadPoolExecutor(len(bodies)) as pool:
        responses = list(pool.map(post, bodies))
    for response in responses[:3]:
        assert "has dtype 'C64'" in assert_problem(response, 422, "upload-invalid")["detail"]
    assert_problem(responses[3], 413, "upload-too-large")
    peak_mb = api_status_kb(stack, "VmHWM") / 1024
    print(f"API VmHWM after three {HEADER_LIMIT}-byte headers and one over: {peak_mb:.0f} MB")
    assert peak_mb < RSS_BOUND_MB


def test_a_zip_of_zeros_npz_is_refused_for_little_api_cpu(stack, api, small_model, nothing_left_behind):
    """3.4 MB, 3,000 one-MiB zero entries: refused from the central directory. It cost 20-40 s of API CPU
    when every entry was inflated first; the whole request (multipart, hashing, checks) is allowed 1 s."""
    npz = deflated_zip([(f"a{i}.npy", MIB) for i in range(3000)])
    before = api_cpu_s(stack)
    response = api.post(
        "/jobs",
        files={"model": ("m.safetensors", small_model), "calibration": ("c.npz", npz)},
        data={"spec": json.dumps(spec(INT8))},
    )
    spent = api_cpu_s(stack) - before
    assert "expected arrays 'inputs'" in assert_problem(response, 422, "upload-invalid")["detail"]
    print(f"API CPU for the zip-of-zeros .npz: {spent:.2f} s")
    assert spent < 1.0


def slow_torchscript_zip() -> bytes:
    """A TorchScript layout with 400 entries of 64 MiB of zeros: 26 MB that inflate to 27 GB, within
    this stack's raised ratio and byte limits, so only the CPU budget stops it."""
    layout = [(name, 0) for name in ("m/code/__torch__.py", "m/constants.pkl", "m/data.pkl", "m/version")]
    return deflated_zip(layout + [(f"m/data/{i}", 64 * MIB) for i in range(400)])


def intake_checks_running(api: httpx.Client) -> int:
    text = api.get("/metrics").text
    return int(float(re.search(r"^modelpress_intake_checks_running (\S+)$", text, re.MULTILINE).group(1)))


def test_healthz_and_job_reads_answer_while_an_upload_is_checked_and_the_cpu_budget_ends_it(stack, api, nothing_left_behind):
    body = slow_torchscript_zip()
    ts_spec = {"model": {"format": "torchscript", "input": {"shape": [1, 16], "dtype": "float32"}},
               "steps": [{"method": "prune", "kind": "magnitude", "amount": 0.5}]}
    overlapped = False
    for _ in range(3):  # each try runs one check of CPU_BUDGET_S; one overlap is enough
        result: dict = {}

        def post(result: dict = result) -> None:
            with httpx.Client(base_url=stack.base_url, timeout=600) as client:
                result["response"] = submit(client, body, ts_spec, filename="m.pt")

        cpu_before = api_cpu_s(stack)
        poster = threading.Thread(target=post)
        poster.start()
        while poster.is_alive() and intake_checks_running(api) == 0:
            time.sleep(0.02)  # every answer here is the event loop answering; wait for the check to start
        if poster.is_alive():
            health = api.get("/healthz")
            job = api.get("/jobs/no-such-job")
            overlapped = intake_checks_running(api) == 1  # the check was still running after both answered
        poster.join(600)
        assert_problem(result["response"], 413, "upload-too-large")
        assert "CPU seconds" in result["response"].json()["detail"]
        spent = api_cpu_s(stack) - cpu_before
        print(f"API CPU for the slow zip (budget {CPU_BUDGET_S} s): {spent:.2f} s")
        assert spent < CPU_BUDGET_S + 2.0  # the budget, plus one 1 MiB chunk and the request's own handling
        if overlapped:
            assert health.status_code == 200 and health.json() == {"status": "ok"}
            assert_problem(job, 404, "job-not-found")
            break
    assert overlapped, "the check never overlapped the /healthz and GET /jobs/{id} requests in three tries"
