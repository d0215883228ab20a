"""Deep Compression weight sharing (Han et al. 2016, section 3): per-layer k-means codebooks, fine-tuned.

Per targeted layer, 1-D k-means (linear initialization over [min, max], the paper's best) on the
*nonzero* weights only: pruned zeros stay exactly zero and the layer ends with at most ``2**bits``
distinct values (``2**bits - 1`` centroids plus zero when it was pruned, ``2**bits`` otherwise).
Every weight is replaced by its centroid in the float model, so it stays a normal model (measured,
exported to any format); the ``packed`` writer finds the shared values and stores codebook + codes.

Codebook fine-tuning (with a labelled ``train`` part): the forward uses ``centroid[code]``; the
gradient of every weight sharing a centroid is summed into that centroid's gradient (the paper's
eq. 3), and Adam updates the centroids (and the layers' biases). Codes and zeros never move.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from fnmatch import fnmatchcase

import torch
from torch import nn

from modelpress_core.errors import InvalidSpec
from modelpress_core.steps import KMeansQuantize
from worker.methods.registry import StepContext, handles
from worker.methods.targeting import select_modules

SHAREABLE = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def kmeans_1d(values: torch.Tensor, k: int, init: str = "linear", iterations: int = 30, generator: torch.Generator | None = None):
    """Lloyd's k-means on a 1-D tensor (float64 internally). Returns (centroids [<=k], assignment [n])."""
    x = values.detach().double().flatten()
    distinct = torch.unique(x)
    if distinct.numel() <= k:  # already few enough values: each its own centroid
        return distinct, torch.searchsorted(distinct, x)
    if init == "linear":
        centroids = torch.linspace(x.min().item(), x.max().item(), k, dtype=torch.float64)
    elif init == "density":
        centroids = torch.quantile(x, torch.linspace(0, 1, k, dtype=torch.float64)) if x.numel() < 1 << 24 else \
            x.sort().values[torch.linspace(0, x.numel() - 1, k).long()]
    else:
        centroids = x[torch.randperm(x.numel(), generator=generator)[:k]]
    centroids = centroids.sort().values
    for _ in range(iterations):
        assignment = torch.searchsorted((centroids[1:] + centroids[:-1]) / 2, x)
        sums = torch.zeros(k, dtype=torch.float64).index_add_(0, assignment, x)
        counts = torch.bincount(assignment, minlength=k)
        updated = torch.where(counts > 0, sums / counts.clamp(min=1), centroids).sort().values
        if torch.equal(updated, centroids):
            break
        centroids = updated
    return centroids, torch.searchsorted((centroids[1:] + centroids[:-1]) / 2, x)


@dataclass
class SharedLayer:
    """One layer's codebook: ``weight.flatten()[positions] = centroids[codes]``, zeros elsewhere (if pruned)."""

    name: str
    module: nn.Module
    bits: int
    positions: torch.Tensor  # flat indexes of the shared (nonzero, or all) weights
    codes: torch.Tensor
    centroids: torch.Tensor  # float32

    @torch.no_grad()
    def write(self) -> None:
        weight = self.module.weight
        flat = torch.zeros(weight.numel(), dtype=weight.dtype, device=weight.device)
        flat[self.positions] = self.centroids.detach().to(weight.dtype)[self.codes]
        flat = torch.where(flat == 0, torch.zeros_like(flat), flat)  # -0.0 -> +0.0: zero is one bit pattern
        weight.copy_(flat.view_as(weight))


def share_layer(name: str, module: nn.Module, bits: int, step: KMeansQuantize, generator: torch.Generator) -> SharedLayer:
    flat = module.weight.detach().flatten()
    pruned = bool((flat == 0).any())
    positions = torch.nonzero(flat != 0).flatten() if pruned else torch.arange(flat.numel(), device=flat.device)
    k = (1 << bits) - (1 if pruned else 0)
    if positions.numel() == 0:
        centroids, codes = torch.zeros(0, dtype=torch.float64), torch.zeros(0, dtype=torch.long)
    else:
        centroids, codes = kmeans_1d(flat[positions].cpu(), k, step.init, step.iterations, generator)
    layer = SharedLayer(name, module, bits, positions, codes.to(flat.device), centroids.float().to(flat.device))
    layer.write()
    return layer


def bits_for(name: str, step: KMeansQuantize) -> int:
    for pattern, bits in step.layer_bits.items():
        if fnmatchcase(name, pattern):
            return bits
    return step.bits


