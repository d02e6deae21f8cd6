"""The documented examples run as written: README's Python blocks, and the 594Project docs' calls.

The docs' examples (the model-zoo doc and the benchmarking guide, kept verbatim below) run
with their module paths mapped as README's "If you come from the 594Project docs" says.
Where a real model at the docs' sizes would take minutes on a CPU, `shrink` swaps in a tiny
model or fewer iterations, and every swap must find its text, so the examples cannot drift
from the docs unnoticed; the guide's own CLI example runs once at its real size.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from models.registry import list_models


def _test_only() -> list[str]:
    return sorted(set(list_models(include_test_only=True)) - set(list_models()))

from benchmarks import runner
from benchmarks.options import OptionError, parse_matrix_options
from benchmarks.runner import BenchmarkConfig, main, run_benchmark_suite, run_inference_benchmark
from benchmarks.workload import get_backend
from models.registry import get_spec

ROOT = Path(__file__).resolve().parents[1]
GUIDE_COLUMNS = (
    "latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "latency_mean_ms", "latency_std_ms",
    "latency_min_ms", "latency_max_ms", "throughput_ips", "memory_mb", "compilation_time_ms",
    "framework", "model", "device", "device_type", "batch_size", "input_shape", "dtype", "timestamp", "git_commit",
)
# Where the docs' modules are here (README, "If you come from the 594Project docs").
DOC_PATHS = (("from bench.runner import", "from benchmarks.runner import"),
             ("from utils.validation import", "from validation import"),
             ("from utils.data import", "from benchmarks.pipeline import"))
TINY = (("'resnet50'", "'resnet_tiny'"), ("'vit_b_16'", "'vit_tiny'"), ("224, 224, 3", "32, 32, 3"))

# ---- the docs, verbatim --------------------------------------------------------------------
ZOO_TORCH = """\
from models.torch_zoo import get_torch_model
import torch

# Get device
device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')

# Load ResNet-50
model, preprocess, input_shape, metadata = get_torch_model(
    'resnet50',
    pretrained=True,  # Use ImageNet pretrained weights
    device=device
)

# Load ViT-Base
model_vit, preprocess_vit, input_shape_vit, metadata_vit = get_torch_model(
    'vit_b_16',
    pretrained=True,
    device=device
)

# Run inference
x = torch.randn(1, *input_shape, device=device)
x = preprocess(x)
with torch.no_grad():
    output = model(x)
"""
ZOO_INFO = """\
from models.torch_zoo import get_model_info

info = get_model_info('resnet50')
# Returns: {'name': 'ResNet-50', 'params': 25557032, 'input_shape': (3, 224, 224), 'flops': 4100000000.0}
"""
ZOO_FLAX = """\
from models.jax_flax_zoo import get_flax_model
import jax
import jax.numpy as jnp

# Initialize model
rng_key = jax.random.PRNGKey(42)
apply_fn, params, preprocess, metadata = get_flax_model(
    'resnet50',
    input_shape=(224, 224, 3),  # HWC format for JAX
    rng_key=rng_key,
    num_classes=1000
)

# JIT compile
@jax.jit
def jitted_apply(params, x):
    return apply_fn(params, x, train=False)

# Run inference
x = jnp.ones((1, 224, 224, 3), dtype=jnp.float32)
x = preprocess(x)
output = jitted_apply(params, x)
output.block_until_ready()  # Ensure computation completes
"""
ZOO_VALIDATION = """\
from utils.validation import compare_models
from models.torch_zoo import get_torch_model
from models.jax_flax_zoo import get_flax_model

# Load both models
pytorch_model, pytorch_preprocess, input_shape_pytorch, _ = get_torch_model('resnet50', pretrained=False)
jax_apply_fn, jax_params, jax_preprocess, _ = get_flax_model('resnet50', input_shape=(224, 224, 3), rng_key=jax.random.PRNGKey(42))

