"""The API's cost of a status read, ``GET /jobs/{id}``, on a private stack (loopback only, bounded).

Starts its own stack (a private redis-server, one uvicorn process, one Celery worker) in a temp
directory, submits one small job and waits for it to succeed (the largest record a poller reads:
artifacts, summary), then:

1. **CPU per request**: ``--requests`` sequential ``GET /jobs/{id}`` over one keep-alive connection,
   after ``--warmup`` more; the API process's CPU time (user + system, from /proc) over the run,
   divided by the request count. The same for ``GET /healthz`` (the framework's floor).
2. **Latency under polling**: ``--clients`` clients in their own process, each polling every
   ``--interval-ms`` (open loop: a request every interval, whatever the previous one took) for
   ``--seconds``; latency p50/p90/p99/max and errors, and the API's CPU share meanwhile.

Targets (issue 14): at most 0.5 ms of API CPU per status read, and p99 at most 50 ms with 50 clients
polling every 250 ms. Writes ``<out>.json`` and ``<out>.md``. Run from the repository root:

    python -m bench.api_status --out bench/results/api_status
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import httpx
import psutil

from bench.load import SPEC, machine, small_model, summary_ms, versions
from modelpress.redis_server import free_port
from modelpress.stack import Stack

CPU_TARGET_MS = 0.5
P99_TARGET_MS = 50.0


def cpu_seconds(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def cpu_per_request(client: httpx.Client, pid: int, path: str, warmup: int, requests: int) -> dict:
    for _ in range(warmup):
        client.get(path).raise_for_status()
    before, t0 = cpu_seconds(pid), time.perf_counter()
    for _ in range(requests):
        client.get(path).raise_for_status()
    wall, cpu = time.perf_counter() - t0, cpu_seconds(pid) - before
    return {"path": path, "requests": requests, "api_cpu_ms_per_request": round(cpu / requests * 1000, 3),
            "wall_ms_per_request": round(wall / requests * 1000, 3)}


async def poll(base: str, path: str, clients: int, interval_s: float, seconds: float) -> tuple[list[float], dict[str, int], int]:
    latencies: list[float] = []
    errors: dict[str, int] = {}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as client:
        start = time.perf_counter()
        late = 0

        async def one(offset: float) -> None:
            nonlocal late
            due = start + offset
            while due < start + seconds:
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                else:
                    late += 1  # the client itself fell behind its schedule
                t = time.perf_counter()
                try:
                    r = await client.get(path)
                    error = None if r.status_code == 200 else f"HTTP {r.status_code}"
                except httpx.HTTPError as exc:
                    error = type(exc).__name__
                latencies.append(time.perf_counter() - t)
                if error:
                    errors[error] = errors.get(error, 0) + 1
                due += interval_s

        await asyncio.gather(*(one(interval_s * i / clients) for i in range(clients)))
    return latencies, errors, late


def poll_process(base: str, path: str, clients: int, interval_s: float, seconds: float, results) -> None:
    results.put(asyncio.run(poll(base, path, clients, interval_s, seconds)))


def run(args) -> dict:
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    host = machine()  # load average read now, before anything starts
    with tempfile.TemporaryDirectory(prefix="modelpress-apibench-") as tmp:
        stack = Stack(data_dir=Path(tmp), api_port=free_port(), workers=1,
                      extra_env={"MODELPRESS_SUBMIT_RATE_PER_MIN": "0", "MODELPRESS_TENANT_MAX_ACTIVE_JOBS": "0"})
        stack.start(ready_timeout=180)
        try:
            api_pid = next(c.process.pid for c in stack.children if c.name == "api")
            with httpx.Client(base_url=stack.base_url, timeout=30) as client:
                r = client.post("/jobs", files={"model": ("m.safetensors", small_model())}, data={"spec": json.dumps(SPEC)})
                r.raise_for_status()
                job_id = r.json()["id"]
                deadline = time.monotonic() + 300
                while (state := client.get(f"/jobs/{job_id}").json()["state"]) not in ("succeeded", "failed"):
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"job {job_id} did not finish")
                    time.sleep(0.2)
                if state != "succeeded":
                    raise RuntimeError(f"job {job_id} {state}")
                record_bytes = len(client.get(f"/jobs/{job_id}").content)
                status = cpu_per_request(client, api_pid, f"/jobs/{job_id}", args.warmup, args.requests)
                floor = cpu_per_request(client, api_pid, "/healthz", args.warmup, args.requests)
            results = multiprocessing.get_context("spawn").Queue()
            poller = multiprocessing.get_context("spawn").Process(
                target=poll_process, args=(stack.base_url, f"/jobs/{job_id}", args.clients, args.interval_ms / 1000, args.seconds, results))
            cpu_before, t0 = cpu_seconds(api_pid), time.perf_counter()
            poller.start()
            latencies, errors, late = results.get(timeout=args.seconds + 120)
            poller.join(30)
            api_cpu_share = (cpu_seconds(api_pid) - cpu_before) / (time.perf_counter() - t0)
        finally:
            stack.stop()
    polling = {"clients": args.clients, "interval_ms": args.interval_ms, "seconds": args.seconds,
               "offered_rps": round(args.clients / (args.interval_ms / 1000), 1), "latency": summary_ms(latencies),
               "max_ms": round(max(latencies) * 1000, 2) if latencies else None, "errors": errors,
               "client_fell_behind": late, "api_cpu_share": round(api_cpu_share, 3)}
    return {
        "bench": "api_status",
        "command": "python -m bench.api_status " + " ".join(sys.argv[1:]),
        "started_at": started_at,
        "machine": host,
        "versions": versions(),
        "record_bytes": record_bytes,
        "status_read": status,
        "framework_floor": floor,
        "polling": polling,
        "targets": {
            "api_cpu_ms_per_status_read": {"target": CPU_TARGET_MS, "measured": status["api_cpu_ms_per_request"],
                                           "met": status["api_cpu_ms_per_request"] <= CPU_TARGET_MS},
            "p99_ms_50_clients_250ms": {"target": P99_TARGET_MS, "measured": polling["latency"]["p99_ms"],
                                        "met": polling["latency"]["p99_ms"] <= P99_TARGET_MS and not errors},
        },
    }


def markdown(r: dict) -> str:
    s, f, p, t = r["status_read"], r["framework_floor"], r["polling"], r["targets"]
    lat = p["latency"]
    return "\n".join([
        "# API status-read cost",
        "",
        f"`{r['command']}` at {r['started_at']} on {r['machine']['cpu']} ({r['machine']['logical_cpus']} CPUs), "
        f"load average at start {r['machine']['load_avg_at_start']}.",
        "",
        "| measure | figure | target | met |",
        "|---|---|---|---|",
        f"| API CPU per `GET /jobs/{{id}}` ({s['requests']} sequential, record {r['record_bytes']} B) | {s['api_cpu_ms_per_request']} ms "
        f"| <= {CPU_TARGET_MS} ms | {'yes' if t['api_cpu_ms_per_status_read']['met'] else 'no'} |",
        f"| API CPU per `GET /healthz` (the framework's floor) | {f['api_cpu_ms_per_request']} ms | | |",
        f"| {p['clients']} clients polling every {p['interval_ms']} ms for {p['seconds']} s ({p['offered_rps']} req/s offered): "
        f"p50 / p90 / p99 / max | {lat['p50_ms']} / {lat['p90_ms']} / {lat['p99_ms']} / {p['max_ms']} ms "
        f"| p99 <= {P99_TARGET_MS} ms | {'yes' if t['p99_ms_50_clients_250ms']['met'] else 'no'} |",
        f"| requests, errors, API CPU share while polling | {lat['count']}, {p['errors'] or 'none'}, {p['api_cpu_share']:.0%} of one core | | |",
        "",
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--interval-ms", type=float, default=250.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--out", type=Path, default=None, help="write <out>.json and <out>.md")
    args = parser.parse_args(argv)
    result = run(args)
    print(markdown(result))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
        args.out.with_suffix(".md").write_text(markdown(result))
    return 0 if all(t["met"] for t in result["targets"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
