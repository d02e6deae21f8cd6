"""The benchmark matrix: command-line options, test generation, skips and machine info.

`pytest benchmarks` runs one test per model x framework x device x batch x dtype; each
id reads like `resnet50-jax-cpu-bs8-float32`. Bad options stop the run at start-up with
one line and pytest's usage-error exit code 4, before anything is built.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
from typing import Any

import pytest

from benchmarks.training import OPTIMIZERS, TrainConfig
from benchmarks.workload import DEVICES, DTYPES, FRAMEWORKS, MODES, BuildOptions, Combination, backend_importable, get_backend
from models.registry import UnknownModelError, get_family, get_spec, list_models, select_models

DEFAULT_MODELS = ("resnet50", "vit_b_16")
DEFAULT_BATCH_SIZES = (1, 8)
DEFAULT_DTYPES = ("float32",)
VISIONBENCH_JSON_KEY = "visionbench"
_run_key = pytest.StashKey[Any]()  # the session's BenchRun, once a benchmark asked for it


def _whole_number(option: str, text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise pytest.UsageError(f"{option}: expected a whole number, got {text!r}") from None
    if value < minimum:
        raise pytest.UsageError(f"{option}: must be >= {minimum}, got {value}")
    return value


def _one_of(option: str, value: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise pytest.UsageError(f"{option}: unknown value {value!r}; choose from {', '.join(choices)}")
    return value


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("visionbench", "visionbench benchmark matrix")
    group.addoption("--model", action="extend", nargs="+", default=None, metavar="NAME",
                    help="models to run, repeatable: names, family names (resnet, efficientnet, ...), shell patterns "
                         f"('resnet*', 'efficientnet_b[0-3]'), or 'all' (default: {' '.join(DEFAULT_MODELS)})")
    group.addoption("--input-size", nargs="+", default=None, metavar="N",
                    help="square input sizes in pixels, a matrix dimension (default: each model's own size)")
    group.addoption("--framework", default="both", help=f"framework(s) to run: {', '.join(FRAMEWORKS)} or both (default: both)")
    group.addoption("--device", default="auto",
                    help="device; auto picks cuda when a framework sees one, else cpu (default: auto)")
    group.addoption("--batch-sizes", nargs="+", default=None, metavar="N",
                    help=f"batch sizes (default: {' '.join(map(str, DEFAULT_BATCH_SIZES))})")
    group.addoption("--dtype", nargs="+", default=None, metavar="DTYPE",
                    help=f"dtypes, from {', '.join(DTYPES)} (default: float32)")
    group.addoption("--rounds", default="5", help="timed calls per combination (default: 5)")
    group.addoption("--warmup", default="1",
                    help="untimed calls after the first call, before timing (default: 1)")
    group.addoption("--threads", default=None,
                    help="CPU cores both frameworks may use (default: all this process may use)")
    group.addoption("--torch-compile", action="store_true", help="time torch.compile'd models instead of eager")
    group.addoption("--tf32", action="store_true",
                    help="allow TensorFloat-32 for float32 on GPU in both frameworks (default: true float32 in both)")
    group.addoption("--pretrained", action="store_true",
                    help="use torchvision's pretrained weights from a local file (never downloaded)")
    group.addoption("--weights", default=None, metavar="PATH", help="weights file for --pretrained (one model)")
    group.addoption("--no-parity", action="store_true", help="skip the per-model torch/Flax parity check of JAX records")
    # Train mode (benchmarks/training.py): one step = forward, loss, backward, optimizer update.
    group.addoption("--mode", nargs="+", default=None, metavar="MODE",
                    help=f"what one timed call does, a matrix dimension: {', '.join(MODES)} (default: inference)")
    group.addoption("--optimizer", default="sgd", help="train mode's optimizer: sgd (momentum 0.9) or adamw (default: sgd)")
    group.addoption("--freeze", default="0", metavar="N|backbone",
                    help="train mode: freeze the first N stages (the stem is in the first), or the whole backbone (default: 0)")
    group.addoption("--train-dropout", action="store_true",
                    help="train mode: dropout and stochastic depth on (default off, so both frameworks do the same arithmetic)")


def train_config(config: pytest.Config) -> TrainConfig:
    """The train step's settings from --optimizer, --freeze and --train-dropout; UsageError on a bad value."""
    from models.freezing import parse_freeze

    optimizer = _one_of("--optimizer", config.getoption("optimizer"), OPTIMIZERS)
    try:
        freeze = parse_freeze(config.getoption("freeze"))
    except ValueError as exc:
        raise pytest.UsageError(f"--freeze: {exc}") from None
    return TrainConfig(optimizer=optimizer, freeze=freeze, stochastic=config.getoption("train_dropout"))


