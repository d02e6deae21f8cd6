"""The side-by-side view: torch and Flax modules paired by the family's port map (its renames)."""

from __future__ import annotations

from typing import Any, Sequence

from visualizer.nodes import Tree


def flax_path_of(torch_name: str, renames: Sequence[tuple[str, str]]) -> str:
    """The "/"-joined Flax path that porting gives torch module `torch_name`."""
    from models.porting import torch_module_to_flax_path

    return "/".join(torch_module_to_flax_path(torch_name, renames))


def pair_trees(torch: Tree, flax: Tree, renames: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
    """Rows of the side-by-side view in pre-order: each a torch node, a Flax node, or a pair.

    Every torch module is a row, with its Flax twin where the renames lead to one. A Flax
    module no torch module leads to (e.g. ViT's packed `in_proj`) is a row of its own under
    its nearest ancestor's row. Each row: `parent` (row index or None), `depth`, `torch` and
    `flax` (node indices or None).
    """
    flax_index = {node.path: i for i, node in enumerate(flax.nodes)}
    twin = {}  # torch node index -> Flax node index
    for i, node in enumerate(torch.nodes):
        j = flax_index.get(flax_path_of(node.path, renames))
        if j is not None and j not in twin.values():
            twin[i] = j
    flax_owner = {j: i for i, j in twin.items()}  # Flax node -> torch node

    children: dict[tuple[str, int], list[tuple[str, int]]] = {}
    for i, node in enumerate(torch.nodes):
        if node.parent is not None:
            children.setdefault(("torch", node.parent), []).append(("torch", i))
    for j, node in enumerate(flax.nodes):
        if j in flax_owner or node.parent is None:
            continue
        parent = node.parent
        key = ("torch", flax_owner[parent]) if parent in flax_owner else ("flax", parent)
        children.setdefault(key, []).append(("flax", j))

    rows: list[dict[str, Any]] = []

    def visit(item: tuple[str, int], parent: int | None, depth: int) -> None:
        kind, index = item
        row = {
            "parent": parent,
            "depth": depth,
            "torch": index if kind == "torch" else None,
            "flax": (twin.get(index) if kind == "torch" else index),
        }
        rows.append(row)
        here = len(rows) - 1
        for child in children.get(item, []):
            visit(child, here, depth + 1)

    visit(("torch", 0), None, 0)
    return rows