# Compare
result = compare_models(
    model_name='resnet50',
    pytorch_model=pytorch_model,
    pytorch_preprocess=pytorch_preprocess,
    jax_apply_fn=jax_apply_fn,
    jax_params=jax_params,
    jax_preprocess=jax_preprocess,
    input_shape_pytorch=input_shape_pytorch,
    input_shape_jax=(224, 224, 3),
    batch_size=2,
    tolerance=1e-5
)
"""
ZOO_RUNNER = """\
from bench.runner import BenchmarkConfig, run_inference_benchmark

config = BenchmarkConfig(
    framework='pytorch',
    model_name='resnet50',
    batch_sizes=[1, 8, 32, 128],
    warmup_iterations=10,
    measurement_iterations=50
)

results = run_inference_benchmark(config)
"""
GUIDE_QUICK_START = """\
from bench.runner import BenchmarkConfig, run_inference_benchmark, run_benchmark_suite

# Single benchmark
config = BenchmarkConfig(
    framework='pytorch',
    model_name='resnet50',
    batch_sizes=[1, 8, 32, 128],
    warmup_iterations=10,
    measurement_iterations=50
)
results = run_inference_benchmark(config)

# Full suite
all_results = run_benchmark_suite(
    models=['resnet50', 'vit_b_16'],
    frameworks=['pytorch', 'jax'],
    batch_sizes=[1, 8, 32, 128]
)
"""
GUIDE_DEEP_DIVE = """\
from bench.runner import BenchmarkConfig, run_inference_benchmark

# Test ResNet-50 across many batch sizes
config = BenchmarkConfig(
    framework='pytorch',
    model_name='resnet50',
    batch_sizes=[1, 2, 4, 8, 16, 32, 64, 128],
    warmup_iterations=20,
    measurement_iterations=100
)

results = run_inference_benchmark(config)

# Analyze results
for result in results:
    print(f"Batch {result['batch_size']}: "
          f"{result['latency_p50_ms']:.2f}ms, "
          f"{result['throughput_ips']:.1f} img/s")
"""
GUIDE_DATA_SOURCE = """\
from utils.data import create_dataloader

# Use ImageNet-100 instead of synthetic data
config = BenchmarkConfig(
    framework='pytorch',
    model_name='resnet50',
    data_source='data/imagenet100'  # Path to dataset
)
"""
GUIDE_DEVICE = """\
config = BenchmarkConfig(
    framework='pytorch',
    model_name='resnet50',
    device_prefer='cuda'  # Force CUDA even if MPS available
)
"""
GUIDE_DTYPE = """\
config = BenchmarkConfig(
    framework='pytorch',
    model_name='resnet50',
    dtype='float16'  # Use FP16 (requires GPU support)
)
"""
GUIDE_ANALYSIS = """\
import pandas as pd
import matplotlib.pyplot as plt

# Load results
df = pd.read_csv('results/raw/benchmark_results_20250101_120000.csv')

