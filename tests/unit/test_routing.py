"""Device routing: ``auto`` resolves from the live workers' heartbeats (a fake Redis in memory)."""

from __future__ import annotations

import json
import time

from modelpress_core.spec import parse_spec
from modelpress_core.queue import queue_for, resolve_device
from modelpress_core.storage import keys
from modelpress_core.storage.workers import live_workers, waiting_reason

MLP = {"format": "safetensors", "architecture": "mlp", "config": {"sizes": [4, 2]}}


class FakeRedis:
    """The four calls the worker registry makes."""

    def __init__(self):
        self.values, self.zsets = {}, {}

    def zrange(self, key, start, end):
        return sorted(self.zsets.get(key, {}))

    def zrevrange(self, key, start, end, withscores=False):
        items = sorted(self.zsets.get(key, {}).items(), key=lambda kv: -kv[1])
        return items[: end + 1] if withscores else [k for k, _ in items[: end + 1]]

    def mget(self, names):
        return [self.values.get(n) for n in names]

    def worker(self, name, queues, cuda):
        for q in queues:
            self.zsets.setdefault(keys.queue_workers(q), {})[name] = time.time()
        self.values[keys.worker_heartbeat(name)] = json.dumps(
            {"name": name, "queues": queues, "cuda": cuda, "seen_at": time.time() - 1.5})


def spec(device, *steps):
    return parse_spec(json.dumps({"model": MLP, "steps": list(steps) or [{"method": "prune", "kind": "magnitude", "amount": 0.5}],
                                  "device": device}))


def test_auto_is_cpu_without_a_gpu_worker():
    client = FakeRedis()
    client.worker("cpu-0@h", ["cpu"], None)
    assert resolve_device(spec("auto"), client) == "cpu"
    assert waiting_reason(client, "gpu") == "no live GPU worker (queue gpu)"
    assert waiting_reason(client, "cpu") is None


def test_auto_is_cuda_when_a_gpu_worker_advertises_cuda():
    client = FakeRedis()
    client.worker("gpu-0@h", ["gpu"], {"devices": [{"index": 0, "name": "H100", "memory_bytes": 80 << 30}], "count": 1})
    assert resolve_device(spec("auto"), client) == "cuda" and queue_for("cuda") == "gpu"
    assert resolve_device(spec("cpu"), client) == "cpu"
    (worker,) = live_workers(client)
    assert 1 <= worker["heartbeat_age_s"] < 5


def test_auto_stays_on_cpu_for_cpu_only_steps_or_a_gpu_queue_worker_without_cuda():
    client = FakeRedis()
    client.worker("gpu-0@h", ["gpu"], {"devices": [{"index": 0, "name": "H100", "memory_bytes": 1}], "count": 1})
    assert resolve_device(spec("auto", {"method": "quantize", "kind": "dynamic_int8"}), client) == "cpu"
    client = FakeRedis()
    client.worker("gpu-0@h", ["gpu"], None)
    assert resolve_device(spec("auto"), client) == "cpu"


def test_a_dead_worker_is_not_live():
    client = FakeRedis()
    client.worker("gpu-0@h", ["gpu"], {"devices": [], "count": 1})
    del client.values[keys.worker_heartbeat("gpu-0@h")]  # its heartbeat expired
    assert live_workers(client) == [] and waiting_reason(client, "gpu") is not None
