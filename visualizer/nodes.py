"""The layer tree both frameworks' pages are built from: plain data, JSON-ready."""

from __future__ import annotations

import dataclasses
import math
from typing import Any


@dataclasses.dataclass
class Node:
    """One module of a model: where it sits, what it is, and what it costs for one image."""

    path: str  # torch: the dotted `named_modules` name; Flax: the "/"-joined module path; root: ""
    label: str  # the last part of the path (the class name for the root)
    type: str  # the module's class name
    depth: int  # 0 for the root
    shape: list[list[int]] | None  # the shapes of its first call's output tensors; None: never called
    calls: int  # how many times the forward pass called it
    params: int  # parameters of the module and its children
    macs: int  # multiply-adds of the module and its children, all calls
    output_bytes: int  # bytes of its output tensors, all calls
    leaf: bool  # no child modules
    parent: int | None = None  # index of the parent node in the tree's list; None for the root


@dataclasses.dataclass
class Tree:
    """A model's modules in pre-order (parents before children), with totals and how they were counted."""

    framework: str  # "torch" or "flax"
    model: str
    input_size: int
    input_shape: list[int]  # the one-image input in this framework's layout
    nodes: list[Node]
    total_params: int
    total_macs: int
    total_activation_bytes: int
    counting: str  # what MACs and memory count, in words

    def to_json(self) -> dict[str, Any]:
        """The tree as JSON-ready data."""
        return dataclasses.asdict(self)


def output_bytes(shape: tuple[int, ...], itemsize: int) -> int:
    """Bytes of one array of `shape` with `itemsize`-byte elements."""
    return int(math.prod(shape)) * int(itemsize)


def shape_of(output: Any) -> list[list[int]]:
    """The shapes of the arrays in one call's output (an array, or a tuple/list/dict of them)."""
    if hasattr(output, "shape") and hasattr(output, "dtype"):
        return [[int(d) for d in output.shape]]
    if isinstance(output, (tuple, list)):
        return [s for item in output for s in shape_of(item)]
    if isinstance(output, dict):
        return [s for item in output.values() for s in shape_of(item)]
    return []
