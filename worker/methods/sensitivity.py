"""Per-layer sensitivity (``analyze:sensitivity``): compress one layer at a time, measure the metric drop.

The model is left unchanged (each layer is swapped or overwritten, measured, and restored). The
metric is top-1 accuracy on the eval labels, else top-1 agreement with the model's own outputs
(output cosine when the outputs are not class scores), on the eval inputs or on seeded synthetic
inputs. With more layers than ``MODELPRESS_SENSITIVITY_MAX_LAYERS`` a proxy with no forward
passes is used instead: the relative weight error ``||W - C(W)|| / ||W||`` of the compression.
The result goes to ``ctx.results["sensitivity"]`` and from there to ``metrics.sensitivity``.
"""

from __future__ import annotations

import warnings
from typing import Callable

import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

from modelpress_core.config import get_settings
from modelpress_core.errors import InvalidSpec
from modelpress_core.steps import Sensitivity
from worker.evaluate import _first_tensor
from worker.methods.registry import StepContext, handles
from worker.methods.targeting import select_modules

LAYER_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
SYNTHETIC_SAMPLES = 256


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, new)


@torch.no_grad()
def fake_quantize_int8(weight: torch.Tensor, per_channel: bool = True) -> torch.Tensor:
    """Symmetric int8 (per output channel, or one scale per tensor as dynamic int8 Linear weights use),
    quantized and dequantized: what int8 weights lose."""
    flat = weight.reshape(weight.shape[0], -1)
    scale = (flat.abs().amax(dim=1) if per_channel else flat.abs().amax().expand(flat.shape[0])).clamp(min=1e-12) / 127.0
    q = torch.clamp(torch.round(flat / scale[:, None]), -127, 127)
    return (q * scale[:, None]).reshape(weight.shape).to(weight.dtype)


@torch.no_grad()
def prune_l1(weight: torch.Tensor, amount: float) -> torch.Tensor:
    mask = torch_prune.L1Unstructured(amount).compute_mask(weight, torch.ones_like(weight))
    return weight * mask


@torch.no_grad()
def relative_error(weight: torch.Tensor, compressed: torch.Tensor) -> float:
    return float((weight.float() - compressed.float()).norm() / weight.float().norm().clamp(min=1e-12))


class _Scorer:
    """The metric of a model on fixed inputs, relative to the unmodified model's outputs."""

    def __init__(self, model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor | None):
        self.model, self.inputs, self.labels = model, inputs, labels
        self.reference = self._outputs()
        self.classes = self.reference.dim() == 2 and self.reference.shape[1] > 1
        self.metric = "top1" if labels is not None and self.classes else ("agreement" if self.classes else "cosine")
        self.baseline = self.score()

    @torch.inference_mode()
    def _outputs(self) -> torch.Tensor:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.cat([_first_tensor(self.model(b)).float() for b in self.inputs.split(256)])

    def score(self) -> float:
        out = self._outputs()
        if self.metric == "top1":
            return float((out.argmax(1) == self.labels).float().mean())
        if self.metric == "agreement":
            return float((out.argmax(1) == self.reference.argmax(1)).float().mean())
        flat_ref, flat_out = self.reference.reshape(len(out), -1), out.reshape(len(out), -1)
        return float(nn.functional.cosine_similarity(flat_ref, flat_out, dim=1, eps=1e-12).mean())


def _measure_quantized(model: nn.Module, name: str, module: nn.Module, score: Callable[[], float], device: torch.device) -> float:
    """Swap in the int8 version of one layer (dynamic int8 for a Linear on CPU, int8 weights otherwise), score, restore."""
    if type(module) is nn.Linear and device.type == "cpu":
        from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear
        from torch.ao.quantization import default_dynamic_qconfig

        module.qconfig = default_dynamic_qconfig
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                _replace(model, name, DynamicLinear.from_float(module))
            return score()
        finally:
            _replace(model, name, module)
            del module.qconfig
    return _measure_overwritten(module, fake_quantize_int8, score)


@torch.no_grad()
def _measure_overwritten(module: nn.Module, transform: Callable[[torch.Tensor], torch.Tensor], score: Callable[[], float]) -> float:
    saved = module.weight.detach().clone()
    try:
        module.weight.copy_(transform(module.weight))
        return score()
    finally:
        module.weight.copy_(saved)


