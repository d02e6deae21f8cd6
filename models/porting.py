"""torch `state_dict` -> Flax variables, over a family's port rules (renames, dropped keys, transforms).

Every key and every shape is checked before anything is copied: a missing, extra or
mis-shaped key is named with the shape expected and the shape found.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Mapping, Sequence

import numpy as np

# How a torch tensor becomes a Flax leaf. Kept in one table so tests can break one on
# purpose and prove the parity check catches it.
TRANSFORMS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "conv": lambda w: np.transpose(w, (2, 3, 1, 0)),  # (O, I, kH, kW) -> (kH, kW, I, O)
    "dense": lambda w: np.transpose(w, (1, 0)),  # (out, in) -> (in, out)
    "identity": lambda w: w,
    "vector": lambda w: np.reshape(w, (-1,)),  # (C, 1, 1) -> (C,): a per-channel scale in NHWC
}

# Torch parameter suffix -> (collection, Flax leaf name) for norm layers.
_NORM_LEAVES = {
    "weight": ("params", "scale"),
    "bias": ("params", "bias"),
    "running_mean": ("batch_stats", "mean"),
    "running_var": ("batch_stats", "var"),
}
MAX_LISTED = 20  # problems listed one a line; the rest are counted


class PortingError(ValueError):
    """A state_dict that does not fit the Flax model; the message names the keys."""


def nchw_to_nhwc(x: np.ndarray) -> np.ndarray:
    """Images from torch layout to Flax layout."""
    return np.transpose(x, (0, 2, 3, 1))  # (N, C, H, W) -> (N, H, W, C)


def _flatten(tree: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            flat.update(_flatten(value, prefix + (key,)))
        else:
            flat[prefix + (key,)] = value
    return flat


def _unflatten(flat: Mapping[tuple[str, ...], Any]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for path, value in flat.items():
        node = tree
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    return tree


def _fmt(path: tuple[str, ...]) -> str:
    return "/".join(path)


def plan_leaf(
    module_path: tuple[str, ...], leaf: str, ndim: int, expected: Mapping[tuple[str, ...], Any]
) -> tuple[tuple[str, ...], str]:
    """The Flax path and transform name for one torch tensor, decided by its kind."""
    if leaf in _NORM_LEAVES and ("params", *module_path, "scale") in expected:
        collection, name = _NORM_LEAVES[leaf]
        return (collection, *module_path, name), "identity"
    if leaf == "weight":
        kind = {4: "conv", 2: "dense"}.get(ndim, "identity")
        return ("params", *module_path, "kernel"), kind
    if leaf == "bias":
        return ("params", *module_path, "bias"), "identity"
    if leaf == "in_proj_weight":  # nn.MultiheadAttention's packed q, k, v projection
        return ("params", *module_path, "in_proj", "kernel"), "dense"
    if leaf == "in_proj_bias":
        return ("params", *module_path, "in_proj", "bias"), "identity"
    return ("params", *module_path, leaf), "identity"  # free parameters: class_token, pos_embedding


def torch_module_to_flax_path(name: str, renames: Sequence[tuple[str, str]]) -> tuple[str, ...]:
    """The Flax module path of torch module `name` (`layer1.0.conv1` -> ('layer1_0', 'conv1'))."""
    for pattern, replacement in renames:
        name = re.sub(pattern, replacement, name)
    return tuple(p for p in name.split(".") if p)


def torch_to_flax(
    state_dict: Mapping[str, Any],
    expected: Mapping[str, Any],
    family: Any,
    model_name: str,
) -> dict[str, Any]:
    """Flax variables holding `state_dict`'s weights, shaped like `expected`.

    `expected` is the Flax variable tree (arrays or ShapeDtypeStructs, e.g. from
    `jax.eval_shape`); `family` (a `models.registry.Family`) gives the port rules: regex
    renames from a torch module path to a Flax one (`layer1.0` -> `layer1_0`), the keys
    with no Flax twin, and transforms that override the one chosen by a tensor's kind.
    """
    dropped = [re.compile(p) for p in family.dropped_keys]
    overrides = [(re.compile(p), kind) for p, kind in family.leaf_transforms]

    def is_dropped(key: str) -> bool:
        return any(p.search(key) for p in dropped)

    expected_flat = _flatten(expected)
    planned: dict[tuple[str, ...], tuple[str, str, np.ndarray]] = {}
    extra: list[str] = []
    misshaped: list[str] = []
    misshaped_paths = set()
    for torch_key, tensor in state_dict.items():
        if is_dropped(torch_key):
            continue
        array = _to_numpy(tensor)
        module, _, leaf = torch_key.rpartition(".")
        module_path = torch_module_to_flax_path(module, family.torch_renames)
        path, kind = plan_leaf(module_path, leaf, array.ndim, expected_flat)
        kind = next((k for p, k in overrides if p.search(torch_key)), kind)
        if path not in expected_flat:
            extra.append(f"{torch_key} {tuple(array.shape)} would become {_fmt(path)}, which {model_name!r} does not have")
            continue
        want = tuple(expected_flat[path].shape)
        got = TRANSFORMS[kind](array).shape
        if got != want:
            misshaped.append(
                f"{torch_key}: expected shape {_torch_shape(want, kind)}, found {tuple(array.shape)} "
                f"(Flax {_fmt(path)} expects {want}, the tensor would give {got})"
            )
            misshaped_paths.add(path)
            continue
        planned[path] = (torch_key, kind, array)
    missing = [p for p in expected_flat if p not in planned and p not in misshaped_paths]
    if extra or misshaped or missing:
        num_tensors = sum(not is_dropped(key) for key in state_dict)
        raise PortingError(_problems_message(model_name, num_tensors, expected_flat, planned, extra, misshaped, missing))

    flat = {
        path: TRANSFORMS[kind](array).astype(expected_flat[path].dtype, copy=True)
        for path, (_, kind, array) in planned.items()
    }
    return _unflatten(flat)


def _torch_shape(flax_shape: tuple[int, ...], kind: str) -> tuple[int, ...]:
    """The torch shape that `TRANSFORMS[kind]` turns into `flax_shape` (transforms permute axes)."""
    probe = (2, 3, 5, 7, 11, 13)[: len(flax_shape)]  # distinct sizes reveal the permutation
    moved = TRANSFORMS[kind](np.empty(probe, np.float32)).shape
    if sorted(moved) != sorted(probe):
        return flax_shape
    return tuple(flax_shape[moved.index(size)] for size in probe)


def _problems_message(
    model_name: str,
    num_tensors: int,
    expected: Mapping[tuple[str, ...], Any],
    planned: Mapping[tuple[str, ...], Any],
    extra: list[str],
    misshaped: list[str],
    missing: list[tuple[str, ...]],
) -> str:
    """What is wrong with a state_dict, one problem a line; a different model said as such."""
    missing_lines = [f"{_fmt(p)}: expected shape {tuple(expected[p].shape)}, no tensor in the state_dict gives it" for p in missing]
    if len(planned) < len(expected) / 2:
        examples = "; ".join((misshaped + extra + missing_lines)[:3])
        return (
            f"this state_dict is not a {model_name!r} model: its {num_tensors} tensors fill only {len(planned)} "
            f"of the {len(expected)} weights of {model_name!r} ({len(extra)} unknown, {len(misshaped)} of the wrong "
            f"shape, {len(missing)} missing), e.g. {examples}. Use weights saved from {model_name!r}, or port to the "
            "model they were saved from"
        )
    lines = [f"cannot port state_dict to {model_name!r}: {len(extra) + len(misshaped) + len(missing)} problem(s)"]
    problems = [f"  missing: {m}" for m in missing_lines] + [f"  unexpected: {e}" for e in extra]
    problems += [f"  wrong shape: {w}" for w in misshaped]
    lines += problems[:MAX_LISTED]
    if len(problems) > MAX_LISTED:
        lines.append(f"  ... and {len(problems) - MAX_LISTED} more")
    return "\n".join(lines)


def _to_numpy(tensor: Any) -> np.ndarray:
    if hasattr(tensor, "detach"):  # a torch tensor; float32 so numpy can hold bfloat16 weights
        return tensor.detach().cpu().float().numpy()
    return np.asarray(tensor)


def flax_paths(state_dict: Mapping[str, Any], expected: Mapping[str, Any], family: Any) -> dict[str, tuple[str, ...]]:
    """Where each ported torch tensor lands: torch key -> Flax (collection, *module path, leaf).

    The same plan `torch_to_flax` follows (renames, norm leaves, dropped keys), without
    copying anything; tensors whose planned path `expected` lacks are left out.
    """
    dropped = [re.compile(p) for p in family.dropped_keys]
    expected_flat = _flatten(expected)
    paths = {}
    for torch_key, tensor in state_dict.items():
        if any(p.search(torch_key) for p in dropped):
            continue
        module, _, leaf = torch_key.rpartition(".")
        module_path = torch_module_to_flax_path(module, family.torch_renames)
        path, _ = plan_leaf(module_path, leaf, len(tensor.shape), expected_flat)
        if path in expected_flat:
            paths[torch_key] = path
    return paths


def leaf_transform(torch_key: str, ndim: int, expected: Mapping[str, Any], family: Any) -> Callable[[np.ndarray], np.ndarray]:
    """The transform porting applies to the torch tensor `torch_key` (torch layout -> Flax layout)."""
    module, _, leaf = torch_key.rpartition(".")
    _, kind = plan_leaf(torch_module_to_flax_path(module, family.torch_renames), leaf, ndim, _flatten(expected))
    kind = next((k for p, k in family.leaf_transforms if re.search(p, torch_key)), kind)
    return TRANSFORMS[kind]
