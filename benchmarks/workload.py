"""What a back end hands the benchmark tests: one combination, ready to time.

Tests touch only `Workload`s and `Backend`s; nothing above this module branches on the
framework.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any, Callable, Protocol

# The vocabulary and the id are defined once, in reports.vocabulary (reports reads them too).
from reports.vocabulary import DEVICES, DTYPES, FRAMEWORKS, MODES, Combination  # noqa: E402,F401
from benchmarks.training import TrainConfig


@dataclasses.dataclass
class Workload:
    """One combination built and placed on its device.

    `run()` executes one step and returns only once the device has finished it, so wall
    time around it is honest. The other fields are what the record reports beside the
    timings; `memory()` reads peaks since `reset_memory()`, which the runner calls right
    before the timed calls.
    """

    combo: Combination
    run: Callable[[], Any]
    device_name: str
    input_shape: tuple[int, ...]
    params: int
    flops: int | None
    flops_source: str
    threads: int
    compile_ms: float | None = None
    compile_warm_ms: float | None = None
    weights: str = "random"
    reset_memory: Callable[[], None] = lambda: None
    memory: Callable[[], dict[str, float]] = dict
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)
    timed_extra: Callable[[], dict[str, Any]] = dict  # figures of the timed calls themselves (train: their losses)
    # Stateful workloads (train: weights, optimizer state) return to their state right after
    # build, so a workload that already ran as an interleaving partner is measured from the
    # same step as a fresh one; None where a call changes nothing (inference).
    restart: Callable[[], None] | None = None
    images_per_call: int | None = None  # a dataset pass: its images; None: the batch size


class Backend(Protocol):
    """What each framework's back end module provides."""

    def versions(self) -> dict[str, str]: ...

    def device_available(self, device: str) -> bool: ...

    def unsupported_reason(self, combo: Combination) -> str | None: ...

    def build_workload(self, combo: Combination, options: "BuildOptions") -> Workload: ...

    def data_backend(self) -> Any: ...

    def device_name(self, device: str) -> str: ...

    def is_out_of_memory(self, error: BaseException) -> bool: ...


@dataclasses.dataclass(frozen=True)
class DataOptions:
    """A run on a dataset (`--data PATH`): what one call reads and how many are timed."""

    source: str  # the dataset's path (benchmarks/datasets.py reads it)
    epochs: int = 1  # timed calls: train epochs, or evaluation passes
    steps: int | None = None  # at most this many batches per call (None: the whole split)
    workers: int = 2  # input pipeline processes


@dataclasses.dataclass(frozen=True)
class BuildOptions:
    """Settings that apply to every workload of a run."""

    threads: int
    torch_compile: bool = False
    tf32: bool = False  # allow TensorFloat-32 for float32 matmuls and convolutions on GPU, in both
    pretrained: bool = False
    weights: str | None = None
    seed: int = 0
    train: TrainConfig = TrainConfig()  # what a train-mode step does (optimizer, frozen stages)
    data: DataOptions | None = None  # combinations with a dataset read it; None: synthetic inputs only


_BACKEND_MODULES = {"torch": "benchmarks.backend_torch", "jax": "benchmarks.backend_jax"}


def get_backend(framework: str) -> Backend:
    """The back end module for `framework`, imported on first use."""
    return importlib.import_module(_BACKEND_MODULES[framework])  # type: ignore[return-value]


def backend_importable(framework: str) -> str | None:
    """None if `framework` is installed, else the reason it cannot run."""
    package = {"torch": "torch", "jax": "flax"}[framework]
    try:
        importlib.import_module(package)
    except ImportError as exc:
        return f"{framework} is not installed ({exc}); pip install the {framework} extra"
    return None


def cpu_name() -> str:
    """The CPU's model name, e.g. 'AMD EPYC 7B13'."""
    import platform

    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "cpu"
