"""The suite's shared vocabulary: framework, device, dtype and mode names, and the benchmark id.

Defined once, here, so that the benchmarks that write records and the reports that read
them agree; it imports nothing heavier than the standard library.
"""

from __future__ import annotations

import dataclasses
import re

FRAMEWORKS = ("torch", "jax")
# The framework the weights come from: other frameworks' records carry parity against it.
REFERENCE_FRAMEWORK = "torch"
# Other names users type for a framework (the seeds say 'pytorch').
FRAMEWORK_ALIASES = {"pytorch": "torch", "flax": "jax"}
DEVICES = ("cpu", "cuda")
DTYPES = ("float32", "float16", "bfloat16")
# inference: one forward of a batch; train: one train step (on a dataset: one epoch);
# eval: one pass over a dataset's evaluation split, with top-1 / top-5 accuracy.
MODES = ("inference", "train", "eval")
DEFAULT_MODE = "inference"
# Where the images come from: synthetic tensors unless a dataset is named (`--data PATH`).
SYNTHETIC_DATA = "synthetic"
# On a dataset, one call of these modes is a whole pass over a split (an epoch, an evaluation).
PASS_MODES = ("train", "eval")


def reads_whole_split(combo: "Combination") -> bool:
    """Whether one call of `combo` is a pass over its dataset's split (rather than one batch)."""
    return combo.data is not None and combo.mode in PASS_MODES
# Tuned configurations (a matrix dimension): how a framework runs the same model. Each back
# end says which it can run where; the rest skip at collection with the reason.
CONFIGS = ("eager", "channels_last", "compile", "compile-max", "cudagraphs", "channels_last-compile",
           "channels_last-cudagraphs", "xla-autotune")
DEFAULT_CONFIG = "eager"


def canonical_framework(name: str) -> str:
    """`name` as the suite spells it ('pytorch' -> 'torch'); unknown names are returned unchanged."""
    return FRAMEWORK_ALIASES.get(name.lower(), name.lower())


@dataclasses.dataclass(frozen=True)
class Combination:
    """One point of the benchmark matrix.

    `input_size` is the side of the square input; None means the model's own size and
    keeps the id short. `data` is the dataset's name (`benchmarks/datasets.py`), or None
    for synthetic inputs.
    """

    model: str
    framework: str
    device: str
    batch_size: int
    dtype: str
    mode: str = DEFAULT_MODE
    input_size: int | None = None
    config: str = DEFAULT_CONFIG
    data: str | None = None

    @property
    def id(self) -> str:
        """A readable test id: `resnet50-jax-cpu-bs8-float32`, `swin_t-torch-cuda-bs1-bfloat16-288px-train+compile-max`.

        Defaults (the model's own size, inference, eager, synthetic data) are left out; a
        configuration follows a '+' because its name may hold a hyphen, a dataset an '@'
        (`resnet50-jax-cpu-bs64-float32-eval@imagenet100`).
        """
        size = "" if self.input_size is None else f"-{self.input_size}px"
        mode = "" if self.mode == DEFAULT_MODE else f"-{self.mode}"
        config = "" if self.config == DEFAULT_CONFIG else f"+{self.config}"
        data = "" if self.data is None else f"@{self.data}"
        return f"{self.model}-{self.framework}-{self.device}-bs{self.batch_size}-{self.dtype}{size}{mode}{config}{data}"


_ID = re.compile(
    r"^(?P<model>[^-+]+)-(?P<framework>[^-+]+)-(?P<device>[^-+]+)-bs(?P<batch_size>\d+)-(?P<dtype>[^-+]+)"
    r"(?:-(?P<input_size>\d+)px)?(?:-(?P<mode>[a-z]+))?(?:\+(?P<config>[^@]+))?(?:@(?P<data>.+))?$"
)


def parse_id(text: str) -> Combination:
    """The `Combination` whose id is `text` (pytest's `test_forward[<id>]` is accepted too)."""
    inner = text[text.index("[") + 1:text.rindex("]")] if text.endswith("]") and "[" in text else text
    match = _ID.match(inner)
    if match is None:
        raise ValueError(f"not a benchmark id: {text!r} (expected e.g. resnet50-jax-cpu-bs8-float32)")
    parts = match.groupdict()
    return Combination(
        model=parts["model"],
        framework=parts["framework"],
        device=parts["device"],
        batch_size=int(parts["batch_size"]),
        dtype=parts["dtype"],
        mode=parts["mode"] or DEFAULT_MODE,
        input_size=int(parts["input_size"]) if parts["input_size"] else None,
        config=parts["config"] or DEFAULT_CONFIG,
        data=parts["data"],
    )