# Plot latency vs batch size
pytorch_resnet = df[(df['framework'] == 'pytorch') & (df['model'] == 'resnet50')]
plt.plot(pytorch_resnet['batch_size'], pytorch_resnet['latency_p50_ms'])
plt.xlabel('Batch Size')
plt.ylabel('Latency (ms)')
plt.title('ResNet-50 Latency vs Batch Size')
plt.show()
"""
GUIDE_CLI = "python bench/runner.py --framework pytorch --model resnet50 --batch-sizes 1 4 --iterations 10 --warmup 3"
# ---------------------------------------------------------------------------------------------


def shrink(text: str, *swaps: tuple[str, str]) -> str:
    """`text` with each (old, new) swapped; an `old` that is not in `text` fails the test."""
    for old, new in swaps:
        assert old in text, f"{old!r} is no longer in the example: update the swaps"
        text = text.replace(old, new)
    return text


def run_example(text: str, cwd: Path, *, prelude: str = "") -> dict:
    """Execute `text` (docs' paths mapped) as a script run from `cwd`; its globals afterwards."""
    for old, new in DOC_PATHS:
        text = text.replace(old, new)
    namespace: dict = {"__name__": "__doc_example__"}
    previous = os.getcwd()
    os.chdir(cwd)
    try:
        exec(compile(prelude + text, "<doc example>", "exec"), namespace)
    finally:
        os.chdir(previous)
    return namespace


def csv_files(folder: Path) -> list[Path]:
    files = sorted(folder.glob("benchmark_results_*.csv"))
    assert all(re.fullmatch(r"benchmark_results_\d{8}_\d{6}\.csv", f.name) for f in files)
    return files


def assert_measured(row: dict, model: str, framework: str, batch_size: int) -> None:
    """A measured row: the guide's columns, consistent statistics, the registry's model."""
    assert set(GUIDE_COLUMNS) <= set(row)
    assert (row["status"], row["model"], row["framework"], row["batch_size"]) == ("ok", model, framework, batch_size)
    assert 0 < row["latency_min_ms"] <= row["latency_p50_ms"] <= row["latency_p95_ms"] <= row["latency_p99_ms"] <= row["latency_max_ms"]
    assert row["throughput_ips"] == pytest.approx(batch_size / row["latency_p50_ms"] * 1e3)
    assert row["memory_mb"] > 0 and row["params"] == get_spec(model).params
    assert row["device_type"] == "cpu" and row["dtype"] == "float32" and row["timestamp"]


# ---- README ---------------------------------------------------------------------------------

def readme_python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)


def test_readme_holds_the_guides_python_api_verbatim() -> None:
    # ... so test_guide_quick_start_runs_every_combination_into_csvs runs that README block.
    assert GUIDE_QUICK_START.replace(*DOC_PATHS[0]) in readme_python_blocks()


def readme_blocks_run_as_written() -> list[str]:
    """README's Python blocks but the guide's (run, shrunk, by the guide's test)."""
    return [block for block in readme_python_blocks() if block != GUIDE_QUICK_START.replace(*DOC_PATHS[0])]


@pytest.mark.parametrize("index", range(len(readme_blocks_run_as_written())))
def test_readme_python_block_runs(index: int, tmp_path: Path) -> None:
    run_example(readme_blocks_run_as_written()[index], tmp_path)  # raises if the block is broken


# ---- the model-zoo doc ------------------------------------------------------------------------

def test_zoo_doc_torch_example(tmp_path: Path) -> None:
    # pretrained=True needs a local weights file (never downloaded): tests/test_pretrained.py covers it.
    text = shrink(ZOO_TORCH, *TINY[:2], ("pretrained=True,  #", "pretrained=False,  #"), ("pretrained=True,\n", "pretrained=False,\n"))
    namespace = run_example(text, tmp_path)
    assert tuple(namespace["output"].shape) == (1, 10)


def test_zoo_doc_model_info(tmp_path: Path) -> None:
    info = run_example(ZOO_INFO, tmp_path)["info"]
    assert info["params"] == 25_557_032 and info["input_shape"] == (3, 224, 224)
    assert info["name"] == "resnet50" and info["flops"] == pytest.approx(8.2e9, rel=0.01)  # 2 per multiply-add


def test_zoo_doc_flax_example(tmp_path: Path) -> None:
    namespace = run_example(shrink(ZOO_FLAX, TINY[0], TINY[2]), tmp_path)
    assert namespace["output"].shape == (1, 1000)


def test_zoo_doc_flax_model_takes_hwc_and_nhwc() -> None:
    import jax

    from models.jax_flax_zoo import get_flax_model

    for shape in ((32, 32, 3), (2, 32, 32, 3)):
        _, params, _, _ = get_flax_model("vit_tiny", input_shape=shape, rng_key=jax.random.PRNGKey(42), num_classes=1000)
        head = [leaf for leaf in jax.tree_util.tree_leaves(params) if leaf.shape[-1] == 1000]
        assert head  # the explicit num_classes, not the spec's 10
    _, params, _, _ = get_flax_model("vit_tiny", input_shape=(32, 32, 3))
    assert not [leaf for leaf in jax.tree_util.tree_leaves(params) if leaf.shape[-1] == 1000]  # None: the spec's head
    for bad in ((3, 32, 32), (32, 32), (1, 1, 32, 32, 3), "32x32"):
        with pytest.raises(ValueError, match=r"^input_shape: expected \(H, W, C\) or \(N, H, W, C\)"):
            get_flax_model("vit_tiny", input_shape=bad)


