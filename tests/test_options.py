"""The matrix options: defaults, ids, and one clear line with exit code 4 for bad input."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from models.registry import list_families, list_models

from benchmarks.options import OptionError, parse_matrix_options
from models import list_models

ROOT = Path(__file__).resolve().parents[1]
USAGE_ERROR = 4  # pytest.ExitCode.USAGE_ERROR


def run_pytest(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "benchmarks", "--collect-only", "-q", "-p", "no:cacheprovider", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})},
    )


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--model", "nope"], "--model: unknown model 'nope'; known models: convnext_base, convnext_small"),
        (["--batch-sizes", "8", "0"], "--batch-sizes: must be >= 1, got 0"),
        (["--batch-sizes", "-3"], "--batch-sizes: must be >= 1, got -3"),
        (["--batch-sizes", "eight"], "--batch-sizes: expected a whole number, got 'eight'"),
        (["--dtype", "float64"], "--dtype: unknown value 'float64'; choose from float32, float16, bfloat16"),
        (["--framework", "mxnet"], "--framework: unknown value 'mxnet'; choose from torch, jax, both"),
        (["--device", "tpu"], "--device: unknown value 'tpu'; choose from auto, cpu, cuda"),
        (["--rounds", "0"], "--rounds: must be >= 1, got 0"),
        (["--warmup", "-1"], "--warmup: must be >= 0, got -1"),
        (["--threads", "0"], "--threads: must be >= 1, got 0"),
        (["--weights", "/nonexistent/resnet50.pth", "--model", "resnet50"], "--weights: no such file '/nonexistent/resnet50.pth'"),
        (["--pretrained", "--model", "resnet_tiny"], "--pretrained: model 'resnet_tiny' has no torchvision weights"),
    ],
)
def test_bad_option_is_one_line_and_exit_code_4(args, expected):
    result = run_pytest(*args)
    assert result.returncode == USAGE_ERROR, result.stdout + result.stderr
    error_lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(error_lines) == 1, result.stderr
    assert error_lines[0].startswith("ERROR: ") and expected in error_lines[0]
    assert "collected" not in result.stdout  # stopped before anything was built


BAD_MATRIX_OPTIONS = [
    ({"model": ["nope"]}, f"--model: unknown model 'nope'; known models: {', '.join(list_models())}; families: "
                          f"{', '.join(list_families())}; shell patterns such as 'resnet*' also work, all (test-only: "
                          f"{', '.join(sorted(set(list_models(include_test_only=True)) - set(list_models())))})"),
    ({"batch_sizes": ["8", "0"]}, "--batch-sizes: must be >= 1, got 0"),
    ({"batch_sizes": ["eight"]}, "--batch-sizes: expected a whole number, got 'eight'"),
    ({"dtype": ["float64"]}, "--dtype: unknown value 'float64'; choose from float32, float16, bfloat16"),
    ({"framework": "mxnet"}, "--framework: unknown value 'mxnet'; choose from torch, jax, both (pytorch = torch, flax = jax)"),
    ({"device": "tpu"}, "--device: unknown value 'tpu'; choose from auto, cpu, cuda"),
    ({"rounds": "0"}, "--rounds: must be >= 1, got 0"),
    ({"warmup": "-1"}, "--warmup: must be >= 0, got -1"),
    ({"threads": "0"}, "--threads: must be >= 1, got 0"),
]
DEFAULT_MATRIX_OPTIONS = dict(model=None, framework="both", device="auto", batch_sizes=None, dtype=None,
                              rounds="5", warmup="1", threads=None)


@pytest.mark.parametrize("bad, message", BAD_MATRIX_OPTIONS)
def test_option_checks_are_plain_functions_raising_one_line(bad, message):
    with pytest.raises(OptionError) as info:
        parse_matrix_options(**{**DEFAULT_MATRIX_OPTIONS, **bad})
    assert str(info.value) == message


def test_plain_option_parsing_gives_the_defaults_and_accepts_pytorch():
    options = parse_matrix_options(**DEFAULT_MATRIX_OPTIONS)
    assert (options.models, options.frameworks, options.batch_sizes, options.dtypes) == (
        ["resnet50", "vit_b_16"], ("torch", "jax"), [1, 8], ["float32"])
    assert parse_matrix_options(**{**DEFAULT_MATRIX_OPTIONS, "framework": "pytorch"}).frameworks == ("torch",)
    assert parse_matrix_options(**{**DEFAULT_MATRIX_OPTIONS, "model": ["all"]}).models == list_models()


def test_pretrained_without_a_weights_file_names_where_it_looked(tmp_path):
    env = {"TORCH_HOME": str(tmp_path / "torch"), "VISIONBENCH_WEIGHTS_DIR": str(tmp_path / "weights")}
    result = run_pytest("--pretrained", "--model", "resnet50", env=env)
    assert result.returncode == USAGE_ERROR
    (line,) = [line for line in result.stderr.splitlines() if line.strip()]
    assert line.startswith("ERROR: --pretrained: no weights file for 'resnet50'")
    assert str(tmp_path / "weights") in line and str(tmp_path / "torch") in line
    assert "resnet50-0676ba61.pth" in line  # the file torchvision's download would have written


def test_unknown_model_lists_known_names_including_test_only():
    result = run_pytest("--model", "resnet5O")
    assert "resnet50, resnext101_32x8d" in result.stderr and "resnet_tiny" in result.stderr
    assert "families: " in result.stderr and "shell patterns" in result.stderr


@pytest.mark.skipif(
    subprocess.run([sys.executable, "-c", "import torch, sys; sys.exit(torch.cuda.is_available())"]).returncode == 1,
    reason="a CUDA device is visible, so --device cuda is valid here",
)
def test_device_cuda_without_gpu_is_a_usage_error():
    result = run_pytest("--device", "cuda")
    assert result.returncode == USAGE_ERROR
    assert "--device cuda: no CUDA device is visible" in result.stderr


def test_default_matrix_ids():
    result = run_pytest()
    assert result.returncode == 0, result.stderr
    ids = [line.split("[", 1)[1].rstrip("]") for line in result.stdout.splitlines() if "test_forward[" in line]
    assert ids == [
        f"{model}-{fw}-cpu-bs{bs}-float32"
        for model in ("resnet50", "vit_b_16")
        for bs in (1, 8)
        for fw in ("torch", "jax")
    ]


def test_options_narrow_the_matrix():
    result = run_pytest("--model", "vit_tiny", "resnet_tiny", "--framework", "jax",
                        "--batch-sizes", "2", "3", "--dtype", "bfloat16", "float32")
    assert result.returncode == 0, result.stderr
    ids = sorted(line.split("[", 1)[1].rstrip("]") for line in result.stdout.splitlines() if "test_forward[" in line)
    assert ids == sorted(
        f"{m}-jax-cpu-bs{b}-{d}" for m in ("vit_tiny", "resnet_tiny") for b in (2, 3) for d in ("bfloat16", "float32")
    )


def test_model_all_expands_to_every_non_test_model():
    result = run_pytest("--model", "all", "--framework", "torch", "--batch-sizes", "1")
    models = {line.split("[", 1)[1].split("-")[0] for line in result.stdout.splitlines() if "test_forward[" in line}
    assert models == set(list_models()) and "resnet_tiny" not in models


@pytest.mark.timing  # runs a benchmark process and reads its record: alone, not beside xdist workers
def test_threads_option_limits_both_frameworks_and_is_recorded(tmp_path):
    out = tmp_path / "run.json"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "benchmarks", "-q", "-p", "no:cacheprovider", "--no-parity",
         "--model", "vit_tiny", "--batch-sizes", "1", "--rounds", "3", "--threads", "1", f"--benchmark-json={out}"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:]
    data = json.loads(out.read_text())
    assert {(b["extra_info"]["framework"], b["extra_info"]["threads"]) for b in data["benchmarks"]} == {("torch", 1), ("jax", 1)}
    assert data["machine_info"]["visionbench"]["cpu_affinity"] == 1
