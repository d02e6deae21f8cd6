"""Which models and input sizes the pages offer, and the 404 that names them when a request asks for another."""

from __future__ import annotations

from typing import Any

MAX_INPUT_SIZE = 512  # larger inputs would let one request hold the server for minutes
SIZE_MENU = (32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 384, 448, 512)
VIEWS = ("torch", "flax", "side")
FRAMEWORKS = ("torch", "jax")


class NotFound(Exception):
    """A request for something that does not exist: the message names it, `known` what does."""

    def __init__(self, message: str, known: list[str], what: str) -> None:
        super().__init__(message)
        self.message = message
        self.known = known
        self.what = what  # "models", "sizes", "views", "frameworks", "results files"


def model_names() -> list[str]:
    """Every registered model the pages offer, the tiny test-only variants last."""
    import models

    real = models.list_models()
    return real + [n for n in models.list_models(include_test_only=True) if n not in real]


def model_choices() -> list[dict[str, Any]]:
    """The model menu: name, family and whether it is a tiny test-only variant."""
    from models.registry import get_spec

    return [{"name": n, "family": get_spec(n).family, "test_only": get_spec(n).test_only} for n in model_names()]


def sizes_for(name: str) -> list[int]:
    """The input sizes offered for `name`: its own and the menu's sizes its family accepts."""
    from models.registry import get_family, get_spec

    spec = get_spec(name)
    family = get_family(spec.family)
    return sorted({spec.input_size} | {s for s in SIZE_MENU if family.size_reason(spec, s) is None})


def resolve_model(name: str) -> str:
    """`name` if it is a registered model, else NotFound naming the known ones."""
    known = model_names()
    if name not in known:
        raise NotFound(f"unknown model {name!r}", known, "models")
    return name


def resolve_size(name: str, size: str | None) -> int:
    """The input size a request asks for (default: the model's own), else NotFound naming the sizes offered."""
    from models.registry import get_family, get_spec

    spec = get_spec(resolve_model(name))
    if size in (None, ""):
        return spec.input_size
    offered = [str(s) for s in sizes_for(name)]
    try:
        value = int(size)
    except ValueError:
        raise NotFound(f"input size {size!r} is not a whole number of pixels", offered, "sizes") from None
    if not 16 <= value <= MAX_INPUT_SIZE:
        raise NotFound(f"input size {value} is outside 16..{MAX_INPUT_SIZE} pixels", offered, "sizes")
    reason = get_family(spec.family).size_reason(spec, value)
    if reason:
        raise NotFound(reason, offered, "sizes")
    return value


def resolve_choice(value: str | None, choices: tuple[str, ...], default: str, what: str) -> str:
    """`value` if it is one of `choices` (None: `default`), else NotFound naming them."""
    if value in (None, ""):
        return default
    if value not in choices:
        raise NotFound(f"unknown {what[:-1]} {value!r}", list(choices), what)
    return value
