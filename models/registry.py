"""The model registry: one frozen `ModelSpec` per model, importing neither torch nor jax."""

from __future__ import annotations

import dataclasses
from types import MappingProxyType
from typing import Any, Mapping

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class UnknownModelError(KeyError):
    """A model name that is not registered; the message lists the known ones."""

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


@dataclasses.dataclass(frozen=True)
class Tolerance:
    """How close the Flax port must be to torch for one dtype.

    `max_abs` bounds the element-wise logits error (None: no element-wise bound) and
    `max_rel` that error over the largest |logit|; `min_cosine` and `min_top1` bound cosine
    similarity and top-1 agreement of the batch. A top-1 flip between two classes whose
    torch logits differ by at most `top1_tie_rel` x the largest |logit| is a tie the dtype
    cannot resolve, and counts as agreement.
    """

    max_abs: float | None = None
    max_rel: float | None = None
    min_cosine: float | None = None
    min_top1: float | None = None
    top1_tie_rel: float = 0.0


# float32 with TF32 off on both sides: the element-wise bound of the issue (1e-4 on logits).
# Measured on random weights: <= 1e-5 on CPU and on an H200 (validation/, tools/parity_table.py).
EXACT_F32 = Tolerance(max_abs=1e-4, min_cosine=0.99999, min_top1=1.0)
# float32 with TF32 allowed (JAX's GPU default, benchmarks' --tf32): relative error and top-1.
# Measured max_rel <= 8.1e-4 on an H200; TF32 keeps 10 mantissa bits (2^-11 ~ 5e-4 per
# rounding), so flips between classes within 0.5% of the scale are ties.
DEFAULT_PRECISION_F32 = Tolerance(max_rel=1e-2, min_cosine=0.999, min_top1=0.9, top1_tie_rel=5e-3)
# Half precision: no element-wise bound, the two outputs must agree in direction and top-1.
# bfloat16 keeps 7 mantissa bits (2^-8 ~ 4e-3 per rounding): logits measured <= 2.3e-2 of
# the scale apart, so flips between classes within 2% of the scale are ties. On random
# weights such near-ties happen: resnet_tiny on an H200 flipped 2 of 10 images whose
# top two logits were 0.008 apart (scale 4).
HALF = Tolerance(min_cosine=0.99, min_top1=0.9, top1_tie_rel=2e-2)

DEFAULT_TOLERANCES: Mapping[str, Tolerance] = MappingProxyType(
    {
        "float32": EXACT_F32,
        "float32_default_precision": DEFAULT_PRECISION_F32,
        "bfloat16": HALF,
        "float16": HALF,
    }
)


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """A model's contract: architecture config, input, normalisation, size and tolerances.

    `params` is the parameter count and `macs` the multiply-adds of one forward pass of
    one image, as torchvision publishes them; tests re-count both from the built models.
    `config` holds the keyword arguments that both the torchvision builder and the Flax
    module take, so one dictionary defines the architecture in both frameworks.
    """

    name: str
    family: str
    config: Mapping[str, Any]
    input_size: int
    params: int
    macs: int
    num_classes: int = 1000
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    tolerances: Mapping[str, Tolerance] = dataclasses.field(default_factory=lambda: DEFAULT_TOLERANCES)
    torchvision_weights: str | None = None  # e.g. "ResNet50_Weights.IMAGENET1K_V1"
    test_only: bool = False  # tiny variants for fast tests; hidden from `all`

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """One image in torch layout (C, H, W)."""
        return (3, self.input_size, self.input_size)

    @property
    def flops(self) -> int:
        """Floating-point operations of one image's forward pass, 2 per multiply-add."""
        return 2 * self.macs

    def tolerance(self, dtype: str, default_precision: bool = False) -> Tolerance:
        """The parity tolerance for `dtype` (float32 at default GPU precision on request)."""
        key = "float32_default_precision" if dtype == "float32" and default_precision else dtype
        return self.tolerances[key]


_REGISTRY: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    """Add `spec` to the registry; a duplicate name is a programming error."""
    if spec.name in _REGISTRY:
        raise ValueError(f"model {spec.name!r} is registered twice")
    _REGISTRY[spec.name] = spec
    return spec


def list_models(include_test_only: bool = False) -> list[str]:
    """Names of the registered models, sorted; tiny test-only variants on request."""
    _load_zoo()
    return sorted(n for n, s in _REGISTRY.items() if include_test_only or not s.test_only)


def get_spec(name: str) -> ModelSpec:
    """The `ModelSpec` registered as `name`, or UnknownModelError listing the known names."""
    _load_zoo()
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(list_models())
        raise UnknownModelError(f"unknown model {name!r}; known models: {known}") from None


def _load_zoo() -> None:
    # The zoo module registers every spec on import; importing it lazily keeps this
    # module free of an import cycle.
    from models import zoo  # noqa: F401
