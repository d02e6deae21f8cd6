"""Planted porting bugs shared by the wrong-port tests of several families."""

from __future__ import annotations

import numpy as np
import pytest

from models import porting


def zero_a_ported_leaf(monkeypatch: pytest.MonkeyPatch, leaf_name: str) -> None:
    """Port every tensor named `leaf_name` as zeros: the key check passes, but its value is lost."""
    plan_leaf = porting.plan_leaf

    def dropping(module_path, leaf, ndim, expected):
        path, kind = plan_leaf(module_path, leaf, ndim, expected)
        return (path, "zeros") if leaf == leaf_name else (path, kind)

    monkeypatch.setitem(porting.TRANSFORMS, "zeros", np.zeros_like)
    monkeypatch.setattr(porting, "plan_leaf", dropping)
