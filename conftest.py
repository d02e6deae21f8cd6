"""The benchmark matrix: command-line options, test generation, skips and machine info.

`pytest benchmarks` runs one test per model x framework x device x batch x dtype; each
id reads like `resnet50-jax-cpu-bs8-float32`. Bad options stop the run at start-up with
one line and pytest's usage-error exit code 4, before anything is built.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Any

import pytest

from benchmarks import options as opts
from benchmarks.harness import share_gpu_with_torch, unsupported_reason
from benchmarks.options import DEFAULT_BATCH_SIZES, DEFAULT_MODELS, MatrixOptions, OptionError, resolve_device
from benchmarks.training import OPTIMIZERS, TrainConfig
from benchmarks.workload import DTYPES, FRAMEWORKS, MODES, BuildOptions, Combination, backend_importable, get_backend
from models.registry import get_spec
from reports.vocabulary import CONFIGS, DEFAULT_CONFIG

VISIONBENCH_JSON_KEY = "visionbench"
_run_key = pytest.StashKey[Any]()  # the session's BenchRun, once a benchmark asked for it
_options_key = pytest.StashKey[MatrixOptions]()
_sweep_key = pytest.StashKey[Any]()
_data_key = pytest.StashKey[Any]()

# Journal, SIGTERM, --resume, --shard; one xdist worker per GPU (issue 11).
pytest_plugins = ["benchmarks.run_plugin", "benchmarks.gpu_workers"]


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
                    help="batch sizes, or 'auto': double from 1 until out of memory or img/s gains under 5%% "
                         f"(default: {' '.join(map(str, DEFAULT_BATCH_SIZES))})")
    group.addoption("--dtype", nargs="+", default=None, metavar="DTYPE",
                    help=f"dtypes, from {', '.join(DTYPES)} (default: float32)")
    group.addoption("--config", nargs="+", default=None, metavar="NAME",
                    help=f"tuned configurations, a matrix dimension, from {', '.join(CONFIGS)}; one a framework or "
                         f"device cannot run skips (default: {DEFAULT_CONFIG})")
    group.addoption("--xla-flags", default=None, metavar="FLAGS",
                    help="XLA flags for the whole process (appended to $XLA_FLAGS before JAX starts; recorded)")
    group.addoption("--compile-cache", default=None, metavar="DIR",
                    help="persistent compilation caches in DIR: JAX's and torch inductor's; records say cold or warm")
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
    # Real data (benchmarks/datasets.py, benchmarks/pipeline.py, benchmarks/data_runs.py).
    group.addoption("--data", default=None, metavar="synthetic|PATH",
                    help="images from a dataset on disk, an ImageFolder tree or the CIFAR-10/100 python batches: "
                         "inference times a batch of its val images, train one epoch per timed call, eval one "
                         "top-1/top-5 pass per timed call (default: synthetic)")
    group.addoption("--epochs", default="1", metavar="N", help="with --data: timed epochs (train) or passes (eval) (default: 1)")
    group.addoption("--steps", default=None, metavar="N", help="with --data: at most N batches per epoch or pass")
    group.addoption("--data-workers", default=None, metavar="N",
                    help="with --data: input pipeline processes (default: the usable cores, at most 4)")
    group.addoption("--isolate", action="store_true",
                    help="measure each combination in a fresh process (allocator and cuDNN state start clean); "
                         "results merge into this run's JSON and journal (default: all in this process)")
    group.addoption("--no-interleave", action="store_true",
                    help="time each framework on its own; by default, when both run, each benchmark alternates its "
                         "calls with the other framework's (A B, B A, ...) and records the ratio with a 95%% interval")


def parse_options(config: pytest.Config) -> MatrixOptions:
    """Validate every matrix option (benchmarks/options.py); the first bad one raises UsageError with one line."""
    try:
        return opts.parse_matrix_options(
            **{name: config.getoption(name) for name in (
                "model", "framework", "device", "batch_sizes", "dtype", "rounds", "warmup", "threads",
                "pretrained", "weights", "input_size", "config", "mode")}
        )
    except OptionError as exc:
        raise pytest.UsageError(str(exc)) from None


def data_options(config: pytest.Config, options: MatrixOptions) -> Any:
    """`DataOptions` from --data, --epochs, --steps, --data-workers (None: synthetic); UsageError on bad input."""
    try:
        return opts.parse_data_options(config.getoption("data"), config.getoption("epochs"), config.getoption("steps"),
                                       config.getoption("data_workers"), options.modes)
    except OptionError as exc:
        raise pytest.UsageError(str(exc)) from None


def train_config(config: pytest.Config) -> TrainConfig:
    """The train step's settings from --optimizer, --freeze and --train-dropout; UsageError on a bad value."""
    from models.freezing import parse_freeze

    try:
        optimizer = opts.one_of("--optimizer", config.getoption("optimizer"), OPTIMIZERS)
        freeze = parse_freeze(config.getoption("freeze"))
    except OptionError as exc:
        raise pytest.UsageError(str(exc)) from None
    except ValueError as exc:
        raise pytest.UsageError(f"--freeze: {exc}") from None
    return TrainConfig(optimizer=optimizer, freeze=freeze, stochastic=config.getoption("train_dropout"))