def finetune_codebooks(model: nn.Module, layers: list[SharedLayer], step: KMeansQuantize, ctx: StepContext) -> dict:
    """Train the centroids (and the shared layers' biases) on the labelled train data; codes and zeros fixed."""
    started = time.monotonic()
    inputs, labels = ctx.train.to(ctx.device), ctx.train_labels.to(ctx.device)
    generator = torch.Generator().manual_seed(ctx.seed)
    centroids = [nn.Parameter(layer.centroids.detach().clone()) for layer in layers]
    biases = [layer.module.bias for layer in layers if getattr(layer.module, "bias", None) is not None]
    weights = [layer.module.weight for layer in layers]
    saved = [(p, p.requires_grad) for p in weights + biases]
    for p in weights + biases:
        p.requires_grad_(True)
    optimizer = torch.optim.Adam(centroids + biases, lr=step.learning_rate)
    was_training = model.training
    model.eval()  # BN statistics and dropout stay as they are; only the codebooks learn
    n = inputs.shape[0]
    batches = (n + step.batch_size - 1) // step.batch_size
    before = _accuracy(model, inputs, labels)
    losses = []
    try:
        for epoch in range(step.finetune_epochs):
            order = torch.randperm(n, generator=generator).to(ctx.device)
            total = 0.0
            for b in range(batches):
                ctx.check_cancelled()
                idx = order[b * step.batch_size : (b + 1) * step.batch_size]
                for layer, c in zip(layers, centroids):
                    layer.centroids = c
                    layer.write()
                loss = nn.functional.cross_entropy(model(inputs[idx]), labels[idx])
                grads = torch.autograd.grad(loss, weights + biases)
                for layer, c, g in zip(layers, centroids, grads):
                    # every weight sharing a centroid contributes its gradient to it (Deep Compression eq. 3)
                    c.grad = torch.zeros_like(c).index_add_(0, layer.codes, g.flatten()[layer.positions].to(c.dtype))
                for bias, g in zip(biases, grads[len(weights) :]):
                    bias.grad = g
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                total += loss.item() * len(idx)
            losses.append(round(total / n, 6))
            ctx.report(0.2 + 0.8 * (epoch + 1) / step.finetune_epochs,
                       f"quantize:kmeans fine-tuning codebooks: epoch {epoch + 1}/{step.finetune_epochs}, loss {losses[-1]:.4f}", phase="training")
    finally:
        for layer, c in zip(layers, centroids):
            layer.centroids = c.detach()
            layer.write()
        for p, flag in saved:
            p.requires_grad_(flag)
        model.train(was_training)
    result = {"epochs": step.finetune_epochs, "loss": losses, "train_accuracy_before": before, "train_accuracy_after": _accuracy(model, inputs, labels)}
    ctx.training.append({
        "step": step.label,
        "objective": "cross-entropy on the train labels; trains the shared centroids (summed gradients of the weights "
        "sharing each) and the shared layers' biases; codes and zeros fixed",
        "samples": n, "epochs": step.finetune_epochs, "epochs_completed": len(losses), "epoch_loss": losses,
        "lr": step.learning_rate, "batch_size": step.batch_size, "seconds": round(time.monotonic() - started, 3),
        "stopped_early": None, "masked_tensors": 0,
        "train_accuracy_before": before, "train_accuracy_after": result["train_accuracy_after"],
    })
    return result


@torch.no_grad()
def _accuracy(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, limit: int = 4096) -> float:
    inputs, labels = inputs[:limit], labels[:limit]
    correct = sum(int((model(inputs[i : i + 256]).argmax(1) == labels[i : i + 256]).sum()) for i in range(0, len(inputs), 256))
    return round(correct / max(1, len(inputs)), 5)


@handles(KMeansQuantize)
def kmeans_share(model: nn.Module, step: KMeansQuantize, ctx: StepContext) -> nn.Module:
    if isinstance(model, torch.jit.ScriptModule):
        raise InvalidSpec("quantize:kmeans needs an nn.Module (upload a safetensors state_dict with an architecture)")
    targets = [(n, m) for n, m in select_modules(model, step, SHAREABLE) if isinstance(getattr(m, "weight", None), nn.Parameter)]
    if not targets:
        raise InvalidSpec(f"quantize:kmeans: no Linear/Conv layer matches include={step.include} exclude={step.exclude} op_types={step.op_types}")
    names = [n for n, _ in targets]
    unmatched = [p for p in step.layer_bits if not any(fnmatchcase(n, p) for n in names)]
    if unmatched:
        raise InvalidSpec(f"quantize:kmeans: layer_bits names {unmatched} match no targeted layer; the layers are {names}")
    generator = torch.Generator().manual_seed(ctx.seed)
    layers = []
    for i, (name, module) in enumerate(targets):
        ctx.check_cancelled()
        layers.append(share_layer(name, module, bits_for(name, step), step, generator))
        ctx.report((0.2 if ctx.train_labels is not None else 1.0) * (i + 1) / len(targets), f"quantize:kmeans: shared {name}")
    described = ", ".join(f"{layer.name}:{layer.bits}b/{layer.centroids.numel()}c" for layer in layers)
    ctx.notes.append(f"{step.label}: k-means weight sharing ({step.init} init, nonzero weights only) in {len(layers)} layers: {described}")
    if ctx.train is None or step.finetune_epochs == 0:
        ctx.notes.append(f"{step.label}: codebooks not fine-tuned (" + ("finetune_epochs is 0)" if ctx.train is not None else "no train data part)"))
    elif ctx.train_labels is None:
        ctx.notes.append(f"{step.label}: codebooks not fine-tuned: the train data part has no labels")
    else:
        result = finetune_codebooks(model, layers, step, ctx)
        ctx.notes.append(
            f"{step.label}: codebooks (and biases) fine-tuned {result['epochs']} epochs on {len(ctx.train)} labelled train inputs "
            f"(seed {ctx.seed}); train accuracy {result['train_accuracy_before']:.4f} -> {result['train_accuracy_after']:.4f}"
        )
    return model
