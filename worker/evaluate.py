"""Measurements: parameter statistics, latency, output fidelity. Measured, never assumed."""

from __future__ import annotations

import statistics
import time
import warnings
from contextlib import contextmanager

import torch
from torch import nn

SKIP_SUFFIXES = ("running_mean", "running_var", "num_batches_tracked", "position_ids", ".scale", ".zero_point")


def _tensors(value):
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, (tuple, list)):
        for v in value:
            yield from _tensors(v)


def parameter_stats(model: nn.Module) -> dict:
    """Counts over the state_dict's weights (quantized packed weights included), not buffers."""
    count = nonzero = nbytes = 0
    dtypes: dict[str, int] = {}
    for name, value in model.state_dict().items():
        if name.endswith(SKIP_SUFFIXES):
            continue
        for t in _tensors(value):
            if not (t.is_floating_point() or t.is_quantized):
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


@contextmanager
def quiet():
    """torch 2.13's int8 kernels raise a deprecation warning on every call; routing each through
    Python's warnings machinery costs ~20 ms. Servers filter warnings, so measure as they run."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@torch.inference_mode()
@quiet()
def latency(model, example: torch.Tensor, *, warmup: int, runs: int, runtime: str) -> dict:
    for _ in range(warmup):
        model(example)
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        model(example)
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return {
        "p50": round(statistics.median(samples), 4),
        "p90": round(samples[min(len(samples) - 1, int(0.9 * len(samples)))], 4),
        "batch_size": int(example.shape[0]),
        "threads": torch.get_num_threads(),
        "runs": runs,
        "warmup": warmup,
        "runtime": runtime,
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
