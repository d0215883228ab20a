"""Measurements: parameter statistics, latency, output fidelity. Measured, never assumed."""

from __future__ import annotations

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


def _summary(samples: list[float], example: torch.Tensor, warmup: int, runtime: str) -> dict:
    samples = sorted(samples)
    return {
        "p50": round(statistics.median(samples), 4),
        "p90": round(samples[min(len(samples) - 1, int(0.9 * len(samples)))], 4),
        "batch_size": int(example.shape[0]),
        "threads": torch.get_num_threads(),
        "runs": len(samples),
        "warmup": warmup,
        "runtime": runtime,
        "device": example.device.type,
        "method": "interleaved with the other model, one call each per round",
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
