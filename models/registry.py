"""The model registry: one frozen `ModelSpec` per model and one `Family` per family.

A leaf: it imports neither torch nor jax nor the family files (those register
themselves when `models.families` is imported, which the lookups below do lazily).
"""

from __future__ import annotations

import dataclasses
import fnmatch
from types import MappingProxyType
from typing import Any, Callable, Mapping, Sequence

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


def _default_layout(torch_module: str, ndim: int) -> str:
    """torch layout of a captured activation: 4-D tensors are NCHW, others already match Flax."""
    return "NCHW" if ndim == 4 else "same"


def _no_size_limit(spec: ModelSpec, size: int) -> str | None:
    return None


def _one_stage(spec: ModelSpec, torch_key: str) -> int:
    return 1


def _one_stage_count(spec: ModelSpec) -> int:
    return 1


@dataclasses.dataclass(frozen=True)
class Family:
    """Everything generic code needs to know about one model family, as data and hooks.

    A family file (`models/families/<name>.py`) builds one of these and registers it;
    generic code (models/, benchmarks/, validation/) looks it up by `spec.family` and never
    branches on a family or model name. Hooks that need torch import it when called, so
    this record, and the registry, import neither framework.

    - `variants`: the family's `ModelSpec`s.
    - `build_torch(spec, input_size)`: a freshly initialised torch model (eval mode is set by the caller).
    - `flax_module`: "module:Class" of the native Flax twin, constructed as
      `Class(num_classes=..., dtype=..., **flax_kwargs(spec, input_size))`.
    - `torch_renames`: regex substitutions from a torch module path to the Flax one,
      applied in order by porting and by first-diverging-layer pairing.
    - `dropped_keys`: regexes of state_dict keys with no Flax twin (derived buffers).
    - `leaf_transforms`: (regex on the torch key, `models.porting.TRANSFORMS` name) overriding
      the transform porting would choose from the tensor's kind.
    - `residual_gains(model)`: tensors that scale each residual branch's output (the last
      norm's weight, a layer scale); calibration shrinks them like a trained model's.
    - `heads(model)`: the output Linear layer(s) calibration scales to unit-variance logits.
    - `layout(torch_module_name, ndim)`: "NCHW" where torch holds that module's output
      channels-first (the Flax twin is always channels-last), else "same".
    - `size_reason(spec, input_size)`: why a square input of that size cannot run, or None.
    - `weights_file(spec)`: the file name of the pretrained weights in a weights folder.
    - `attention_torch(model, x_nchw, layer_idx)` / `attention_flax(module, variables, x_nhwc,
      layer_idx)`: softmax attention weights of one layer as a numpy array
      `[batch, heads, tokens, tokens]` (windowed families: `[batch * windows, heads, window
      tokens, window tokens]`), computed outside the benchmarked forward; None where the
      family has no attention.
    - Freezing (train mode's `--freeze N|backbone`): `num_stages(spec)` is how many stages
      `--freeze N` counts; `stage_of(spec, torch_key)` the stage (1..num_stages, the stem in
      stage 1) of a backbone parameter; `head_keys` regexes (searched in the torch key) of the
      classifier head's parameters, which are never frozen. Defaults: one stage, and the head
      is the parameters of `heads(model)` (else the model's last `nn.Linear`).
    """

    name: str
    variants: Sequence[ModelSpec]
    build_torch: Callable[[ModelSpec, int], Any]
    flax_module: str
    flax_kwargs: Callable[[ModelSpec, int], dict[str, Any]] = lambda spec, size: dict(spec.config)
    torch_renames: Sequence[tuple[str, str]] = ()
    dropped_keys: Sequence[str] = (r"(^|\.)num_batches_tracked$",)
    leaf_transforms: Sequence[tuple[str, str]] = ()
    residual_gains: Callable[[Any], list[Any]] = lambda model: []
    heads: Callable[[Any], list[Any]] | None = None
    layout: Callable[[str, int], str] = _default_layout
    size_reason: Callable[[ModelSpec, int], str | None] = _no_size_limit
    weights_file: Callable[[ModelSpec], str] | None = None
    attention_torch: Callable[[Any, Any, int], Any] | None = None
    attention_flax: Callable[[Any, Any, Any, int], Any] | None = None
    num_stages: Callable[[ModelSpec], int] = _one_stage_count
    stage_of: Callable[[ModelSpec, str], int] = _one_stage
    head_keys: Sequence[str] = ()
    description: str = ""


