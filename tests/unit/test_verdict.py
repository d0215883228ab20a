"""The verdict's promises, with fixed latencies and CPU flags (no clock, no CPU detection).

The rule for simulated speed: a simulated-only artifact is never ``faster: true``, whatever its
measured speed-up; the speed-up is still reported, with a warning that says why it does not count.
"""

from __future__ import annotations

import pytest
import torch

from modelpress_core.spec import JobSpec
from worker.pipeline import make_verdict, simulated_reasons

MLP = {"format": "safetensors", "architecture": "mlp", "config": {"sizes": [4, 3]}, "input": {"shape": [1, 4], "dtype": "float32"}}
CPU, CUDA = torch.device("cpu"), torch.device("cuda")
NO_FLAGS = {"avx2": True}
FP16_FLAGS = {"avx2": True, "avx512_fp16": True}
AMX_FP16_FLAGS = {"avx2": True, "amx_fp16": True}
BF16_FLAGS = {"avx2": True, "avx512_bf16": True}
AMX_BF16_FLAGS = {"avx2": True, "amx_bf16": True}


def job(*kinds: str) -> JobSpec:
    return JobSpec.model_validate({"model": MLP, "steps": [{"method": "quantize", "kind": k} for k in kinds]})


def timed(p50_before: float, p50_after: float, batch: int = 1) -> tuple[dict, dict]:
    before = {"file_bytes": 1000, "sparsity": 0.0}
    after = {"file_bytes": 500, "sparsity": 0.0}
    before["latency"] = [{"batch_size": batch, "p50": p50_before}]
    after["latency"] = [{"batch_size": batch, "p50": p50_after}]
    before["latency_ms"], after["latency_ms"] = before["latency"][0], after["latency"][0]
    return before, after


# 0.8x: the artifact takes 1.25 ms where the original took 1.0 ms; 1.2x: 1.0 ms where it took 1.2 ms
SLOWER, QUICKER = (1.0, 1.25), (1.2, 1.0)


def not_faster_warnings(verdict: dict) -> list[str]:
    return [w for w in verdict["warnings"] if w.startswith("not faster")]


def test_a_real_1_2x_is_faster_with_no_warning():
    verdict = make_verdict(*timed(*QUICKER), "torchscript")
    assert verdict["speedup"] == 1.2 and verdict["faster"] is True
    assert verdict["simulated_only"] is False and verdict["simulated_reasons"] == []
    assert verdict["warnings"] == []


def test_a_real_0_8x_is_not_faster_and_says_so():
    verdict = make_verdict(*timed(*SLOWER), "torchscript")
    assert verdict["speedup"] == 0.8 and verdict["faster"] is False
    assert not_faster_warnings(verdict) == ["not faster: the artifact ran at 0.80x the original's speed (p50, batch 1, torchscript)"]


@pytest.mark.parametrize("p50_after, faster", [(1.0 / 1.05, False), (1.0 / 1.06, True)])
def test_within_five_percent_is_no_real_change(p50_after, faster):
    verdict = make_verdict(*timed(1.0, p50_after), "eager")
    assert verdict["faster"] is faster
    assert bool(not_faster_warnings(verdict)) is not faster


@pytest.mark.parametrize("times", [SLOWER, QUICKER], ids=["0.8x", "1.2x"])
def test_a_simulated_result_is_never_faster(times):
    reasons = ["quantize:fp16: no native fp16"]
    verdict = make_verdict(*timed(*times), "eager", simulated=reasons)
    assert verdict["faster"] is False
    assert verdict["simulated_only"] is True and verdict["simulated_reasons"] == reasons
    assert any(w.startswith("speed is simulated only: quantize:fp16: no native fp16") for w in verdict["warnings"])
    if times == QUICKER:  # the 1.2x is reported, and said not to count
        assert verdict["speedup"] == 1.2
        assert not_faster_warnings(verdict) == [("not faster: the artifact timed 1.20x, but its speed is simulated only "
                                                 "(no real low-precision kernel ran), so it does not count")]
    else:
        assert not_faster_warnings(verdict) == ["not faster: the artifact ran at 0.80x the original's speed (p50, batch 1, eager)"]


def test_the_fp16_case_seen_in_the_field_is_not_faster():
    """fp16 on a CPU without native fp16 measured 1.077x: that verdict said faster and simulated at once."""
    spec = job("fp16")
    verdict = make_verdict(*timed(1.077, 1.0), "eager", simulated=simulated_reasons(spec, CPU, NO_FLAGS))
    assert verdict["simulated_only"] is True and verdict["faster"] is False
    assert len(not_faster_warnings(verdict)) == 1  # every verdict that is not faster says so in a warning


