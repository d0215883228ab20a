"""Pruning masks across steps, in ``torch.nn.utils.prune``'s own terms.

Between steps the model holds plain parameters (pruned values are real zeros), so every other step
sees an ordinary module. Before a prune step each targeted parameter gets its earlier mask back as
torch's reparametrization (``custom_from_mask``), so torch's ``PruningContainer`` prunes a fraction
of what remains exactly as it does when a user calls a pruning function twice. After the step the
reparametrization is removed again (``prune.remove``); with ``permanent: false`` the mask and the
original values are kept in ``StepContext.masks`` for the artifact (``masked_state_dict``).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import prune as torch_prune


def attach(module: nn.Module, param: str, key: str, masks: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> None:
    """Give ``module.<param>`` its earlier mask: the kept one (``permanent: false``), else where it is nonzero."""
    current = getattr(module, param)
    if key in masks:
        orig, mask = masks[key]
        with torch.no_grad():
            current.copy_(torch.where(mask.bool(), current, orig.to(current.dtype)))
    else:
        mask = (current.detach() != 0).to(current.dtype)
    if bool(mask.all()):
        return  # nothing pruned yet: torch's own first call, no container
    torch_prune.custom_from_mask(module, param, mask)


def detach(module: nn.Module, param: str, key: str, masks: dict[str, tuple[torch.Tensor, torch.Tensor]], *, keep: bool) -> None:
    """Remove the reparametrization (the parameter holds ``orig * mask``); with ``keep``, remember both for the artifact."""
    if not torch_prune.is_pruned(module) or not hasattr(module, f"{param}_mask"):
        masks.pop(key, None)
        return
    if keep:
        masks[key] = (getattr(module, f"{param}_orig").detach().clone(), getattr(module, f"{param}_mask").detach().clone())
    else:
        masks.pop(key, None)
    torch_prune.remove(module, param)


def mask_of(module: nn.Module, param: str) -> torch.Tensor:
    """The current mask (1 kept, 0 pruned) while the reparametrization is attached, else where the values are nonzero."""
    mask = getattr(module, f"{param}_mask", None)
    return mask if mask is not None else (getattr(module, param).detach() != 0).to(getattr(module, param).dtype)


def masked_state_dict(model: nn.Module, masks: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The state_dict torch gives after pruning without ``prune.remove``: ``<name>_orig`` and ``<name>_mask`` in place of
    ``<name>`` for every kept mask (the original values where pruned, the model's current values where kept)."""
    state = dict(model.state_dict())
    for key, (orig, mask) in masks.items():
        current = state.pop(key)
        state[f"{key}_orig"] = torch.where(mask.bool(), current, orig.to(current.dtype))
        state[f"{key}_mask"] = mask.to(current.dtype)
    return state

