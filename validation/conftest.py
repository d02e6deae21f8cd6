"""Fixtures for the parity tests: each model built, randomised and ported once per test module."""

from __future__ import annotations

import os
from typing import Callable, Iterator

import pytest

# torch and JAX share the GPU in these tests; JAX would otherwise take 75% of its memory.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")


@pytest.fixture(scope="module")
def ported() -> Iterator[Callable[[str], "object"]]:
    """`ported(name)`: the module's one random-weight torch model of `name` and its Flax port.

    The two most recently used models are kept (tests run model by model); older ones are
    dropped, so the zoo's 40-odd models never sit in memory together.
    """
    from validation.suite import random_pair

    cache: dict[str, object] = {}

    def get(name: str):
        if name not in cache:
            while len(cache) >= 2:
                cache.pop(next(iter(cache)))
            cache[name] = random_pair(name)
        cache[name] = cache.pop(name)  # most recently used last
        return cache[name]

    yield get
    cache.clear()


@pytest.fixture(scope="session")
def cuda_reason() -> str | None:
    """Why CUDA checks skip here, or None when both frameworks see a GPU."""
    from validation.suite import cuda_unavailable_reason

    return cuda_unavailable_reason()
