"""Fixtures for the parity tests: each model built, randomised and ported once per test module."""

from __future__ import annotations

import os
from typing import Callable, Iterator

import pytest

# torch and JAX share the GPU in these tests; JAX would otherwise take 75% of its memory.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")


@pytest.fixture(scope="module")
def ported() -> Iterator[Callable[[str], "object"]]:
    """`ported(name)`: the module's one random-weight torch model of `name` and its Flax port."""
    from validation.suite import random_pair

    cache: dict[str, object] = {}

    def get(name: str):
        if name not in cache:
            cache[name] = random_pair(name)
        return cache[name]

    yield get
    cache.clear()


@pytest.fixture(scope="session")
def cuda_reason() -> str | None:
    """Why CUDA checks skip here, or None when both frameworks see a GPU."""
    from validation.suite import cuda_unavailable_reason

    return cuda_unavailable_reason()
