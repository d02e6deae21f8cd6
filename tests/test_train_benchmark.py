"""Train mode end to end on tiny models: options, ids, records with train figures and train-step parity."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
USAGE_ERROR = 4
ROUNDS = 3


def _pytest(*args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "benchmarks", "-p", "no:cacheprovider", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=dict(os.environ))


@pytest.mark.parametrize("args, expected", [
    (["--mode", "training"], "--mode: unknown value 'training'; choose from inference, train, eval"),
    (["--optimizer", "adam"], "--optimizer: unknown value 'adam'; choose from sgd, adamw"),
    (["--freeze", "all"], "--freeze: expected a number of stages (0, 1, 2, ...) or 'backbone', got 'all'"),
    (["--freeze", "-2"], "--freeze: must be >= 0 stages or 'backbone', got -2"),
])
def test_bad_train_option_is_one_line_and_exit_code_4(args, expected) -> None:
    result = _pytest("--collect-only", "-q", *args)
    assert result.returncode == USAGE_ERROR, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [f"ERROR: {expected}"]


def test_freezing_more_stages_than_a_model_has_skips_it_with_the_reason() -> None:
    result = _pytest("--mode", "train", "--model", "resnet_tiny", "vit_tiny", "--framework", "torch", "--freeze", "3",
                     "--batch-sizes", "2", "--benchmark-disable", "-rs")
    assert result.returncode == 0, result.stdout[-2000:]
    assert "vit_tiny has 2 stages; --freeze 3 needs more (use 0..2 or backbone)" in result.stdout
    assert "1 passed, 1 skipped" in result.stdout


@pytest.fixture(scope="module")
def records(tmp_path_factory) -> dict[str, dict]:
    out = tmp_path_factory.mktemp("train") / "out.json"
    result = _pytest("--mode", "train", "inference", "--model", "resnet_tiny", "vit_tiny", "--batch-sizes", "4",
                     "--rounds", str(ROUNDS), "--freeze", "1", "--optimizer", "adamw", f"--benchmark-json={out}")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return {b["extra_info"]["id"]: b["extra_info"] for b in json.loads(out.read_text())["benchmarks"]}


@pytest.mark.parametrize("model", ["resnet_tiny", "vit_tiny"])
def test_train_records_carry_the_step_figures(records, model) -> None:
    torch_rec, jax_rec = (records[f"{model}-{fw}-cpu-bs4-float32-train"] for fw in ("torch", "jax"))
    for rec in (torch_rec, jax_rec):
        assert rec["mode"] == "train" and rec["status"] == "ok"
        assert rec["optimizer"] == "adamw" and rec["freeze"] == 1 and rec["frozen_stages"] == 1
        assert 0 < rec["trainable_params"] < rec["params"]
        assert len(rec["train_losses"]) == ROUNDS and all(loss == loss for loss in rec["train_losses"])
        assert rec["latency_p50_ms"] > 0 and rec["throughput_ips"] > 0
    assert torch_rec["trainable_params"] == jax_rec["trainable_params"]
    assert torch_rec["params"] == jax_rec["params"]
    # forward + backward of the trainable part: more than the forward, at most three forwards
    forward = records[f"{model}-torch-cpu-bs4-float32"]["flops"]
    assert forward < torch_rec["flops"] <= 3 * forward
    assert all(torch_rec[f"step_{phase}_ms"] > 0 for phase in ("forward", "backward", "optimizer"))
    assert jax_rec["xla_temp_mb"] > records[f"{model}-jax-cpu-bs4-float32"]["xla_temp_mb"]
    parity = jax_rec["parity"]
    assert parity["check"] == "train_step" and parity["status"] == "passed", parity
    assert parity["optimizer"] == "adamw" and parity["freeze"] == 1
    assert torch_rec["parity"] == {"status": "not_applicable"}


def test_same_weights_give_the_same_losses_in_both_frameworks(records) -> None:
    # vit_tiny's steps are well conditioned: the timed steps' losses agree closely.
    torch_losses = records["vit_tiny-torch-cpu-bs4-float32-train"]["train_losses"]
    jax_losses = records["vit_tiny-jax-cpu-bs4-float32-train"]["train_losses"]
    assert jax_losses == pytest.approx(torch_losses, rel=1e-3)
