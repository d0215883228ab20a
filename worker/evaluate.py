"""Measurements: parameter statistics, latency, output fidelity. Measured, never assumed."""

from __future__ import annotations

import math
import os
import statistics
import time
import warnings
from contextlib import contextmanager

import torch
from torch import nn

SKIP_SUFFIXES = ("running_mean", "running_var", "num_batches_tracked", "position_ids", ".scale", ".zero_point", ".weight_scale")


def _tensors(value):
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, (tuple, list)):
        for v in value:
            yield from _tensors(v)


def _onnx_weights(model) -> list[tuple[str, torch.Tensor]] | None:
    """The weight initializers of an ONNX-backed model (runtime onnxruntime), as tensors; None otherwise."""
    proto = getattr(model, "proto", None)
    if proto is None:
        return None
    from onnx import numpy_helper

    weights = []
    for init in proto().graph.initializer:
        array = numpy_helper.to_array(init)
        if array.ndim >= 1 and array.size > 1 and array.dtype.kind in "fiu":  # weights/biases, not scalar scales
            if init.name.endswith(("_scale", "_zero_point")):
                continue
            weights.append((init.name, torch.from_numpy(array.copy())))
    return weights


def parameter_stats(model: nn.Module) -> dict:
    """Counts over the state_dict's weights (quantized packed weights included), not buffers.
    For an ONNX-backed model: over its weight initializers (int8 weights count 1 byte each)."""
    count = nonzero = nbytes = 0
    dtypes: dict[str, int] = {}
    onnx_weights = _onnx_weights(model)
    items = onnx_weights if onnx_weights is not None else model.state_dict().items()
    for name, value in items:
        if name.endswith(SKIP_SUFFIXES):
            continue
        for t in _tensors(value):
            if not (t.is_floating_point() or t.is_quantized or t.dtype in (torch.int8, torch.uint8)):
                continue
            data = t.int_repr() if t.is_quantized else t
            count += t.numel()
            nonzero += int(torch.count_nonzero(data))
            nbytes += t.numel() * t.element_size()
            dtypes[str(t.dtype).replace("torch.", "")] = dtypes.get(str(t.dtype).replace("torch.", ""), 0) + t.numel()
    return {
        "parameters": count,
        "nonzero_parameters": nonzero,
        "sparsity": round(1 - nonzero / count, 6) if count else 0.0,
        "parameter_bytes": nbytes,
        "dtypes": dtypes,
    }


def _weight(module: nn.Module, name: str):
    value = getattr(module, name, None)
    if callable(value) and not isinstance(value, (torch.Tensor, nn.Module)):
        try:  # quantized modules expose weight() / bias() as methods over packed params
            value = value()
        except Exception:  # noqa: BLE001
            return None
    return value if isinstance(value, torch.Tensor) else None


def layers(model: nn.Module) -> list[dict]:
    """One row per module that owns a weight: name, type, weight shape and dtype, weight sparsity,
    and bytes of its weight and bias as stored (int8 weights count 1 byte each)."""
    rows = []
    onnx_weights = _onnx_weights(model)
    if onnx_weights is not None:
        for name, weight in onnx_weights:
            if weight.dim() < 2:
                continue
            rows.append({"name": name, "type": "onnx initializer", "shape": list(weight.shape),
                         "dtype": str(weight.dtype).replace("torch.", ""),
                         "sparsity": round(1 - int(torch.count_nonzero(weight)) / weight.numel(), 6),
                         "bytes": int(weight.numel() * weight.element_size())})
        return rows
    for name, module in model.named_modules():
        weight = _weight(module, "weight")
        if weight is None or not (weight.is_floating_point() or weight.is_quantized):
            continue
        bias = _weight(module, "bias")
        data = weight.int_repr() if weight.is_quantized else weight
        nbytes = weight.numel() * weight.element_size() + (bias.numel() * bias.element_size() if bias is not None else 0)
        rows.append({
            "name": name or "(root)",
            "type": module._get_name(),  # DynamicQuantizedLinear, not a second "Linear"
            "shape": list(weight.shape),
            "dtype": str(weight.dtype).replace("torch.", ""),
            "sparsity": round(1 - int(torch.count_nonzero(data)) / weight.numel(), 6) if weight.numel() else 0.0,
            "bytes": int(nbytes),
        })
    return rows