def sensitivity(model: nn.Module, step: Sensitivity, ctx: StepContext, *, max_layers: int, max_samples: int) -> dict:
    """The per-layer table: [{name, type, delta}] in model order, plus how it was measured."""
    targets = [(n, m) for n, m in select_modules(model, step, LAYER_TYPES) if isinstance(getattr(m, "weight", None), nn.Parameter)]
    if not targets:
        raise InvalidSpec(f"{step.label}: no Linear/Conv layer matches include={step.include} exclude={step.exclude}")
    transform = fake_quantize_int8 if step.compress == "quantize" else (lambda w: prune_l1(w, step.prune_amount))

    def proxy(module: nn.Module) -> torch.Tensor:
        if step.compress == "quantize":  # as the int8 the search would use: per-tensor for Linear (dynamic), per-channel otherwise
            return fake_quantize_int8(module.weight, per_channel=type(module) is not nn.Linear)
        return transform(module.weight)

    result: dict = {"kind": step.compress, **({"amount": step.prune_amount} if step.compress == "prune" else {})}
    if len(targets) > max_layers:
        result.update(
            metric="weight_error", proxy=True,
            method=f"{len(targets)} layers > {max_layers}: proxy without forward passes, delta = ||W - C(W)|| / ||W|| "
            "(relative weight error of compressing that layer), not a measured metric drop",
            layers=[{"name": n, "type": type(m).__name__, "delta": round(relative_error(m.weight, proxy(m)), 6)} for n, m in targets],
        )
        return result
    was_training = model.training
    model.eval()
    if ctx.eval is not None:
        inputs, labels = ctx.eval[:max_samples], (ctx.eval_labels[:max_samples] if ctx.eval_labels is not None else None)
        source = f"the first {len(inputs)} inputs of the eval data"
    else:
        generator = torch.Generator().manual_seed(ctx.seed + 11)
        shape = tuple(ctx.example_input.shape[1:])
        inputs = torch.randn((SYNTHETIC_SAMPLES, *shape), generator=generator).to(ctx.example_input.dtype)
        labels, source = None, f"{SYNTHETIC_SAMPLES} synthetic inputs (seeded normal noise), not real data"
    device = next(model.parameters()).device
    scorer = _Scorer(model, inputs.to(device), labels.to(device) if labels is not None else None)
    rows = []
    for i, (name, module) in enumerate(targets):
        ctx.check_cancelled()
        ctx.report(i / len(targets), f"sensitivity: layer {i + 1}/{len(targets)} ({name})")
        if step.compress == "quantize":
            value = _measure_quantized(model, name, module, scorer.score, device)
        else:
            value = _measure_overwritten(module, transform, scorer.score)
        rows.append({"name": name, "type": type(module).__name__, "delta": round(scorer.baseline - value, 6)})
    model.train(was_training)
    result.update(metric=scorer.metric, proxy=False, baseline=round(scorer.baseline, 6), samples=int(len(inputs)), inputs=source,
                  method="each layer compressed alone (int8: dynamic for Linear on CPU, per-channel int8 weights otherwise; "
                  "prune: L1 unstructured), delta = baseline metric - metric", layers=rows)
    return result


def most_sensitive(table: dict, k: int) -> list[str]:
    """The ``k`` layer names with the largest delta (ties: model order)."""
    ranked = sorted(enumerate(table["layers"]), key=lambda p: (-p[1]["delta"], p[0]))
    return [row["name"] for _, row in ranked[:k]]


@handles(Sensitivity)
def analyze_sensitivity(model: nn.Module, step: Sensitivity, ctx: StepContext) -> nn.Module:
    if isinstance(model, torch.jit.ScriptModule):
        raise InvalidSpec("analyze:sensitivity swaps modules, which a ScriptModule cannot; upload a safetensors state_dict")
    settings = get_settings()
    table = sensitivity(model, step, ctx, max_layers=settings.sensitivity_max_layers, max_samples=settings.sensitivity_max_samples)
    ctx.results["sensitivity"] = table
    worst = most_sensitive(table, 3)
    ctx.notes.append(f"{step.label}: {len(table['layers'])} layers ({step.compress}, metric {table['metric']}); "
                     f"most sensitive: {', '.join(worst)}; the model is unchanged")
    return model
