"""A torch model's layer tree, measured from the model itself: one forward pass of one image.

The pass runs on the meta device, which computes shapes and not values: building and
running even ViT-L takes about a second, and the counts are those of the real model (a
model that needs values falls back to one real image on the CPU). Per module: its type,
output shape (forward hooks), parameters (its own and its children's), multiply-adds
(torch's `FlopCounterMode`: convolutions, matrix products and attention, 2 FLOPs per
multiply-add) and the bytes of its output."""

from __future__ import annotations

import functools
from typing import Any

from visualizer.nodes import Node, Tree, output_bytes, shape_of

COUNTING = (
    "MACs: multiply-adds of one image in convolutions, matrix products and attention, as torch's "
    "FlopCounterMode counts them (FLOPs / 2; elementwise work such as norms, activations and additions "
    "is not counted). Output: bytes of the module's output tensors for one image in float32, all calls. "
    "Total activation memory: the distinct output tensors of leaf modules (an in-place ReLU shares its "
    "input's storage and counts once)."
)


def torch_tree(name: str, input_size: int) -> Tree:
    """The layer tree of the torch `name` at square `input_size`, for one image."""
    try:
        model, outputs, flops = traced_forward(name, input_size, "meta")
    except (NotImplementedError, RuntimeError):
        # A model whose forward needs values (a data-dependent branch, `.item()`): one real image on the CPU.
        model, outputs, flops = traced_forward(name, input_size, "cpu")
    return _tree(name, input_size, model, outputs, flops)


def traced_forward(name: str, input_size: int, device: str) -> tuple[Any, dict[str, list[Any]], dict[str, int]]:
    """`name` built on `device` and run on one image: the model, each module's outputs, each module's FLOPs."""
    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    from models import get_torch_model

    with torch.device(device):  # on "meta": parameters and activations without memory or arithmetic
        model, _, _, _ = get_torch_model(name, input_size=input_size)
    outputs: dict[str, list[Any]] = {}

    def hook(module_name: str, _module: Any, _inputs: Any, output: Any) -> None:
        outputs.setdefault(module_name, []).append(output)

    handles = [m.register_forward_hook(functools.partial(hook, n)) for n, m in model.named_modules()]
    x = torch.zeros(1, 3, input_size, input_size, device=device)
    try:
        # Autograd on and attention on the math kernel, as benchmarks/ counts: the fused
        # inference paths (native MHA, flash attention) are invisible to the counter.
        with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    return model, outputs, _flops_by_module(counter.get_flop_counts(), type(model).__name__)


def _tree(name: str, input_size: int, model: Any, outputs: dict[str, list[Any]], flops: dict[str, int]) -> Tree:
    import torch

    modules = dict(model.named_modules())
    nodes = []
    leaf_storages: dict[int, int] = {}
    for module_name, module in modules.items():
        calls = outputs.get(module_name, [])
        tensors = [t for out in calls for t in _tensors(out, torch.Tensor)]
        leaf = not any(True for _ in module.children())
        if leaf:
            for t in tensors:  # a storage's identity, which views and in-place results share (meta tensors have no address)
                leaf_storages[t.untyped_storage()._cdata] = t.untyped_storage().nbytes()
        depth = module_name.count(".") + 1 if module_name else 0
        nodes.append(Node(
            path=module_name,
            label=module_name.rsplit(".", 1)[-1] if module_name else type(module).__name__,
            type=type(module).__name__,
            depth=depth,
            shape=shape_of(calls[0]) if calls else None,
            calls=len(calls),
            params=sum(p.numel() for p in module.parameters()),
            macs=flops.get(module_name, 0) // 2,
            output_bytes=sum(output_bytes(tuple(t.shape), t.element_size()) for t in tensors),
            leaf=leaf,
        ))
    return Tree(
        framework="torch",
        model=name,
        input_size=input_size,
        input_shape=[1, 3, input_size, input_size],
        nodes=_with_parents(nodes),
        total_params=nodes[0].params,
        total_macs=nodes[0].macs,
        total_activation_bytes=sum(leaf_storages.values()),
        counting=COUNTING,
    )


def _flops_by_module(counts: dict[str, dict[Any, int]], root_name: str) -> dict[str, int]:
    """FlopCounterMode's per-module totals keyed by `named_modules` names ('' is the root)."""
    flops = {}
    for key, per_op in counts.items():
        if key == root_name:
            flops[""] = sum(per_op.values())
        elif key.startswith(root_name + "."):
            flops[key[len(root_name) + 1:]] = sum(per_op.values())
    return flops


def _tensors(output: Any, tensor_type: type) -> list[Any]:
    """The tensors in a module's output (a tensor, or a tuple/list/dict of them)."""
    if isinstance(output, tensor_type):
        return [output]
    if isinstance(output, (tuple, list)):
        return [t for item in output for t in _tensors(item, tensor_type)]
    if isinstance(output, dict):
        return [t for item in output.values() for t in _tensors(item, tensor_type)]
    return []


def _with_parents(nodes: list[Node]) -> list[Node]:
    """`nodes` (pre-order, dotted paths) with each one's parent index filled in."""
    index = {node.path: i for i, node in enumerate(nodes)}
    for node in nodes[1:]:
        parent = node.path.rsplit(".", 1)[0] if "." in node.path else ""
        node.parent = index[parent]
    return nodes