def cpu_info(path: str = "/proc/cpuinfo") -> dict:
    """The CPU model and the SIMD/matrix flags that decide which int8 kernels can run."""
    import platform

    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open(path) as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and value.strip():
                    model = value.strip()
                elif key in ("flags", "Features") and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    wanted = {
        "avx2": "avx2" in flags,
        "avx512": "avx512f" in flags,
        "avx512_vnni": "avx512_vnni" in flags,
        "avx_vnni": "avx_vnni" in flags,
        "amx": bool({"amx_tile", "amx_int8"} & flags),
        # native half-precision arithmetic (without these, fp16/bf16 on CPU is converted, not fast)
        "avx512_fp16": "avx512_fp16" in flags,
        "avx512_bf16": "avx512_bf16" in flags,
        "amx_bf16": "amx_bf16" in flags,
        "amx_fp16": "amx_fp16" in flags,
    }
    wanted["vnni"] = wanted["avx512_vnni"] or wanted["avx_vnni"]
    return {"model": model, "flags": wanted, "logical_cpus": __import__("os").cpu_count()}


@contextmanager
def quiet():
    """torch 2.13's int8 kernels raise a deprecation warning on every call; routing each through
    Python's warnings machinery costs ~20 ms. Servers filter warnings, so measure as they run."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@torch.inference_mode()
@quiet()
def paired_latency(models: list, example: torch.Tensor, *, warmup: int, runs: int, runtimes: list[str]) -> list[dict]:
    """Time several models on the same input, alternating one call of each per round,
    so drift in clock speed or machine load hits all of them alike."""
    sync = torch.cuda.synchronize if example.is_cuda else (lambda: None)
    for model in models:
        for _ in range(warmup):
            model(example)
    sync()
    samples: list[list[float]] = [[] for _ in models]
    for _ in range(runs):
        for model, times in zip(models, samples):
            start = time.perf_counter()
            model(example)
            sync()
            times.append((time.perf_counter() - start) * 1000)
    return [_summary(times, example, warmup, runtime) for times, runtime in zip(samples, runtimes)]


@torch.inference_mode()
@quiet()
def first_call_seconds(model, example: torch.Tensor) -> float:
    """One call, timed: for compiled runtimes this is the compile for that shape, kept out of the timings."""
    start = time.perf_counter()
    model(example)
    return round(time.perf_counter() - start, 3)


def percentile(sorted_samples: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of already sorted samples: an observed value, never interpolated."""
    rank = max(1, math.ceil(q / 100 * len(sorted_samples)))
    return sorted_samples[min(rank, len(sorted_samples)) - 1]


def _summary(samples: list[float], example: torch.Tensor, warmup: int, runtime: str) -> dict:
    samples = sorted(samples)
    mean = statistics.fmean(samples)
    batch = int(example.shape[0])
    return {
        "p50": round(statistics.median(samples), 4),
        "p90": round(percentile(samples, 90), 4),
        "p99": round(percentile(samples, 99), 4),
        "mean": round(mean, 4),
        "throughput": round(batch * 1000 / mean, 2) if mean > 0 else 0.0,
        "batch_size": batch,
        "threads": torch.get_num_threads(),
        "runs": len(samples),
        "warmup": warmup,
        "runtime": runtime,
        "device": example.device.type,
        "method": "interleaved with the other model, one call each per round; percentiles are nearest-rank "
                  "(with fewer than 100 runs p99 is the slowest run); throughput = batch size / mean latency",
    }


@torch.inference_mode()
@quiet()
def fidelity(original: nn.Module, compressed, inputs: torch.Tensor) -> dict:
    ref = _first_tensor(original(inputs)).float()
    out = _first_tensor(compressed(inputs)).float()
    diff = (ref - out).abs()
    flat_ref, flat_out = ref.reshape(ref.shape[0], -1), out.reshape(out.shape[0], -1)
    cosine = torch.nn.functional.cosine_similarity(flat_ref, flat_out, dim=1, eps=1e-12)
    result = {
        "samples": int(inputs.shape[0]),
        "max_abs_diff": float(diff.max()),
        "mean_abs_diff": float(diff.mean()),
        "cosine_similarity": round(float(cosine.mean()), 6),
    }
    if ref.dim() == 2 and ref.shape[1] > 1:
        result["top1_agreement"] = round(float((ref.argmax(1) == out.argmax(1)).float().mean()), 6)
    return result


