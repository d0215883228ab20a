"""torch.ao QConfigs from a step's ``backend``, ``granularity``, ``observer`` and QAT ``bits``.

With every option at its default, torch's own default mapping for the backend (what the tutorials use);
otherwise the same mapping with its global qconfig replaced: activations quint8 through the chosen
observer (``reduce_range`` as torch's default for the backend: on for x86/fbgemm), weights qint8 symmetric,
per channel (axis 0) or per tensor, min/max (moving-average min/max under fake quantization).
"""

from __future__ import annotations

import contextlib
import warnings

import torch
from torch.ao import quantization as tq

from modelpress_core.errors import InvalidSpec

REDUCE_RANGE = {"x86": True, "fbgemm": True, "onednn": False, "qnnpack": False}
DEFAULT_GRANULARITY = {"x86": "per_channel", "fbgemm": "per_channel", "onednn": "per_channel", "qnnpack": "per_tensor"}
OBSERVERS = {"histogram": tq.HistogramObserver, "minmax": tq.MinMaxObserver, "moving_average_minmax": tq.MovingAverageMinMaxObserver}


@contextlib.contextmanager
def quantized_engine(backend: str):
    """Run with torch's quantized engine set to ``backend``; restore the previous one after."""
    if backend not in torch.backends.quantized.supported_engines:
        raise InvalidSpec(f"backend {backend!r}: this worker's torch has engines {torch.backends.quantized.supported_engines}")
    previous = torch.backends.quantized.engine
    torch.backends.quantized.engine = backend
    try:
        yield
    finally:
        torch.backends.quantized.engine = previous


def granularity_of(step) -> str:
    return step.granularity or DEFAULT_GRANULARITY[step.backend]


def is_default(step) -> bool:
    return step.granularity is None and getattr(step, "observer", None) is None and getattr(step, "bits", 8) == 8


def _weight(granularity: str, qat: bool, bits: int):
    low, high = (-8, 7) if bits == 4 else (-128, 127)
    if granularity == "per_channel":
        observer = tq.MovingAveragePerChannelMinMaxObserver if qat else tq.PerChannelMinMaxObserver
        kwargs = {"dtype": torch.qint8, "qscheme": torch.per_channel_symmetric, "ch_axis": 0}
    else:
        observer = tq.MovingAverageMinMaxObserver if qat else tq.MinMaxObserver
        kwargs = {"dtype": torch.qint8, "qscheme": torch.per_tensor_symmetric}
    if qat:
        return tq.FakeQuantize.with_args(observer=observer, quant_min=low, quant_max=high, **kwargs)
    return observer.with_args(quant_min=low, quant_max=high, **kwargs)


def _activation(backend: str, observer: str, qat: bool):
    reduce = REDUCE_RANGE[backend]
    low, high = (0, 127) if reduce else (0, 255)
    if qat:
        return tq.FakeQuantize.with_args(observer=OBSERVERS[observer], quant_min=low, quant_max=high, dtype=torch.quint8)
    return OBSERVERS[observer].with_args(dtype=torch.quint8, quant_min=low, quant_max=high)


def qconfig_mapping(step, *, qat: bool):
    """The QConfigMapping for FX graph mode (static_int8, qat)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mapping = tq.get_default_qat_qconfig_mapping(step.backend) if qat else tq.get_default_qconfig_mapping(step.backend)
        if is_default(step):
            return mapping
        observer = step.observer or ("moving_average_minmax" if qat else "histogram")
        qconfig = tq.QConfig(activation=_activation(step.backend, observer, qat),
                             weight=_weight(granularity_of(step), qat, getattr(step, "bits", 8)))
        return mapping.set_global(qconfig)


def dynamic_qconfig(granularity: str):
    return tq.per_channel_dynamic_qconfig if granularity == "per_channel" else tq.default_dynamic_qconfig


def describe(step) -> str:
    observer = getattr(step, "observer", None)
    parts = [f"backend {step.backend}", f"{granularity_of(step).replace('_', '-')} weights"]
    if observer:
        parts.append(f"{observer} activation observer")
    if getattr(step, "fuse", None):
        parts.append(f"fused {step.fuse}")
    return ", ".join(parts)


def fuse(model: torch.nn.Module, step, *, qat: bool) -> torch.nn.Module:
    """Fuse the step's explicit groups (torch.ao.quantization.fuse_modules / fuse_modules_qat)."""
    if not step.fuse:
        return model
    try:
        if qat:
            return tq.fuse_modules_qat(model.train(), step.fuse, inplace=False)
        return tq.fuse_modules(model.eval(), step.fuse, inplace=False)
    except (AttributeError, AssertionError, RuntimeError, NotImplementedError) as exc:
        raise InvalidSpec(f"{step.label}: fuse {step.fuse}: {type(exc).__name__}: {exc}"[:500]) from None
