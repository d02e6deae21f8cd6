"""What the pages show, computed once per (what, model, size[, framework]) and cached for the server's lifetime."""

from __future__ import annotations

import collections
import threading
from typing import Any, Callable, Hashable

# Tracing uses process-wide state (torch's sdpa backend flags, Flax's method interceptors):
# one model is traced at a time. Parity and attention run real forwards and take minutes
# at worst, so they have a lock of their own and never hold a model page back.
TRACE_LOCK = threading.Lock()
RUN_LOCK = threading.Lock()


class Cache:
    """A computation per key, made once even when requests for it arrive together; optionally bounded (LRU)."""

    def __init__(self, max_entries: int | None = None) -> None:
        self._values: collections.OrderedDict[Hashable, Any] = collections.OrderedDict()
        self._locks: dict[Hashable, threading.Lock] = {}
        self._guard = threading.Lock()
        self._max = max_entries
        self.misses = 0

    def get(self, key: Hashable, make: Callable[[], Any]) -> Any:
        """The value for `key`, made by `make()` the first time (an exception is not cached)."""
        with self._guard:
            if key in self._values:
                self._values.move_to_end(key)
                return self._values[key]
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            with self._guard:
                if key in self._values:
                    return self._values[key]
            value = make()
            with self._guard:
                self.misses += 1
                self._values[key] = value
                if self._max is not None and len(self._values) > self._max:
                    evicted, _ = self._values.popitem(last=False)
                    self._locks.pop(evicted, None)
            return value

    def __contains__(self, key: Hashable) -> bool:
        with self._guard:
            return key in self._values


def tree_json(framework: str, name: str, size: int) -> dict[str, Any]:
    """The layer tree of `name` at `size` in `framework` ("torch" or "flax"), as JSON-ready data."""
    with TRACE_LOCK:
        if framework == "torch":
            from visualizer.torch_tree import torch_tree

            return torch_tree(name, size).to_json()
        from visualizer.flax_tree import flax_tree

        return flax_tree(name, size).to_json()


def side_rows(name: str, torch: dict[str, Any], flax: dict[str, Any]) -> list[dict[str, Any]]:
    """The side-by-side rows of two layer trees of `name`, paired by its family's renames."""
    from models.registry import family_of
    from visualizer.nodes import Node, Tree
    from visualizer.pairing import pair_trees

    def tree(data: dict[str, Any]) -> Tree:
        return Tree(**{**data, "nodes": [Node(**n) for n in data["nodes"]]})

    return pair_trees(tree(torch), tree(flax), family_of(name).torch_renames)


def parity_json(name: str, size: int) -> dict[str, Any]:
    """Per-layer parity of `name` at `size` on random weights."""
    from visualizer.parity import layer_parity

    with RUN_LOCK:
        return layer_parity(name, size)