@torch.inference_mode()
@quiet()
def accuracy(model, inputs: torch.Tensor, labels: torch.Tensor, batch_size: int = 256) -> float:
    """Top-1 accuracy: the share of inputs whose largest output is the label."""
    correct = 0
    for start in range(0, inputs.shape[0], batch_size):
        out = _first_tensor(model(inputs[start : start + batch_size])).float()
        if out.dim() != 2:
            raise ValueError(f"accuracy needs (batch, classes) outputs; the model returns shape {list(out.shape)}")
        correct += int((out.argmax(1) == labels[start : start + batch_size]).sum())
    return round(correct / inputs.shape[0], 6)


def _first_tensor(output):
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)):
        return _first_tensor(output[0])
    if isinstance(output, dict):
        return _first_tensor(next(iter(output.values())))
    raise TypeError(f"cannot compare model outputs of type {type(output).__name__}")


# --- compute: multiply-accumulates -------------------------------------------------------------

def _int8_macs(module: nn.Module, output) -> int | None:
    """MACs of one torch.ao int8 module's call, counted as its float equivalent (FlopCounterMode
    does not see quantized::linear / quantized::conv). None for modules it cannot count."""
    out = _first_tensor(output) if not isinstance(output, torch.Tensor) else output
    if hasattr(module, "in_features"):
        return int(out.numel()) * int(module.in_features)
    if hasattr(module, "in_channels") and hasattr(module, "kernel_size"):
        kernel = math.prod(module.kernel_size) if isinstance(module.kernel_size, tuple) else int(module.kernel_size)
        return int(out.numel()) * int(module.in_channels) // int(module.groups) * kernel
    return None


def _is_int8_module(module: nn.Module) -> bool:
    return type(module).__module__.startswith(("torch.ao.nn.quantized", "torch.ao.nn.intrinsic.quantized"))


def warm_up_mac_counter() -> None:
    """FlopCounterMode's first use costs seconds (lazy imports inside torch); pay it when a worker
    process starts (worker.tasks._preload), not inside a job's measuring phase."""
    count_macs(nn.Linear(2, 2).eval(), torch.zeros(1, 2))