def pytest_configure(config: pytest.Config) -> None:
    options = parse_options(config)  # imports neither framework
    train_config(config)  # a bad --optimizer or --freeze stops the run here
    config.stash[_data_key] = data_options(config, options)  # a bad dataset path stops it before anything is built
    # Both settings below must precede JAX's start, which the device check may trigger.
    share_gpu_with_torch()
    if config.getoption("xla_flags"):
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {config.getoption('xla_flags')}".strip()
    if config.getoption("compile_cache"):
        from benchmarks.compile_cache import enable_compile_caches

        enable_compile_caches(config.getoption("compile_cache"))
    cores = sorted(os.sched_getaffinity(0))
    if options.threads is not None and options.threads > len(cores):
        raise pytest.UsageError(f"--threads: {options.threads} requested, but this process may use only {len(cores)} "
                                f"core(s) (its CPU affinity); use --threads {len(cores)} or fewer")
    if options.threads is not None and options.threads < len(cores):
        # XLA:CPU sizes its pool by the cores this process may use, so restricting the
        # affinity is what gives both frameworks the same cores.
        os.sched_setaffinity(0, cores[:options.threads])
    try:  # the checks that look at this machine: the device and weights files
        opts.check_device_present("--device", options.device)
        opts.check_weights(options.models, config.getoption("pretrained"), options.weights)
    except OptionError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[_options_key] = options
    _show_progress_through_capture(config)


def _show_progress_through_capture(config: pytest.Config) -> None:
    """Progress lines of long calls (an epoch) reach the terminal while pytest captures the test's output."""
    from benchmarks import progress

    capture = config.pluginmanager.getplugin("capturemanager")
    if capture is None:
        return

    def write(text: str) -> None:
        reporter = config.pluginmanager.getplugin("terminalreporter")
        if reporter is None:  # e.g. an xdist worker: nothing to draw on
            return
        with capture.global_and_fixture_disabled():
            config.get_terminal_writer().write(text, flush=True)

    progress.set_writer(write)


def _own_size_as_none(model: str, size: int | None) -> int | None:
    # A model at its own size keeps the short id (and the records of runs without --input-size).
    return None if size == get_spec(model).input_size else size


def matrix(options: MatrixOptions, data: Any = None) -> list[Combination]:
    """Every combination the options select, in a stable order (framework innermost: pairs are adjacent).

    With a dataset (`data`, DataOptions) every combination names it.
    """
    device = resolve_device(options.device)
    dataset_name = None
    if data is not None:
        from benchmarks.data_runs import dataset

        dataset_name = dataset(data.source).name
    batch_sizes = options.batch_sizes
    if batch_sizes == "auto":
        from benchmarks.sweep import auto_batch_sizes

        batch_sizes = auto_batch_sizes(device)
    return [
        Combination(model, framework, device, batch, dtype, mode=mode, input_size=_own_size_as_none(model, size),
                    config=config, data=dataset_name)
        for mode in options.modes
        for model in options.models
        for size in options.input_sizes
        for batch in batch_sizes
        for dtype in options.dtypes
        for config in options.configs
        for framework in options.frameworks
    ]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "combo" not in metafunc.fixturenames:
        return
    from models.freezing import freeze_reason

    train = train_config(metafunc.config)
    params = []
    for combo in matrix(metafunc.config.stash[_options_key], metafunc.config.stash[_data_key]):
        reason = unsupported_reason(combo)
        if reason is None and combo.mode == "train":  # a --freeze the model's stages cannot take
            reason = freeze_reason(get_spec(combo.model), train.freeze)
        marks = [pytest.mark.skip(reason=reason)] if reason else []
        params.append(pytest.param(combo, id=combo.id, marks=marks))
    metafunc.parametrize("combo", params)


@pytest.fixture(scope="session")
def bench_run(pytestconfig: pytest.Config):
    """The run's shared settings and failure log."""
    from benchmarks.harness import BenchRun

    parity_check = None
    if not pytestconfig.getoption("no_parity"):
        from benchmarks.parity import cached_parity

        parity_check = cached_parity
    run = BenchRun(
        options=BuildOptions(
            threads=len(os.sched_getaffinity(0)),
            torch_compile=pytestconfig.getoption("torch_compile"),
            tf32=pytestconfig.getoption("tf32"),
            pretrained=pytestconfig.stash[_options_key].pretrained,
            weights=pytestconfig.stash[_options_key].weights,
            train=train_config(pytestconfig),
            data=pytestconfig.stash[_data_key],
        ),
        rounds=pytestconfig.stash[_options_key].rounds,
        warmup=pytestconfig.stash[_options_key].warmup,
        parity_check=parity_check,
        interleave_frameworks=() if pytestconfig.getoption("no_interleave") else tuple(pytestconfig.stash[_options_key].frameworks),
        isolated=_isolated(pytestconfig),
    )
    pytestconfig.stash[_run_key] = run
    return run


def _isolated(config: pytest.Config) -> Any:
    """With --isolate, the function that measures one combination in a fresh process; else None."""
    if not config.getoption("isolate"):
        return None
    import functools

    from benchmarks.isolate import run_child

    return functools.partial(run_child, config, frameworks=tuple(config.stash[_options_key].frameworks))


@pytest.fixture(scope="session")
def batch_sweep(pytestconfig: pytest.Config):
    """The run's batch sweep (`--batch-sizes auto`), or None for fixed batch sizes."""
    if pytestconfig.stash[_options_key].batch_sizes != "auto":
        return None
    from benchmarks.sweep import Sweep

    pytestconfig.stash[_sweep_key] = Sweep()
    return pytestconfig.stash[_sweep_key]


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
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "compile_cache": config.getoption("compile_cache"),
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
    sweep = config.stash.get(_sweep_key, None)
    if sweep is not None:
        output_json[VISIONBENCH_JSON_KEY]["batch_sweep"] = sweep.summary()


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
