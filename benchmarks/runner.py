"""The benchmarking guide's runner: `BenchmarkConfig`, `run_inference_benchmark`, `run_benchmark_suite`, a CLI.

A thin layer over the pytest matrix's machinery: the back ends build the same `Workload`s,
the harness calls, warms up and times them the same way (benchmarks/harness.py), the
statistics and the record are the same (benchmarks/stats.py, benchmarks/record.py), and a
result is the record's row as `python -m reports table --format csv` writes it
(reports/frame.py), appended to `results/raw/benchmark_results_YYYYMMDD_HHMMSS.csv` the
moment it is measured. Only the `framework` column speaks the guide's names ('pytorch').

    python -m benchmarks.runner --framework pytorch --model resnet50 --batch-sizes 1 4 --iterations 10 --warmup 3

Exit codes: 0 every configuration measured; 1 some failed (each failure is a row with its
status and reason, every other row is kept); 2 bad input (one line on stderr, nothing run).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime
import functools
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from benchmarks import options
from benchmarks.data_runs import dataset
from benchmarks.harness import BenchRun, safe_device_name, share_gpu_with_torch, unsupported_reason
from benchmarks.options import OptionError
from benchmarks.record import make_failure_record
from benchmarks.workload import BuildOptions, Combination, backend_importable, get_backend
from models.registry import get_spec

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_BATCH_SIZES = (1, 8, 32, 128)
DEFAULT_CSV_DIR = "results/raw"
# The guide's names: its `framework` column says 'pytorch'; inside visionbench it is 'torch'.
GUIDE_FRAMEWORK_NAMES: Mapping[str, str] = {"torch": "pytorch", "jax": "jax"}
DISPLAY_NAMES: Mapping[str, str] = {"torch": "PyTorch", "jax": "JAX"}
# `--model both` is the guide's pair of models.
GUIDE_MODEL_GROUPS: Mapping[str, Callable[[], list[str]]] = {
    **options.MODEL_GROUPS, "both": lambda: list(options.DEFAULT_MODELS),
}
EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
_RULE = "=" * 60


@dataclasses.dataclass
class BenchmarkConfig:
    """One model in one framework at several batch sizes; every field is checked on construction.

    `framework` is 'pytorch' (or 'torch') or 'jax'; `device_prefer` 'cuda', 'cpu' or None
    (CUDA when a framework sees one); `input_shape` None or the model's own shape, CHW or
    HWC; `data_source` 'synthetic' or a dataset's folder (an ImageFolder tree or the CIFAR-10/100
    python batches: the timed batch is then its first 'val' images, preprocessed as the model's
    weights expect; accuracy over a whole split is `pytest benchmarks --mode eval --data PATH`). Bad input raises
    OptionError (a ValueError) with one line naming the field.
    """

    framework: str
    model_name: str
    device_prefer: str | None = None
    batch_sizes: Sequence[int] = dataclasses.field(default_factory=lambda: list(DEFAULT_BATCH_SIZES))
    warmup_iterations: int = 10
    measurement_iterations: int = 50
    input_shape: tuple[int, ...] | None = None
    dtype: str = "float32"
    data_source: str = "synthetic"
    csv_output_dir: str | os.PathLike = DEFAULT_CSV_DIR
    verbose: bool = True

    def __post_init__(self) -> None:
        self.framework = options.parse_framework("framework", self.framework)
        self.model_name = options.parse_model("model_name", self.model_name)
        if self.device_prefer is not None:
            self.device_prefer = options.parse_device("device_prefer", self.device_prefer)
        self.batch_sizes = options.parse_batch_sizes("batch_sizes", self.batch_sizes)
        self.warmup_iterations = options.whole_number("warmup_iterations", self.warmup_iterations, 0)
        self.measurement_iterations = options.whole_number("measurement_iterations", self.measurement_iterations, 1)
        self.dtype = options.parse_dtype("dtype", self.dtype)
        _check_input_shape(self.model_name, self.input_shape)
        # A dataset path: the timed batch is its first 'val' images, as the weights' transform makes them.
        self.data = options.parse_data_options(self.data_source, 1, None, 0, ("inference",), label="data_source")


def _check_input_shape(model_name: str, input_shape: Any) -> None:
    if input_shape is None:
        return
    c, h, w = get_spec(model_name).input_shape
    try:
        shape = tuple(input_shape)
    except TypeError:
        shape = None
    if shape not in ((c, h, w), (h, w, c)):
        raise OptionError(
            f"input_shape: {input_shape!r} is not supported yet; {model_name} runs at {(c, h, w)} (CHW) "
            f"or {(h, w, c)} (HWC); leave input_shape=None"
        )


def new_csv_path(output_dir: str | os.PathLike) -> Path:
    """A fresh `benchmark_results_YYYYMMDD_HHMMSS.csv` in `output_dir` (created)."""
    Path(output_dir).mkdir(parents=True, exist_ok=True)
    return Path(output_dir) / f"benchmark_results_{datetime.datetime.now():%Y%m%d_%H%M%S}.csv"


def csv_columns() -> list[str]:
    """The CSV's columns: the guide's first, then reports' extras (reports/frame.py)."""
    from reports.frame import CSV_COLUMNS, EXTRA_COLUMNS

    return [*CSV_COLUMNS, *EXTRA_COLUMNS]