def count_macs(model, example: torch.Tensor) -> dict:
    """Multiply-accumulates of one forward pass on ``example`` (dense: zeros from unstructured
    pruning are still multiplied). torch.utils.flop_counter.FlopCounterMode counts the float
    matmuls and convolutions (MACs = FLOPs / 2); int8 modules, which it cannot see, are counted
    by forward hooks as their float equivalents."""
    from torch.utils.flop_counter import FlopCounterMode

    int8_macs, uncounted, handles, fired = [0], set(), [], set()

    def hook(module, _inputs, output):
        fired.add(id(module))
        macs = _int8_macs(module, output)
        if macs is None:
            uncounted.add(module._get_name())
        else:
            int8_macs[0] += macs

    if isinstance(model, nn.Module) and not isinstance(model, torch.jit.ScriptModule):
        handles = [m.register_forward_hook(hook) for m in model.modules() if _is_int8_module(m)]
    try:
        with torch.inference_mode(), quiet(), FlopCounterMode(display=False) as counter:
            model(example)
        flops = counter.get_total_flops()
    except Exception as exc:  # noqa: BLE001 - an uncountable model is reported, not fatal
        return {"macs": None, "input_shape": list(example.shape), "method": "FlopCounterMode",
                "note": f"could not count: {type(exc).__name__}: {exc}"[:300]}
    finally:
        for h in handles:
            h.remove()
    result = {"macs": int(flops // 2 + int8_macs[0]), "input_shape": list(example.shape),
              "method": "torch.utils.flop_counter.FlopCounterMode (matmul/conv FLOPs / 2)"}
    notes = []
    if fired:
        result["method"] += f" + forward hooks on {len(fired)} int8 modules"
        notes.append("int8 layers counted as their float equivalents (same multiply-accumulates, in int8)")
    if uncounted:
        notes.append(f"not counted: {', '.join(sorted(uncounted))}")
    if notes:
        result["note"] = "; ".join(notes)
    return result


# --- memory ------------------------------------------------------------------------------------

RSS_METHOD = ("peak resident-set growth of a forked copy of the worker while it loads the model from its file "
              "and runs one forward pass at batch {batch} (Linux VmHWM reset through /proc/self/clear_refs; one "
              "thread); includes weights, activations and allocator overhead, not the Python/torch runtime")


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(f"{field} not in /proc/self/status")


def peak_rss_growth(load, example: torch.Tensor, timeout_s: float = 120.0) -> dict:
    """Peak RSS growth of loading ``load()`` and running it once on ``example``, in a forked child
    (so each model is measured from the same clean baseline and nothing it frees is reused)."""
    import json
    import select
    import signal

    method = RSS_METHOD.format(batch=int(example.shape[0]))
    if not (hasattr(os, "fork") and os.path.exists("/proc/self/clear_refs")):
        return {"rss_peak_growth_bytes": None, "method": "unavailable: needs Linux /proc and fork"}
    read_fd, write_fd = os.pipe()
    with warnings.catch_warnings():  # Python 3.12+ warns on fork in a threaded process; the child only measures
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child: measure, report on the pipe, leave without running any cleanup
        try:
            os.close(read_fd)
            torch.set_num_threads(1)  # OpenMP pools do not survive fork; one thread is safe
            import gc

            # No collection in the child: a pass walks the parent's whole heap and copies its pages on
            # write (~240 ms per fork in a Celery worker, and counted as growth if it ran mid-measurement).
            gc.disable()
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # reset VmHWM to the current RSS
            base = _status_kb("VmRSS")
            model = load()
            with torch.inference_mode(), quiet():
                model(example)
            payload = {"peak": (_status_kb("VmHWM") - base) * 1024}
        except BaseException as exc:  # noqa: BLE001
            payload = {"error": f"{type(exc).__name__}: {exc}"[:300]}
        try:
            os.write(write_fd, json.dumps(payload).encode())
        finally:
            os._exit(0)
    os.close(write_fd)
    try:
        ready, _, _ = select.select([read_fd], [], [], timeout_s)
        data = os.read(read_fd, 65536) if ready else b""
    finally:
        os.close(read_fd)
        if not data:
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    if not data:
        return {"rss_peak_growth_bytes": None, "method": method, "note": f"timed out after {timeout_s:.0f} s"}
    payload = json.loads(data)
    if "error" in payload:
        return {"rss_peak_growth_bytes": None, "method": method, "note": payload["error"]}
    return {"rss_peak_growth_bytes": max(0, int(payload["peak"])), "method": method}


@torch.inference_mode()
@quiet()
def cuda_peak_memory(model, example: torch.Tensor) -> dict:
    """On CUDA: bytes the model's tensors hold and the peak extra allocation of one forward pass
    (torch.cuda.max_memory_allocated after reset_peak_memory_stats, minus what was allocated before)."""
    held = 0
    if isinstance(model, nn.Module):
        held = sum(t.numel() * t.element_size() for t in list(model.parameters()) + list(model.buffers()) if t.is_cuda)
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    model(example)
    torch.cuda.synchronize()
    return {"cuda_model_bytes": int(held), "cuda_forward_peak_bytes": int(torch.cuda.max_memory_allocated() - base),
            "cuda_method": "torch.cuda.max_memory_allocated during one forward pass minus the allocation before it"}


def gpu_info() -> dict | None:
    if not torch.cuda.is_available():
        return None
    props = torch.cuda.get_device_properties(0)
    return {"name": props.name, "capability": f"{props.major}.{props.minor}", "memory_bytes": int(props.total_memory),
            "cuda": torch.version.cuda}


# --- quality: accuracy with confidence intervals, regression error ------------------------------

Z95 = 1.959964
BOOTSTRAP_RESAMPLES = 1000


def wilson_interval(successes: int, n: int, z: float = Z95) -> list[float]:
    """Wilson score interval of a binomial proportion (95% by default)."""
    if n == 0:
        return [0.0, 1.0]
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return [round(max(0.0, centre - half), 6), round(min(1.0, centre + half), 6)]


def paired_bootstrap(diff: torch.Tensor, seed: int, resamples: int = BOOTSTRAP_RESAMPLES) -> list[float]:
    """95% percentile interval of mean(diff) over paired resamples of the same items."""
    diff = diff.double().flatten()
    n = diff.numel()
    generator = torch.Generator().manual_seed(seed)
    means = []
    chunk = max(1, min(resamples, 2_000_000 // max(n, 1)))
    for start in range(0, resamples, chunk):
        idx = torch.randint(0, n, (min(chunk, resamples - start), n), generator=generator)
        means.append(diff[idx].mean(1))
    means = torch.cat(means).sort().values
    lo, hi = means[int(0.025 * (resamples - 1))], means[int(math.ceil(0.975 * (resamples - 1)))]
    return [round(float(lo), 6), round(float(hi), 6)]


def mcnemar_exact_p(only_before: int, only_after: int) -> float:
    """Two-sided exact McNemar test on the discordant pairs (binomial, p = 0.5)."""
    n = only_before + only_after
    if n == 0:
        return 1.0
    k = min(only_before, only_after)
    if n > 2000:  # normal approximation with continuity correction
        chi = (abs(only_before - only_after) - 1) ** 2 / n
        return round(math.erfc(math.sqrt(chi / 2)), 6)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    return round(min(1.0, 2 * tail), 6)


@torch.inference_mode()
@quiet()
def outputs_of(model, inputs: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    return torch.cat([_first_tensor(model(inputs[s : s + batch_size])).float().cpu() for s in range(0, inputs.shape[0], batch_size)])


def classification_quality(before: torch.Tensor, after: torch.Tensor, labels: torch.Tensor, seed: int) -> dict:
    """Top-1 accuracy before/after with Wilson 95% intervals; the drop with a paired bootstrap
    95% interval and an exact McNemar test on the items only one model got right."""
    if before.dim() != 2:
        raise ValueError(f"accuracy needs (batch, classes) outputs; the model returns shape {list(before.shape)}")
    labels = labels.cpu()
    right_b, right_a = before.argmax(1) == labels, after.argmax(1) == labels
    n, kb, ka = int(labels.numel()), int(right_b.sum()), int(right_a.sum())
    only_before, only_after = int((right_b & ~right_a).sum()), int((right_a & ~right_b).sum())
    return {
        "metric": "top1_accuracy",
        "top1_accuracy_before": round(kb / n, 6),
        "top1_accuracy_after": round(ka / n, 6),
        "accuracy_before_ci95": wilson_interval(kb, n),
        "accuracy_after_ci95": wilson_interval(ka, n),
        "accuracy_drop": round((kb - ka) / n, 6),
        "accuracy_drop_ci95": paired_bootstrap(right_b.double() - right_a.double(), seed),
        "discordant": {"only_before_right": only_before, "only_after_right": only_after},
        "mcnemar_p": mcnemar_exact_p(only_before, only_after),
        "method": "Wilson score intervals; paired bootstrap (1000 seeded resamples) for the drop; exact McNemar test",
    }


def regression_quality(before: torch.Tensor, after: torch.Tensor, targets: torch.Tensor, seed: int) -> dict:
    """Mean squared error against float targets before/after, with 95% intervals (normal for each,
    paired bootstrap for the change)."""
    targets = targets.float().cpu().reshape(before.shape) if targets.numel() == before.numel() else None
    if targets is None:
        raise ValueError(f"float labels must have one value per output ({list(before.shape)})")
    se_b = ((before - targets) ** 2).reshape(before.shape[0], -1).mean(1).double()
    se_a = ((after - targets) ** 2).reshape(after.shape[0], -1).mean(1).double()

    def ci(se: torch.Tensor) -> list[float]:
        half = Z95 * float(se.std()) / math.sqrt(se.numel()) if se.numel() > 1 else float("inf")
        return [round(max(0.0, float(se.mean()) - half), 8), round(float(se.mean()) + half, 8)]

    return {
        "metric": "mse",
        "mse_before": round(float(se_b.mean()), 8),
        "mse_after": round(float(se_a.mean()), 8),
        "mse_before_ci95": ci(se_b),
        "mse_after_ci95": ci(se_a),
        "mse_increase": round(float((se_a - se_b).mean()), 8),
        "mse_increase_ci95": paired_bootstrap(se_a - se_b, seed),
        "method": "per-item squared error averaged over outputs; normal 95% intervals; paired bootstrap for the increase",
    }
