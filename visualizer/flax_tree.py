"""A Flax model's layer tree, measured from the module itself, by tracing (nothing is computed).

One abstract trace (`jax.make_jaxpr` on shapes) of one image gives everything: an
`nn.intercept_methods` interceptor records each module call's class and output shape, and
the traced program's convolutions and matrix products, attributed to the module whose
name scope they were traced in, give each module's multiply-adds. Parameters are the
sizes of the `params` collection under each module's path (`jax.eval_shape` of `init`).
"""

from __future__ import annotations

import math
from typing import Any

from visualizer.nodes import Node, Tree, output_bytes, shape_of

COUNTING = (
    "MACs: multiply-adds of one image in the convolutions and matrix products (conv_general_dilated, "
    "dot_general) of the traced program, attributed to the module whose name scope traced them; "
    "elementwise work is not counted, so the convention is torch's FlopCounterMode's. Output: bytes of "
    "the module's outputs for one image, all calls. Total activation memory: the outputs of leaf modules."
)
MAC_PRIMITIVES = ("conv_general_dilated", "dot_general")


def flax_tree(name: str, input_size: int) -> Tree:
    """The layer tree of the Flax `name` at square `input_size`, for one image (NHWC)."""
    import jax
    import jax.numpy as jnp
    from flax import linen as nn

    from models import check_input_size, get_spec
    from models.flax_models import abstract_variables, build_flax_module

    spec = get_spec(name)
    check_input_size(spec, input_size)
    module = build_flax_module(spec, input_size=input_size)
    input_shape = (1, input_size, input_size, 3)
    variables = abstract_variables(module, input_shape)

    calls: dict[tuple[str, ...], dict[str, Any]] = {}

    def record_call(next_fun: Any, args: Any, kwargs: Any, context: Any) -> Any:
        output = next_fun(*args, **kwargs)
        if context.method_name == "__call__":
            path = tuple(context.module.path)
            entry = calls.setdefault(path, {"type": type(context.module).__name__, "shapes": None, "calls": 0, "bytes": 0})
            arrays = jax.tree_util.tree_leaves(output)
            if entry["shapes"] is None:
                entry["shapes"] = shape_of(arrays)
            entry["calls"] += 1
            entry["bytes"] += sum(output_bytes(a.shape, jnp.dtype(a.dtype).itemsize) for a in arrays)
        return output

    def forward(variables: Any, x: Any) -> Any:
        with nn.intercept_methods(record_call):
            return module.apply(variables, x)

    x = jax.ShapeDtypeStruct(input_shape, jnp.float32)
    closed = jax.make_jaxpr(forward)(variables, x)
    known = set(calls)
    macs_own: dict[tuple[str, ...], int] = {}
    for stack, macs in _macs_by_name_stack(closed.jaxpr):
        path = _owning_module(stack[1:], known)  # stack[0] is the root module's own scope
        macs_own[path] = macs_own.get(path, 0) + macs
    params = _params_by_path(variables.get("params", {}))

    # The interceptor sees a module's call when it returns, children before parents: put parents first.
    paths = _preorder(list(calls))
    index = {p: i for i, p in enumerate(paths)}
    nodes = []
    for path in paths:
        entry = calls.get(path, {"type": "?", "shapes": None, "calls": 0, "bytes": 0})
        nodes.append(Node(
            path="/".join(path),
            label=path[-1] if path else entry["type"],
            type=entry["type"],
            depth=len(path),
            shape=entry["shapes"],
            calls=entry["calls"],
            params=params.get(path, 0),
            macs=sum(m for p, m in macs_own.items() if p[:len(path)] == path),
            output_bytes=entry["bytes"],
            leaf=not any(len(q) == len(path) + 1 and q[:len(path)] == path for q in paths),
            parent=index[path[:-1]] if path else None,
        ))
    return Tree(
        framework="flax",
        model=name,
        input_size=input_size,
        input_shape=list(input_shape),
        nodes=nodes,
        total_params=nodes[0].params,
        total_macs=nodes[0].macs,
        total_activation_bytes=sum(n.output_bytes for n in nodes if n.leaf),
        counting=COUNTING,
    )


def _first_seen(path: tuple[str, ...], seen: list[tuple[str, ...]]) -> int:
    """When `path`'s subtree was first entered: the earliest call recorded at or below it."""
    return min(i for i, p in enumerate(seen) if p[:len(path)] == path)


def _preorder(paths: list[tuple[str, ...]]) -> list[tuple[str, ...]]:
    """Every path and its ancestors, parents before children, siblings in call order."""
    ordered: list[tuple[str, ...]] = []
    seen: set[tuple[str, ...]] = set()
    for path in sorted(paths, key=lambda p: [_first_seen(p[:k], paths) for k in range(len(p) + 1)]):
        for k in range(len(path) + 1):
            if path[:k] not in seen:
                seen.add(path[:k])
                ordered.append(path[:k])
    return ordered


def _owning_module(scopes: tuple[str, ...], known: set[tuple[str, ...]]) -> tuple[str, ...]:
    """The deepest module path that is a prefix of `scopes` (the name stack below the root)."""
    for k in range(len(scopes), -1, -1):
        if scopes[:k] in known:
            return scopes[:k]
    return ()


def _macs_by_name_stack(jaxpr: Any, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], int]]:
    """(name stack, multiply-adds) of every convolution and matrix product in `jaxpr`, sub-programs included."""
    from jax.extend.core import jaxprs_in_params

    found = []
    for eqn in jaxpr.eqns:
        stack = prefix + tuple(s for s in str(eqn.source_info.name_stack).split("/") if s)
        if eqn.primitive.name in MAC_PRIMITIVES:
            found.append((stack, _eqn_macs(eqn)))
        for sub in jaxprs_in_params(eqn.params):
            found.extend(_macs_by_name_stack(sub, stack))
    return found


def _eqn_macs(eqn: Any) -> int:
    """Multiply-adds of one `dot_general` or `conv_general_dilated`: each output element's reduction length."""
    out = math.prod(eqn.outvars[0].aval.shape)
    rhs = eqn.invars[1].aval.shape
    if eqn.primitive.name == "dot_general":
        (_, rhs_contract), _ = eqn.params["dimension_numbers"]
        return out * math.prod(rhs[d] for d in rhs_contract)
    # A kernel holds (out features, in features / groups, *window); each output sums in / groups x window.
    out_feature_dim = eqn.params["dimension_numbers"].rhs_spec[0]
    return out * math.prod(rhs) // rhs[out_feature_dim]


def _params_by_path(params: Any) -> dict[tuple[str, ...], int]:
    """Parameter count under every module path (leaf names dropped), the root () included."""
    counts: dict[tuple[str, ...], int] = {}

    def walk(tree: Any, path: tuple[str, ...]) -> None:
        for key, value in tree.items():
            if hasattr(value, "items"):
                walk(value, path + (key,))
            else:
                size = math.prod(value.shape)
                for k in range(len(path) + 1):
                    counts[path[:k]] = counts.get(path[:k], 0) + size

    walk(params, ())
    return counts
