"""Which parameters a train step trains and decays, decided once on torch keys for both frameworks.

`--freeze N` freezes the parameters of stages 1..N (the stem is in stage 1), `--freeze
backbone` every parameter but the head's; which stage a parameter belongs to is family
knowledge (`Family.stage_of`, `num_stages`, `head_keys`). Weight decay follows one generic
rule: tensors of at most one dimension (biases, norm scales and shifts) are not decayed,
judged on the torch tensor so both frameworks decide alike (a ported (C, 1, 1) layer scale
is 1-D in Flax but 3-D in torch).
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from models.registry import ModelSpec, get_family

BACKBONE = "backbone"
Freeze = int | str  # a stage count >= 0, or BACKBONE


def parse_freeze(text: str | int) -> Freeze:
    """`--freeze`'s value: a whole number of stages >= 0, or 'backbone'; ValueError with the fix otherwise."""
    if text == BACKBONE:
        return BACKBONE
    try:
        value = int(text)
    except (TypeError, ValueError):
        raise ValueError(f"expected a number of stages (0, 1, 2, ...) or '{BACKBONE}', got {text!r}") from None
    if value < 0:
        raise ValueError(f"must be >= 0 stages or '{BACKBONE}', got {value}")
    return value


def freeze_reason(spec: ModelSpec, freeze: Freeze) -> str | None:
    """Why `spec` cannot freeze `freeze` stages (it has fewer), or None."""
    stages = get_family(spec.family).num_stages(spec)
    if freeze != BACKBONE and int(freeze) > stages:
        return f"{spec.name} has {stages} stages; --freeze {freeze} needs more (use 0..{stages} or {BACKBONE})"
    return None


def frozen_stages(spec: ModelSpec, freeze: Freeze) -> int:
    """How many backbone stages `freeze` freezes (all of them for 'backbone')."""
    return get_family(spec.family).num_stages(spec) if freeze == BACKBONE else int(freeze)


def head_parameter_keys(spec: ModelSpec, torch_model: Any) -> set[str]:
    """The torch keys of the classifier head's parameters (`Family.head_keys`, else `heads(model)` or the last Linear)."""
    family = get_family(spec.family)
    names = [name for name, _ in torch_model.named_parameters()]
    if family.head_keys:
        return {n for n in names if any(re.search(p, n) for p in family.head_keys)}
    from torch import nn

    heads = family.heads(torch_model) if family.heads else [[m for m in torch_model.modules() if isinstance(m, nn.Linear)][-1]]
    ids = {id(p) for head in heads for p in head.parameters()}
    return {name for name, p in torch_model.named_parameters() if id(p) in ids}


def trainable_keys(spec: ModelSpec, torch_model: Any, freeze: Freeze) -> dict[str, bool]:
    """torch parameter key -> whether the step trains it under `freeze`, in `named_parameters` order."""
    family = get_family(spec.family)
    head = head_parameter_keys(spec, torch_model)
    if not head and freeze != 0:
        raise ValueError(f"{spec.name}: no head parameters found; its family must say which they are (Family.head_keys)")
    stages = frozen_stages(spec, freeze)
    return {
        name: name in head or (freeze != BACKBONE and family.stage_of(spec, name) > stages)
        for name, _ in torch_model.named_parameters()
    }


def decays(torch_shape: tuple[int, ...] | Any) -> bool:
    """Whether weight decay applies to a tensor of this torch shape: not to biases or norm parameters (<= 1-D)."""
    return len(tuple(torch_shape)) > 1


def decay_keys(torch_model: Any) -> dict[str, bool]:
    """torch parameter key -> whether weight decay applies to it."""
    return {name: decays(p.shape) for name, p in torch_model.named_parameters()}


def count_trainable(torch_model: Any, trainable: Mapping[str, bool]) -> int:
    """Parameters the step trains."""
    return sum(p.numel() for name, p in torch_model.named_parameters() if trainable[name])