def test_zoo_doc_validation_example(tmp_path: Path) -> None:
    from validation import ParityResult

    # The doc's snippet follows its JAX example, which imported jax.
    namespace = run_example(shrink(ZOO_VALIDATION, TINY[0], TINY[2]), tmp_path, prelude="import jax\n")
    result = namespace["result"]
    # Independently initialised weights, as the doc's note says: far apart, and the first layer named.
    assert isinstance(result, ParityResult) and not result.passed and result.first_diverging_layer == "conv1"


def test_compare_models_with_ported_weights_passes_at_the_docs_tolerance() -> None:
    from models.jax_flax_zoo import get_flax_model
    from models.torch_zoo import get_torch_model
    from validation import compare_models

    pytorch_model, pytorch_preprocess, input_shape_pytorch, _ = get_torch_model("resnet_tiny", pretrained=False)
    jax_apply_fn, jax_params, jax_preprocess, _ = get_flax_model("resnet_tiny", input_shape=(32, 32, 3), torch_model=pytorch_model)
    kwargs = dict(model_name="resnet_tiny", pytorch_model=pytorch_model, pytorch_preprocess=pytorch_preprocess,
                  jax_apply_fn=jax_apply_fn, jax_params=jax_params, jax_preprocess=jax_preprocess,
                  input_shape_pytorch=input_shape_pytorch, input_shape_jax=(32, 32, 3), batch_size=2, tolerance=1e-5)
    result = compare_models(**kwargs)
    assert result.passed and result.max_abs <= 1e-5
    assert not compare_models(**{**kwargs, "tolerance": 1e-12}).passed  # the float is a real bound


def test_zoo_doc_runner_example(tmp_path: Path) -> None:
    text = shrink(ZOO_RUNNER, TINY[0], ("[1, 8, 32, 128]", "[1, 3]"), ("warmup_iterations=10", "warmup_iterations=1"),
                  ("measurement_iterations=50", "measurement_iterations=3"))
    results = run_example(text, tmp_path)["results"]
    for row, batch_size in zip(results, (1, 3), strict=True):
        assert_measured(row, "resnet_tiny", "pytorch", batch_size)
        assert row["flops"] == get_spec("resnet_tiny").flops * batch_size  # the torch back end's own workload
        assert row["input_shape"] == f"{batch_size}x3x32x32" and row["compilation_time_ms"] is None


# ---- the benchmarking guide -------------------------------------------------------------------

def test_guide_quick_start_runs_every_combination_into_csvs(tmp_path: Path) -> None:
    text = shrink(GUIDE_QUICK_START, *TINY[:2], ("[1, 8, 32, 128]", "[1, 2]"),
                  ("warmup_iterations=10", "warmup_iterations=1"), ("measurement_iterations=50", "measurement_iterations=3"),
                  ("    batch_sizes=[1, 2]\n)", "    batch_sizes=[1, 2], warmup_iterations=1, measurement_iterations=3\n)"))
    namespace = run_example(text, tmp_path)
    assert [row["batch_size"] for row in namespace["results"]] == [1, 2]
    rows = namespace["all_results"]
    assert [(r["model"], r["framework"], r["batch_size"]) for r in rows] == [
        (m, f, b) for m in ("resnet_tiny", "vit_tiny") for f in ("pytorch", "jax") for b in (1, 2)
    ]
    for row in rows:
        assert_measured(row, row["model"], row["framework"], row["batch_size"])
    jax_rows = [r for r in rows if r["framework"] == "jax"]
    assert all(r["compilation_time_ms"] > 0 and r["input_shape"].endswith("x32x32x3") for r in jax_rows)  # NHWC
    on_disk = pd.concat([pd.read_csv(f) for f in csv_files(tmp_path / "results" / "raw")])
    assert list(on_disk.columns[:len(GUIDE_COLUMNS)]) == list(GUIDE_COLUMNS)
    assert len(on_disk) == 10 and set(on_disk["status"]) == {"ok"}