def selected_models(config: pytest.Config) -> list[str]:
    """The --model names, families and patterns expanded; raises UsageError on one that matches nothing."""
    patterns = config.getoption("model") or list(DEFAULT_MODELS)
    try:
        return select_models(patterns)
    except UnknownModelError as exc:
        test_only = sorted(set(list_models(include_test_only=True)) - set(list_models()))
        raise pytest.UsageError(f"--model: {exc}; 'all' for every model (test-only: {', '.join(test_only)})") from None


def _cuda_visible() -> bool:
    for framework in FRAMEWORKS:
        if backend_importable(framework) is None and get_backend(framework).device_available("cuda"):
            return True
    return False


@dataclasses.dataclass(frozen=True)
class MatrixOptions:
    """The validated matrix options of a run."""

    models: list[str]
    frameworks: tuple[str, ...]
    device: str
    batch_sizes: list[int]
    dtypes: list[str]
    input_sizes: list[int | None]
    rounds: int
    warmup: int
    threads: int | None
    modes: list[str] = dataclasses.field(default_factory=lambda: ["inference"])


def parse_options(config: pytest.Config) -> MatrixOptions:
    """Validate every matrix option; the first bad one raises UsageError with one line."""
    framework = _one_of("--framework", config.getoption("framework"), (*FRAMEWORKS, "both"))
    threads = config.getoption("threads")
    return MatrixOptions(
        models=selected_models(config),
        frameworks=FRAMEWORKS if framework == "both" else (framework,),
        device=_one_of("--device", config.getoption("device"), ("auto", *DEVICES)),
        batch_sizes=[_whole_number("--batch-sizes", b, 1) for b in config.getoption("batch_sizes") or DEFAULT_BATCH_SIZES],
        dtypes=[_one_of("--dtype", d, DTYPES) for d in config.getoption("dtype") or DEFAULT_DTYPES],
        input_sizes=[_whole_number("--input-size", n, 1) for n in config.getoption("input_size") or ()] or [None],
        rounds=_whole_number("--rounds", config.getoption("rounds"), 1),
        warmup=_whole_number("--warmup", config.getoption("warmup"), 0),
        threads=None if threads is None else _whole_number("--threads", threads, 1),
        modes=list(dict.fromkeys(_one_of("--mode", m, MODES) for m in config.getoption("mode") or ("inference",))),
    )


_options_key = pytest.StashKey[MatrixOptions]()


def _check_environment(config: pytest.Config, options: MatrixOptions) -> None:
    """The checks that look at this machine: the device and weights files."""
    models = options.models
    if options.device == "cuda" and not _cuda_visible():
        raise pytest.UsageError("--device cuda: no CUDA device is visible to torch or jax here; use --device cpu or auto")
    weights = config.getoption("weights")
    if weights is not None:
        if not os.path.isfile(weights):
            raise pytest.UsageError(f"--weights: no such file {weights!r}; give the path of a torchvision .pth file")
        if len(models) != 1:
            raise pytest.UsageError(f"--weights: one file fits one model, but {len(models)} are selected; add --model NAME")
    if config.getoption("pretrained") and weights is None:
        from models.torch_models import WeightsNotFoundError, find_weights_file

        for name in models:
            try:
                find_weights_file(get_spec(name))
            except WeightsNotFoundError as exc:
                raise pytest.UsageError(f"--pretrained: {exc}") from None


def pytest_configure(config: pytest.Config) -> None:
    options = parse_options(config)  # imports neither framework
    train_config(config)  # a bad --optimizer or --freeze stops the run here
    # Both settings below must precede JAX's start, which the device check may trigger.
    # torch and JAX share the GPU in one process: JAX must not grab 75% of it up front.
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    cores = sorted(os.sched_getaffinity(0))
    if options.threads is not None and options.threads < len(cores):
        # XLA:CPU sizes its pool by the cores this process may use, so restricting the
        # affinity is what gives both frameworks the same cores.
        os.sched_setaffinity(0, cores[:options.threads])
    _check_environment(config, options)
    config.stash[_options_key] = options




def resolve_device(device: str) -> str:
    """The device of this run: --device, with auto resolved."""
    if device == "auto":
        return "cuda" if _cuda_visible() else "cpu"
    return device


