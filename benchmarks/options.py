"""The benchmark options, validated: one function per kind of value, one error class.

The pytest options (conftest.py), the runner's Python API and its CLI (benchmarks/runner.py)
all validate through these functions, so bad input gives the same one line everywhere:
`<label>: <problem>`, where the label is the option or field the user typed (`--model`,
`model_name`). Nothing here imports torch or jax except the device and weights checks,
which look at this machine.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable, Iterable, Mapping, Sequence

from models.registry import UnknownModelError, get_spec, list_models, select_models
from reports.vocabulary import (
    CONFIGS,
    DEFAULT_CONFIG,
    DEFAULT_MODE,
    DEVICES,
    DTYPES,
    FRAMEWORK_ALIASES,
    FRAMEWORKS,
    MODES,
    SYNTHETIC_DATA,
)

DEFAULT_MODELS = ("resnet50", "vit_b_16")
DEFAULT_BATCH_SIZES = (1, 8)
DEFAULT_DTYPES = ("float32",)
# Names that stand for several models: `--model all` (families and shell patterns too: models.select_models).
MODEL_GROUPS: Mapping[str, Callable[[], list[str]]] = {"all": list_models}


class OptionError(ValueError):
    """Bad input: the message is one line, `<option>: <problem>`, saying what to give instead."""


def whole_number(label: str, value: Any, minimum: int) -> int:
    """`value` (an int or its text) as an int >= `minimum`."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise OptionError(f"{label}: expected a whole number, got {value!r}")
    try:
        number = int(value)
    except ValueError:
        raise OptionError(f"{label}: expected a whole number, got {value!r}") from None
    if number < minimum:
        raise OptionError(f"{label}: must be >= {minimum}, got {number}")
    return number


def one_of(label: str, value: Any, choices: Sequence[str], aliases: Mapping[str, str] | None = None) -> str:
    """`value` if it is one of `choices` (an alias gives its canonical name)."""
    aliases = aliases or {}
    if isinstance(value, str) and value in aliases:
        return aliases[value]
    if not isinstance(value, str) or value not in choices:
        also = f" ({', '.join(f'{a} = {c}' for a, c in aliases.items())})" if aliases else ""
        raise OptionError(f"{label}: unknown value {value!r}; choose from {', '.join(choices)}{also}")
    return value


def parse_framework(label: str, value: Any) -> str:
    """One framework's canonical name ('pytorch' is 'torch')."""
    return one_of(label, value, FRAMEWORKS, FRAMEWORK_ALIASES)


def parse_frameworks(label: str, value: Any) -> tuple[str, ...]:
    """The frameworks `value` selects: one of them, or 'both'."""
    chosen = one_of(label, value, (*FRAMEWORKS, "both"), FRAMEWORK_ALIASES)
    return FRAMEWORKS if chosen == "both" else (chosen,)


def parse_model(label: str, name: Any, groups: Mapping[str, Callable[[], list[str]]] | None = None) -> str:
    """A registered model name; an unknown one lists the known names (and `groups`, where they are accepted)."""
    try:
        if not isinstance(name, str):
            raise UnknownModelError(f"expected a model name, got {name!r}; known models: {', '.join(list_models())}")
        return get_spec(name).name
    except UnknownModelError as exc:
        test_only = sorted(set(list_models(include_test_only=True)) - set(list_models()))
        keywords = "".join(f", {group}" for group in groups or {})
        raise OptionError(f"{label}: {exc}{keywords} (test-only: {', '.join(test_only)})") from None


def parse_models(label: str, names: Iterable[Any] | None, groups: Mapping[str, Callable[[], list[str]]] = MODEL_GROUPS) -> list[str]:
    """Model names (or one name), family names and shell patterns ('resnet*') expanded, each checked, duplicates dropped.

    None means the defaults; `groups` (`all`) expand too. A name or pattern that matches
    nothing lists the known models and families.
    """
    names = DEFAULT_MODELS if names is None else [names] if isinstance(names, str) else list(names)
    selected: list[str] = []
    for name in names:
        if isinstance(name, str) and name in groups:
            selected.extend(groups[name]())
            continue
        if not isinstance(name, str):
            parse_model(label, name, groups)  # raises, naming the known models
        try:
            selected.extend(select_models([name]))
        except UnknownModelError as exc:
            test_only = sorted(set(list_models(include_test_only=True)) - set(list_models()))
            keywords = "".join(f", {group}" for group in groups)
            raise OptionError(f"{label}: {exc}{keywords} (test-only: {', '.join(test_only)})") from None
    if not selected:
        raise OptionError(f"{label}: give at least one model, e.g. {' '.join(DEFAULT_MODELS)}")
    return list(dict.fromkeys(selected))


def parse_batch_sizes(label: str, values: Iterable[Any] | None, default: Sequence[int] = DEFAULT_BATCH_SIZES) -> list[int]:
    """Batch sizes, each a whole number >= 1; None means `default`."""
    if isinstance(values, (str, int)):
        raise OptionError(f"{label}: expected a list of whole numbers, got {values!r}; e.g. [1, 8]")
    sizes = [whole_number(label, value, 1) for value in (list(values) if values is not None else default)]
    if not sizes:
        raise OptionError(f"{label}: give at least one batch size, e.g. 1 8")
    return sizes


def parse_batch_sizes_or_auto(label: str, values: Iterable[Any] | None) -> list[int] | str:
    """Batch sizes as `parse_batch_sizes`, or "auto" (a doubling sweep, benchmarks/sweep.py) given alone."""
    if values is not None and not isinstance(values, (str, int)) and "auto" in list(values):
        if len(list(values)) > 1:
            raise OptionError(f"{label}: 'auto' sweeps the batch by itself; give it alone")
        return "auto"
    return parse_batch_sizes(label, values)