def test_guide_deep_dive_prints_each_batch(tmp_path: Path) -> None:
    text = shrink(GUIDE_DEEP_DIVE, TINY[0], ("[1, 2, 4, 8, 16, 32, 64, 128]", "[1, 2]"),
                  ("warmup_iterations=20", "warmup_iterations=1"), ("measurement_iterations=100", "measurement_iterations=3"))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        run_example(text, tmp_path)
    assert re.search(r"^Batch 1: [\d.]+ms, [\d.]+ img/s$", out.getvalue(), re.M)
    assert re.search(r"^Batch 2: [\d.]+ms, [\d.]+ img/s$", out.getvalue(), re.M)


def test_guide_device_and_dtype_configs(tmp_path: Path) -> None:
    prelude = "from benchmarks.runner import BenchmarkConfig\n"  # imported by the guide's earlier example
    assert run_example(GUIDE_DEVICE, tmp_path, prelude=prelude)["config"].device_prefer == "cuda"
    assert run_example(GUIDE_DTYPE, tmp_path, prelude=prelude)["config"].dtype == "float16"


def test_guide_data_source_takes_a_dataset_folder(tmp_path: Path) -> None:
    from tests import datagen

    datagen.make_image_folder(tmp_path / "data" / "imagenet100", classes=3, per_class=(2, 2), size=24)
    prelude = "from benchmarks.runner import BenchmarkConfig\n"  # imported by the guide's earlier example
    config = run_example(GUIDE_DATA_SOURCE, tmp_path, prelude=prelude)["config"]
    assert config.data is not None and config.data.source == "data/imagenet100"
    previous = os.getcwd()
    os.chdir(tmp_path)
    try:
        rows = run_inference_benchmark(dataclasses.replace(config, model_name="resnet_tiny", batch_sizes=[2],
                                                           measurement_iterations=2, warmup_iterations=0,
                                                           verbose=False, csv_output_dir=str(tmp_path / "csv")))
        loader = run_example("from utils.data import create_dataloader\n"
                             "loader = create_dataloader('data/imagenet100', 'resnet_tiny', batch_size=4)\n",
                             tmp_path)["loader"]
    finally:
        os.chdir(previous)
    assert rows[0]["status"] == "ok" and rows[0]["data"] == "imagenet100"
    batch = next(iter(loader))
    assert batch.images.shape == (4, 3, 32, 32) and batch.valid == 4


def test_guide_data_source_that_is_missing_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(OptionError, match=r"^data_source: no such folder '.*/data/imagenet100'; give the folder"):
        run_example(GUIDE_DATA_SOURCE, tmp_path, prelude="from benchmarks.runner import BenchmarkConfig\n")