def _own_size_as_none(model: str, size: int | None) -> int | None:
    # A model at its own size keeps the short id (and the records of runs without --input-size).
    return None if size == get_spec(model).input_size else size


def matrix(options: MatrixOptions) -> list[Combination]:
    """Every combination the options select, in a stable order."""
    device = resolve_device(options.device)
    return [
        Combination(model, framework, device, batch, dtype, mode=mode, input_size=_own_size_as_none(model, size))
        for mode in options.modes
        for model in options.models
        for size in options.input_sizes
        for batch in options.batch_sizes
        for dtype in options.dtypes
        for framework in options.frameworks
    ]


def unsupported_reason(combo: Combination, train: TrainConfig | None = None) -> str | None:
    """Why `combo` cannot run here, decided at collection; None if it can."""
    spec = get_spec(combo.model)
    size_reason = get_family(spec.family).size_reason(spec, combo.input_size or spec.input_size)
    if not size_reason and combo.mode == "train" and train is not None:
        from models.freezing import freeze_reason

        size_reason = freeze_reason(spec, train.freeze)
    return size_reason or backend_importable(combo.framework) or get_backend(combo.framework).unsupported_reason(combo)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "combo" not in metafunc.fixturenames:
        return
    params = []
    train = train_config(metafunc.config)
    for combo in matrix(metafunc.config.stash[_options_key]):
        reason = unsupported_reason(combo, train)
        marks = [pytest.mark.skip(reason=reason)] if reason else []
        params.append(pytest.param(combo, id=combo.id, marks=marks))
    metafunc.parametrize("combo", params)


@pytest.fixture(scope="session")
def bench_run(pytestconfig: pytest.Config):
    """The run's shared settings and failure log."""
    from benchmarks.runner import BenchRun

    parity_check = None
    if not pytestconfig.getoption("no_parity"):
        from benchmarks.parity import cached_parity

        parity_check = cached_parity
    run = BenchRun(
        options=BuildOptions(
            threads=len(os.sched_getaffinity(0)),
            torch_compile=pytestconfig.getoption("torch_compile"),
            tf32=pytestconfig.getoption("tf32"),
            pretrained=pytestconfig.getoption("pretrained") or pytestconfig.getoption("weights") is not None,
            weights=pytestconfig.getoption("weights"),
            train=train_config(pytestconfig),
        ),
        rounds=pytestconfig.stash[_options_key].rounds,
        warmup=pytestconfig.stash[_options_key].warmup,
        parity_check=parity_check,
    )
    pytestconfig.stash[_run_key] = run
    return run


def _gpu_info() -> dict[str, str]:
    if shutil.which("nvidia-smi") is None:
        return {}
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip().splitlines()
    except (OSError, subprocess.SubprocessError):
        return {}
    if not out:
        return {}
    name, driver, memory = (part.strip() for part in out[0].split(","))
    return {"gpu_name": name, "gpu_driver": driver, "gpu_memory": memory, "gpu_count": str(len(out))}


def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict[str, Any]) -> None:
    info: dict[str, Any] = {
        "cpu_affinity": len(os.sched_getaffinity(0)),
        "xla_python_client_preallocate": os.environ.get("XLA_PYTHON_CLIENT_PREALLOCATE"),
        **_gpu_info(),
    }
    for framework in FRAMEWORKS:
        if backend_importable(framework) is None:
            info[f"{framework}_versions"] = get_backend(framework).versions()
    machine_info[VISIONBENCH_JSON_KEY] = info


def pytest_benchmark_update_json(config: pytest.Config, benchmarks: Any, output_json: dict[str, Any]) -> None:
    run = config.stash.get(_run_key, None)
    from reports.schema import SCHEMA_VERSION

    output_json[VISIONBENCH_JSON_KEY] = {
        "schema_version": SCHEMA_VERSION,
        "failures": list(run.failures) if run is not None else [],
    }


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    run = config.stash.get(_run_key, None)
    if run is None:
        return
    rows = []
    for report in terminalreporter.stats.get("passed", []):
        for key, value in getattr(report, "user_properties", []):
            if key == "visionbench_record":
                rows.append(value)
    if rows:
        from reports.summary import format_run_summary

        terminalreporter.write_sep("-", "visionbench: throughput")
        terminalreporter.write_line(format_run_summary(rows))
    for failure in run.failures:
        terminalreporter.write_line(f"visionbench: {failure['status']} {failure['model']}-{failure['framework']}-"
                                    f"{failure['device']}-bs{failure['batch_size']}-{failure['dtype']}: {failure['reason']}")