@pytest.mark.parametrize("kind, flags, simulated", [
    ("fp16", NO_FLAGS, True), ("fp16", BF16_FLAGS, True), ("fp16", FP16_FLAGS, False), ("fp16", AMX_FP16_FLAGS, False),
    ("bf16", NO_FLAGS, True), ("bf16", FP16_FLAGS, True), ("bf16", BF16_FLAGS, False), ("bf16", AMX_BF16_FLAGS, False),
])
@pytest.mark.parametrize("times", [SLOWER, QUICKER], ids=["0.8x", "1.2x"])
def test_half_precision_on_cpu_is_simulated_without_native_support(kind, flags, simulated, times):
    reasons = simulated_reasons(job(kind), CPU, flags)
    assert len(reasons) == (1 if simulated else 0)
    if simulated:
        assert reasons[0].startswith(f"quantize:{kind}: this CPU has no native {kind} arithmetic")
    verdict = make_verdict(*timed(*times), "eager", simulated=reasons)
    assert verdict["simulated_only"] is simulated
    assert verdict["faster"] is (times == QUICKER and not simulated)
    assert len(not_faster_warnings(verdict)) == (0 if verdict["faster"] else 1)  # not faster: one warning says so


@pytest.mark.parametrize("kind", ["fp16", "bf16"])
def test_half_precision_on_cuda_is_real(kind):
    assert simulated_reasons(job(kind), CUDA, NO_FLAGS) == []


@pytest.mark.parametrize("device, flags", [(CPU, NO_FLAGS), (CPU, FP16_FLAGS), (CUDA, NO_FLAGS)])
def test_weight_only_int8_is_always_simulated(device, flags):
    reasons = simulated_reasons(job("weight_only_int8"), device, flags)
    assert reasons == ["quantize:weight_only_int8: the int8 weights are dequantized to float on every call; no int8 kernel ran"]


@pytest.mark.parametrize("kind", ["dynamic_int8", "static_int8"])
def test_real_int8_kernels_are_not_simulated(kind):
    assert simulated_reasons(job(kind), CPU, NO_FLAGS) == []


def test_only_quantize_steps_give_reasons():
    spec = JobSpec.model_validate({"model": MLP, "steps": [{"method": "prune", "kind": "magnitude", "amount": 0.5},
                                                           {"method": "quantize", "kind": "fp16"}]})
    assert [r.split(":", 2)[:2] for r in simulated_reasons(spec, CPU, NO_FLAGS)] == [["quantize", "fp16"]]


def test_a_larger_artifact_is_not_smaller():
    before, after = timed(*QUICKER)
    after["file_bytes"] = 1000
    verdict = make_verdict(before, after, "eager")
    assert verdict["smaller"] is False and verdict["size_ratio"] == 1.0
    assert any(w.startswith("the artifact is not smaller") for w in verdict["warnings"])


def test_an_accuracy_drop_is_in_points_in_the_warning_the_cli_and_the_report():
    """One unit for accuracy drops everywhere: percentage points (a 2-point drop from 98% to 96%),
    never "%", which reads as a relative change."""
    from modelpress.cli import verdict_line
    from service.report import render_report
    from tests.unit.test_report import JOB, METRICS

    quality = {"metric": "top1_accuracy", "count": 500, "top1_accuracy_before": 0.98, "top1_accuracy_after": 0.96,
               "accuracy_drop": 0.02, "accuracy_drop_ci95": [0.01, 0.03]}
    fidelity = {"cosine_similarity": 0.99, "inputs": "500 eval items"}
    verdict = make_verdict(*timed(*QUICKER), "torchscript", fidelity=fidelity, quality=quality)
    (warning,) = [w for w in verdict["warnings"] if "accuracy" in w]
    assert warning == "top-1 accuracy dropped 2.0 points (95% CI 1.0 to 3.0 points) on the labelled eval set (500 items)"
    metrics = {**METRICS, "quality": quality, "verdict": {**METRICS["verdict"], "warnings": [warning]}}
    assert "(drop 2.0 points, 95% CI 1.0 to 3.0)" in verdict_line(metrics)
    html = render_report(JOB, metrics)
    assert "drop 2.00 points (95% CI 1.00 to 3.00 points)" in html
    for text in (warning, verdict_line(metrics), html):
        assert "2.0%" not in text and "2.00%" not in text