def test_guide_analysis_reads_the_csv(tmp_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    run_inference_benchmark(BenchmarkConfig("pytorch", "resnet_tiny", batch_sizes=[1, 2], warmup_iterations=0,
                                            measurement_iterations=3, csv_output_dir=tmp_path / "results/raw", verbose=False))
    (csv,) = csv_files(tmp_path / "results" / "raw")
    text = shrink(GUIDE_ANALYSIS, TINY[0], ("results/raw/benchmark_results_20250101_120000.csv", f"results/raw/{csv.name}"))
    namespace = run_example(text, tmp_path)
    assert list(namespace["pytorch_resnet"]["batch_size"]) == [1, 2]  # the guide filters on 'pytorch'


@pytest.mark.slow
def test_guide_cli_example_at_its_real_size(tmp_path: Path) -> None:
    command = GUIDE_CLI.replace("python bench/runner.py", "python -m benchmarks.runner").split()
    result = subprocess.run([sys.executable, *command[1:]], cwd=tmp_path, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "PyTorch Benchmark: resnet50" in out and "Total configurations: 2" in out
    for batch_size in (1, 4):
        assert re.search(rf"Benchmarking batch size: {batch_size}\n  Latency \(p50\): [\d.]+ms\n"
                         r"  Throughput: [\d.]+ images/sec\n  Memory: [\d.]+ MB\n", out)
    saved = re.search(r"^Results saved to: (results/raw/benchmark_results_\d{8}_\d{6}\.csv)$", out, re.M)
    assert saved, out
    frame = pd.read_csv(tmp_path / saved.group(1))
    for row, batch_size in zip(frame.to_dict("records"), (1, 4), strict=True):
        assert_measured(row, "resnet50", "pytorch", batch_size)
        assert row["n_samples"] == 10
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    if head.returncode == 0:
        assert set(frame["git_commit"]) == {head.stdout.strip()}


# ---- bad input and failures -------------------------------------------------------------------

@pytest.mark.parametrize(
    "fields, message",
    [
        ({"model_name": "resnet5"}, "model_name: unknown model 'resnet5'; known models: convnext_base, convnext_small"),
        ({"framework": "mxnet"}, "framework: unknown value 'mxnet'; choose from torch, jax (pytorch = torch, flax = jax)"),
        ({"batch_sizes": [8, 0]}, "batch_sizes: must be >= 1, got 0"),
        ({"batch_sizes": 8}, "batch_sizes: expected a list of whole numbers, got 8"),
        ({"batch_sizes": ["eight"]}, "batch_sizes: expected a whole number, got 'eight'"),
        ({"measurement_iterations": 0}, "measurement_iterations: must be >= 1, got 0"),
        ({"warmup_iterations": -1}, "warmup_iterations: must be >= 0, got -1"),
        ({"dtype": "float64"}, "dtype: unknown value 'float64'; choose from float32, float16, bfloat16"),
        ({"device_prefer": "mps"}, "device_prefer: unknown value 'mps'; choose from auto, cpu, cuda"),
        ({"input_shape": (3, 384, 384)}, "input_shape: (3, 384, 384) is not supported yet; resnet50 runs at (3, 224, 224) (CHW) or (224, 224, 3) (HWC)"),
    ],
)
def test_bad_config_is_one_line_naming_the_field(fields: dict, message: str) -> None:
    with pytest.raises(OptionError) as info:
        BenchmarkConfig(**{"framework": "pytorch", "model_name": "resnet50", **fields})
    assert isinstance(info.value, ValueError) and "\n" not in str(info.value)
    assert str(info.value).startswith(message)


def test_input_shape_of_the_model_is_accepted_in_either_layout() -> None:
    for shape in ((3, 224, 224), (224, 224, 3)):
        assert BenchmarkConfig("pytorch", "resnet50", input_shape=shape).input_shape == shape


def test_pytorch_and_torch_are_one_framework() -> None:
    assert BenchmarkConfig("torch", "resnet50") == BenchmarkConfig("pytorch", "resnet50")
    assert parse_matrix_options(None, "pytorch", "auto", None, None, "5", "1", None).frameworks == ("torch",)
    assert runner._flatten_frameworks(["pytorch", "torch", "jax"]) == ["torch", "jax"]


def test_bad_suite_input_fails_before_anything_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(OptionError, match=r"^models: unknown model 'resnet5'; known models: convnext_base, .* all, both"):
        run_benchmark_suite(models=["resnet_tiny", "resnet5"], frameworks=["pytorch"], batch_sizes=[1])
    with pytest.raises(OptionError, match=r"^run_benchmark_suite: unknown option 'iterations'; choose from device_prefer"):
        run_benchmark_suite(models=["resnet_tiny"], iterations=3)
    with pytest.raises(OptionError, match=r"^batch_sizes: must be >= 1, got 0"):
        run_benchmark_suite(models=["resnet_tiny"], batch_sizes=[1, 0])
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "resnet5"], "--model: unknown model 'resnet5'; known models: convnext_base, convnext_small"),
        (["--batch-sizes", "1", "0"], "--batch-sizes: must be >= 1, got 0"),
        (["--batch-sizes", "eight"], "--batch-sizes: expected a whole number, got 'eight'"),
        (["--framework", "mxnet"], "--framework: unknown value 'mxnet'; choose from torch, jax, both (pytorch = torch, flax = jax)"),
        (["--iterations", "0"], "--iterations: must be >= 1, got 0"),
        (["--warmup", "-1"], "--warmup: must be >= 0, got -1"),
        (["--dtype", "float64"], "--dtype: unknown value 'float64'; choose from float32, float16, bfloat16"),
        (["--device", "mps"], "--device: unknown value 'mps'; choose from auto, cpu, cuda"),
        (["--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_bad_cli_input_is_one_line_and_exit_code_2(args: list[str], message: str, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as info:
        main(["--model", "resnet_tiny", *args])
    assert info.value.code == runner.EXIT_BAD_INPUT == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("python -m benchmarks.runner: error: ") and message in line
    assert not (tmp_path / "results").exists()  # nothing ran


def test_cli_bad_input_exit_code_in_a_real_process(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "benchmarks.runner", "--model", "resnet5"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 2 and result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("python -m benchmarks.runner: error: --model: unknown model 'resnet5'; known models: ")
    assert f"{', '.join(list_models())}; families: " in line and line.endswith(", all, both (test-only: "
                                                                               f"{', '.join(_test_only())})")


@pytest.mark.skipif(runner.options.cuda_visible(), reason="a CUDA device is visible, so cuda is valid here")
def test_absent_cuda_is_bad_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as info:
        main(["--model", "resnet_tiny", "--device", "cuda"])
    assert info.value.code == 2 and "--device cuda: no CUDA device is visible" in capsys.readouterr().err
    with pytest.raises(OptionError, match="^device_prefer cuda: no CUDA device is visible"):
        run_inference_benchmark(BenchmarkConfig("pytorch", "resnet_tiny", device_prefer="cuda"))
    assert not (tmp_path / "results").exists()


@pytest.fixture
def planted_failures(monkeypatch: pytest.MonkeyPatch) -> None:
    """The torch back end fails to build batch 2 and runs out of memory at batch 3."""
    backend = get_backend("torch")
    build = backend.build_workload

    def failing_build(combo, options):
        if combo.batch_size == 2:
            raise RuntimeError("planted build failure")
        workload = build(combo, options)
        if combo.batch_size == 3:
            def out_of_memory():
                raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
            workload.run = out_of_memory
        return workload

    monkeypatch.setattr(backend, "build_workload", failing_build)


def test_a_failed_batch_size_is_a_row_and_the_others_are_kept(planted_failures: None, tmp_path: Path) -> None:
    config = BenchmarkConfig("pytorch", "resnet_tiny", batch_sizes=[1, 2, 3, 4], warmup_iterations=0,
                             measurement_iterations=3, csv_output_dir=tmp_path, verbose=False)
    rows = run_inference_benchmark(config)
    assert [row["status"] for row in rows] == ["ok", "error", "oom", "ok"]
    assert rows[1]["reason"] == "build: RuntimeError: planted build failure" and rows[1]["latency_p50_ms"] is None
    assert rows[2]["reason"].startswith("run: RuntimeError: CUDA out of memory")
    assert_measured(rows[0], "resnet_tiny", "pytorch", 1)
    assert_measured(rows[3], "resnet_tiny", "pytorch", 4)
    (csv,) = csv_files(tmp_path)
    frame = pd.read_csv(csv)
    assert list(frame["status"]) == ["ok", "error", "oom", "ok"] and list(frame["batch_size"]) == [1, 2, 3, 4]


def test_cli_exit_code_1_when_a_batch_size_failed(planted_failures: None, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture) -> None:
    code = main(["--framework", "pytorch", "--model", "resnet_tiny", "--batch-sizes", "1", "2",
                 "--iterations", "3", "--warmup", "0", "--output-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == runner.EXIT_FAILED == 1
    assert "Failed (error): build: RuntimeError: planted build failure" in out and "Latency (p50)" in out
    assert len(pd.read_csv(csv_files(tmp_path)[0])) == 2