def parse_input_sizes(label: str, values: Iterable[Any] | None) -> list[int | None]:
    """Square input sizes in pixels; None (no option) means each model's own size."""
    if not values:
        return [None]
    return list(dict.fromkeys(whole_number(label, value, 1) for value in values))


def parse_configs(label: str, values: Iterable[Any] | None) -> list[str]:
    """Configuration names; None means the default (eager)."""
    return list(dict.fromkeys(one_of(label, value, CONFIGS) for value in (values or (DEFAULT_CONFIG,))))


def parse_dtype(label: str, value: Any) -> str:
    """One dtype name."""
    return one_of(label, value, DTYPES)


def parse_device(label: str, value: Any) -> str:
    """A device name, or 'auto'."""
    return one_of(label, value, ("auto", *DEVICES))


@dataclasses.dataclass(frozen=True)
class MatrixOptions:
    """The validated matrix options of a run."""

    models: list[str]
    frameworks: tuple[str, ...]
    device: str
    batch_sizes: list[int] | str  # or "auto": a sweep (benchmarks/sweep.py)
    dtypes: list[str]
    rounds: int
    warmup: int
    threads: int | None
    pretrained: bool = False
    weights: str | None = None
    input_sizes: list[int | None] = dataclasses.field(default_factory=lambda: [None])
    configs: list[str] = dataclasses.field(default_factory=lambda: [DEFAULT_CONFIG])
    modes: list[str] = dataclasses.field(default_factory=lambda: [DEFAULT_MODE])


def parse_matrix_options(
    model: Sequence[str] | None,
    framework: str,
    device: str,
    batch_sizes: Sequence[str] | None,
    dtype: Sequence[str] | None,
    rounds: str | int,
    warmup: str | int,
    threads: str | int | None,
    pretrained: bool = False,
    weights: str | None = None,
    input_size: Sequence[str] | None = None,
    config: Sequence[str] | None = None,
    mode: Sequence[str] | None = None,
) -> MatrixOptions:
    """The pytest matrix options, validated; the first bad one raises OptionError. Imports no framework."""
    chosen_frameworks = parse_frameworks("--framework", framework)  # checked first, as it always was
    return MatrixOptions(
        models=parse_models("--model", model),
        frameworks=chosen_frameworks,
        device=parse_device("--device", device),
        batch_sizes=parse_batch_sizes_or_auto("--batch-sizes", batch_sizes),
        dtypes=[parse_dtype("--dtype", d) for d in dtype or DEFAULT_DTYPES],
        rounds=whole_number("--rounds", rounds, 1),
        warmup=whole_number("--warmup", warmup, 0),
        threads=None if threads is None else whole_number("--threads", threads, 1),
        pretrained=pretrained or weights is not None,
        weights=weights,
        input_sizes=parse_input_sizes("--input-size", input_size),
        configs=parse_configs("--config", config),
        modes=list(dict.fromkeys(one_of("--mode", m, MODES) for m in (mode or (DEFAULT_MODE,)))),
    )


def cuda_visible() -> bool:
    """Whether torch or JAX (whichever is installed) sees a CUDA device."""
    from benchmarks.workload import backend_importable, get_backend

    for name in FRAMEWORKS:
        if backend_importable(name) is None and get_backend(name).device_available("cuda"):
            return True
    return False


def resolve_device(device: str) -> str:
    """The device of a run: `device`, with auto resolved (cuda when a framework sees one, else cpu)."""
    if device == "auto":
        return "cuda" if cuda_visible() else "cpu"
    return device


def check_device_present(label: str, device: str) -> None:
    """OptionError if `device` is cuda and no framework sees one."""
    if device == "cuda" and not cuda_visible():
        raise OptionError(f"{label} cuda: no CUDA device is visible to torch or jax here; use {label} cpu or auto")


def check_weights(models: Sequence[str], pretrained: bool, weights: str | None) -> None:
    """OptionError unless the weights file(s) that --pretrained / --weights need are on disk."""
    if weights is not None:
        if not os.path.isfile(weights):
            raise OptionError(f"--weights: no such file {weights!r}; give the path of a torchvision .pth file")
        if len(models) != 1:
            raise OptionError(f"--weights: one file fits one model, but {len(models)} are selected; add --model NAME")
    if pretrained and weights is None:
        from models.torch_models import WeightsNotFoundError, find_weights_file

        for name in models:
            try:
                find_weights_file(get_spec(name))
            except WeightsNotFoundError as exc:
                raise OptionError(f"--pretrained: {exc}") from None




def default_data_workers() -> int:
    """Input pipeline processes by default: the cores this process may use, at most 4."""
    return max(1, min(4, len(os.sched_getaffinity(0))))


def parse_data_options(data: str | None, epochs: Any, steps: Any, workers: Any, modes: Sequence[str],
                       label: str = "--data") -> Any:
    """`DataOptions` for a dataset path (checked on disk: layout, images), or None for synthetic inputs.

    `--mode eval` needs a dataset. `label` names the option in errors (`data_source` in the runner).
    """
    from benchmarks.workload import DataOptions

    epochs = whole_number("--epochs", epochs, 1)
    steps = None if steps is None else whole_number("--steps", steps, 1)
    workers = default_data_workers() if workers is None else whole_number("--data-workers", workers, 0)
    if data is None or data == SYNTHETIC_DATA:
        if "eval" in modes:
            raise OptionError("--mode eval: accuracy needs images with labels; give --data PATH "
                              "(an ImageFolder tree or the CIFAR-10/100 python batches)")
        return None
    from benchmarks.data_runs import dataset

    dataset(data, label)  # raises OptionError naming the problem with the path
    return DataOptions(source=data, epochs=epochs, steps=steps, workers=workers)