def append_row(path: str | os.PathLike, row: Mapping[str, Any]) -> None:
    """Append `row` to the CSV at `path` (header first if the file is new), on disk before returning."""
    columns = csv_columns()
    new = not os.path.exists(path) or os.path.getsize(path) == 0
    with open(path, "a", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        if new:
            writer.writeheader()
        writer.writerow({column: row.get(column) for column in columns})
        f.flush()
        os.fsync(f.fileno())


@functools.lru_cache(maxsize=None)
def git_commit() -> str:
    """The commit of this checkout, or '' outside git."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def result_row(record: dict[str, Any], csv_path: str | os.PathLike) -> dict[str, Any]:
    """A record as the guide's result dict: reports' CSV row, framework named as in the guide."""
    from reports.frame import records_frame
    from reports.load import Run

    run = Run(
        path=Path(csv_path),
        machine=platform.node(),
        timestamp=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        git_commit=git_commit(),
        records=(record,),
    )
    (row,) = records_frame([run]).to_dict("records")
    row = {key: (None if isinstance(value, float) and value != value else value) for key, value in row.items()}  # NaN -> None
    row["framework"] = GUIDE_FRAMEWORK_NAMES[record["framework"]]
    return row


def _measure(harness: BenchRun, combo: Combination) -> dict[str, Any]:
    """`combo`'s record: measured, or the failure with its reason (never raised)."""
    reason = unsupported_reason(combo)
    if reason:
        return make_failure_record(combo, safe_device_name(combo.framework, combo.device), "unsupported", reason)
    failures = len(harness.failures)
    try:
        return harness.measure_loop(combo)
    except Exception as exc:  # MeasurementSkipped (OOM) too: the harness recorded it
        if len(harness.failures) > failures:
            return harness.failures[-1]
        return make_failure_record(combo, safe_device_name(combo.framework, combo.device), "error",
                                   f"record: {type(exc).__name__}: {exc}")


def _print_header(config: BenchmarkConfig, device: str) -> None:
    missing = backend_importable(config.framework)
    available = missing is None and get_backend(config.framework).device_available(device)
    print(_RULE)
    print(f"{DISPLAY_NAMES[config.framework]} Benchmark: {config.model_name}")
    print(_RULE)
    print(f"Device: {safe_device_name(config.framework, device)}")
    print(f"  Type: {device.upper()}")
    print(f"  Available: {available}" + (f" ({missing})" if missing else ""), flush=True)


def _print_result(batch_size: int, row: Mapping[str, Any], record: Mapping[str, Any]) -> None:
    print(f"\nBenchmarking batch size: {batch_size}")
    if row["status"] != "ok":
        print(f"  Failed ({row['status']}): {row['reason']}", flush=True)
        return
    print(f"  Latency (p50): {row['latency_p50_ms']:.3f}ms")
    print(f"  Throughput: {row['throughput_ips']:.2f} images/sec")
    memory = row.get("memory_mb")
    print(f"  Memory: {memory:.2f} MB" if memory is not None else "  Memory: not measured")
    if row.get("compilation_time_ms") is not None:
        print(f"  Compilation: {row['compilation_time_ms']:.1f}ms")
    for reason in record.get("validity_reasons") or []:
        print(f"  Warning: {reason}")
    sys.stdout.flush()


def _run_config(config: BenchmarkConfig, device: str, csv_path: Path) -> list[dict[str, Any]]:
    harness = BenchRun(
        options=BuildOptions(threads=len(os.sched_getaffinity(0)), data=config.data),
        rounds=config.measurement_iterations,
        warmup=config.warmup_iterations,
    )
    if config.verbose:
        _print_header(config, device)
    rows = []
    for batch_size in config.batch_sizes:
        combo = Combination(config.model_name, config.framework, device, batch_size, config.dtype,
                            data=None if config.data is None else dataset(config.data.source).name)
        record = _measure(harness, combo)
        row = result_row(record, csv_path)
        append_row(csv_path, row)
        rows.append(row)
        if config.verbose:
            _print_result(batch_size, row, record)
    if config.verbose:
        print()
    return rows


def _device_of(device_prefer: str | None) -> str:
    """The device a run uses; OptionError if the preferred one is absent. Must precede JAX's start."""
    share_gpu_with_torch()
    device = options.resolve_device(device_prefer or "auto")
    options.check_device_present("device_prefer", device)
    return device


def run_inference_benchmark(config: BenchmarkConfig, csv_path: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """Time `config`'s model at each of its batch sizes: one result dict per batch size, each appended to the CSV.

    The CSV is `csv_path`, else a new `benchmark_results_YYYYMMDD_HHMMSS.csv` in
    `config.csv_output_dir`. A batch size that fails is a row with `status` and `reason`.
    """
    device = _device_of(config.device_prefer)
    path = Path(csv_path) if csv_path is not None else new_csv_path(config.csv_output_dir)
    rows = _run_config(config, device, path)
    if config.verbose:
        print(f"Results saved to: {path}", flush=True)
    return rows


def _flatten_frameworks(names: Iterable[Any] | str) -> list[str]:
    chosen: list[str] = []
    for name in [names] if isinstance(names, str) else names:
        chosen.extend(options.parse_frameworks("frameworks", name))
    return list(dict.fromkeys(chosen))


def run_benchmark_suite(
    models: Sequence[str] | None = None,
    frameworks: Sequence[str] | None = None,
    batch_sizes: Sequence[int] | None = None,
    **config_fields: Any,
) -> list[dict[str, Any]]:
    """Every model in every framework (default: resnet50 and vit_b_16, pytorch and jax), one CSV for all.

    `config_fields` are further `BenchmarkConfig` fields (warmup_iterations, dtype, ...).
    Every configuration is checked before anything runs.
    """
    fixed = {"framework", "model_name", "batch_sizes"}
    known = [f.name for f in dataclasses.fields(BenchmarkConfig) if f.name not in fixed]
    for name in config_fields:
        if name not in known:
            raise OptionError(f"run_benchmark_suite: unknown option {name!r}; choose from {', '.join(known)}")
    selected_models = options.parse_models("models", models if models is not None else options.DEFAULT_MODELS,
                                           GUIDE_MODEL_GROUPS)
    selected_frameworks = _flatten_frameworks(frameworks if frameworks is not None else ("torch", "jax"))
    sizes = options.parse_batch_sizes("batch_sizes", batch_sizes, DEFAULT_BATCH_SIZES)
    configs = [
        BenchmarkConfig(framework=framework, model_name=model, batch_sizes=sizes, **config_fields)
        for model in selected_models
        for framework in selected_frameworks
    ]
    device = _device_of(configs[0].device_prefer)
    path = new_csv_path(configs[0].csv_output_dir)
    rows = [row for config in configs for row in _run_config(config, device, path)]
    if configs[0].verbose:
        print(_RULE)
        print("Benchmark Suite Complete")
        print(_RULE)
        print(f"Total configurations: {len(rows)}")
        failed = [row for row in rows if row["status"] != "ok"]
        if failed:
            print(f"Failed: {len(failed)} (status and reason in the CSV)")
        print(f"Results saved to: {path}", flush=True)
    return rows


class _OneLineParser(argparse.ArgumentParser):
    """argparse whose usage errors are one line and exit code 2, like every other bad input here."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see --help)\n")


def _parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(
        prog="python -m benchmarks.runner",
        description="Time models at several batch sizes in PyTorch and/or JAX; results go to a CSV.",
        epilog="Exit codes: 0 all measured, 1 some configuration failed (see its row), 2 bad input.",
    )
    parser.add_argument("--framework", default="both", help="pytorch (or torch), jax, or both (default: both)")
    parser.add_argument("--model", nargs="+", default=["both"], metavar="NAME",
                        help="registered model names, 'both' (resnet50 vit_b_16) or 'all' (default: both)")
    parser.add_argument("--batch-sizes", nargs="+", default=None, metavar="N",
                        help=f"batch sizes (default: {' '.join(map(str, DEFAULT_BATCH_SIZES))})")
    parser.add_argument("--iterations", default="50", help="timed calls per batch size (default: 50)")
    parser.add_argument("--warmup", default="10", help="untimed calls before timing (default: 10)")
    parser.add_argument("--output-dir", default=DEFAULT_CSV_DIR, help=f"folder of the CSV (default: {DEFAULT_CSV_DIR})")
    parser.add_argument("--dtype", default="float32", help="float32, float16 or bfloat16 (default: float32)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto: cuda when visible)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The CLI: validate every option first (exit 2 with one line), run the suite, exit 0 or 1."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        frameworks = options.parse_frameworks("--framework", args.framework)
        models = options.parse_models("--model", args.model, GUIDE_MODEL_GROUPS)
        batch_sizes = options.parse_batch_sizes("--batch-sizes", args.batch_sizes, DEFAULT_BATCH_SIZES)
        iterations = options.whole_number("--iterations", args.iterations, 1)
        warmup = options.whole_number("--warmup", args.warmup, 0)
        dtype = options.parse_dtype("--dtype", args.dtype)
        device = options.parse_device("--device", args.device)
        share_gpu_with_torch()
        options.check_device_present("--device", device)
        rows = run_benchmark_suite(
            models=models, frameworks=frameworks, batch_sizes=batch_sizes, warmup_iterations=warmup,
            measurement_iterations=iterations, dtype=dtype, device_prefer=device, csv_output_dir=args.output_dir,
        )
    except OptionError as exc:
        parser.exit(EXIT_BAD_INPUT, f"{parser.prog}: error: {exc}\n")
    return EXIT_OK if all(row["status"] == "ok" for row in rows) else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