_REGISTRY: dict[str, ModelSpec] = {}
_FAMILIES: dict[str, Family] = {}


def register(spec: ModelSpec) -> ModelSpec:
    """Add `spec` to the registry; a duplicate name is a programming error."""
    if spec.name in _REGISTRY:
        raise ValueError(f"model {spec.name!r} is registered twice")
    _REGISTRY[spec.name] = spec
    return spec


def register_family(family: Family) -> Family:
    """Add `family` and every one of its variants; a duplicate family or model name raises."""
    if family.name in _FAMILIES:
        raise ValueError(f"family {family.name!r} is registered twice")
    for spec in family.variants:
        if spec.family != family.name:
            raise ValueError(f"model {spec.name!r} says family {spec.family!r} but is listed in {family.name!r}")
        register(spec)
    _FAMILIES[family.name] = family
    return family


def list_models(include_test_only: bool = False) -> list[str]:
    """Names of the registered models, sorted; tiny test-only variants on request."""
    _load_zoo()
    return sorted(n for n, s in _REGISTRY.items() if include_test_only or not s.test_only)


def list_families() -> list[str]:
    """Names of the registered families, sorted."""
    _load_zoo()
    return sorted(_FAMILIES)


def get_spec(name: str) -> ModelSpec:
    """The `ModelSpec` registered as `name`, or UnknownModelError listing the known names."""
    _load_zoo()
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(list_models())
        raise UnknownModelError(f"unknown model {name!r}; known models: {known}") from None


def get_family(name: str) -> Family:
    """The `Family` registered as `name` (a family name, as in `spec.family`)."""
    _load_zoo()
    try:
        return _FAMILIES[name]
    except KeyError:
        raise KeyError(f"unknown family {name!r}; known families: {', '.join(sorted(_FAMILIES))}") from None


def family_of(name: str) -> Family:
    """The `Family` of model `name`."""
    return get_family(get_spec(name).family)


def select_models(patterns: Sequence[str]) -> list[str]:
    """Model names for `patterns`: names, family names, shell patterns ('resnet*'), or 'all'.

    Order follows the patterns, each pattern's matches sorted; duplicates dropped. A pattern
    that matches nothing raises UnknownModelError naming the known models and families.
    Test-only variants match by exact name, or by a pattern that matches no real model.
    """
    _load_zoo()
    selected: list[str] = []
    for pattern in patterns:
        if pattern == "all":
            matches = list_models()
        elif pattern in _REGISTRY:
            matches = [pattern]
        elif pattern in _FAMILIES:
            matches = sorted(s.name for s in _FAMILIES[pattern].variants if not s.test_only)
        else:
            matched = sorted(n for n in _REGISTRY if fnmatch.fnmatchcase(n, pattern))
            # Test-only variants come in only when the pattern matches nothing else.
            matches = [n for n in matched if not _REGISTRY[n].test_only] or matched
        if not matches:
            known = ", ".join(list_models())
            raise UnknownModelError(
                f"unknown model {pattern!r}; known models: {known}; families: {', '.join(sorted(_FAMILIES))}; "
                "shell patterns such as 'resnet*' also work"
            )
        selected.extend(matches)
    return list(dict.fromkeys(selected))


def _load_zoo() -> None:
    # The family files register every spec on import; importing them lazily keeps this
    # module free of an import cycle.
    from models import families  # noqa: F401
