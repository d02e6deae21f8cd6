"""Runs on a dataset (issue 12): train epochs and evaluation passes in both frameworks, fine-tuning, bad paths.

Everything runs on small generated datasets (tests/datagen.py) with a learnable signal.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests import datagen

ROOT = Path(__file__).resolve().parents[1]
USAGE_ERROR = 4


def _run(*args: str, module: str = "pytest", timeout: int = 900) -> subprocess.CompletedProcess:
    prefix = [sys.executable, "-m", "pytest", "benchmarks", "-p", "no:cacheprovider"] if module == "pytest" else \
        [sys.executable, "-m", module]
    return subprocess.run([*prefix, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ))


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data") / "shapes"
    datagen.make_image_folder(root, classes=4, per_class=(24, 8), size=40)
    datagen.corrupt(next((root / "val" / datagen.class_name(0)).iterdir()))
    return root


@pytest.fixture(scope="module")
def records(folder, tmp_path_factory) -> dict[str, dict]:
    out = tmp_path_factory.mktemp("run") / "out.json"
    result = _run("--mode", "train", "eval", "inference", "--data", str(folder), "--model", "resnet_tiny", "--batch-sizes", "8",
                  "--epochs", "2", "--data-workers", "1", f"--benchmark-json={out}", "-s")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    records = {b["extra_info"]["id"]: b["extra_info"] for b in json.loads(out.read_text())["benchmarks"]}
    records["_stdout"] = result.stdout
    return records


def test_train_epochs_are_timed_with_their_data_wait(records) -> None:
    for framework in ("torch", "jax"):
        rec = records[f"resnet_tiny-{framework}-cpu-bs8-float32-train@shapes"]
        assert rec["data"] == rec["dataset"] == "shapes" and rec["dataset_size"] == 96
        assert rec["epochs"] == 2 and rec["n_samples"] == 2 and len(rec["epoch_s"]) == 2
        assert rec["images_per_epoch"] == 96 and rec["steps_per_call"] == 12
        assert rec["throughput_ips"] == pytest.approx(96 / (rec["latency_p50_ms"] / 1e3))
        assert 0.0 <= rec["data_wait_fraction"] < 1.0
        assert rec["head"] == "seeded init, 4 classes"
    torch_rec, jax_rec = (records[f"resnet_tiny-{f}-cpu-bs8-float32-train@shapes"] for f in ("torch", "jax"))
    # The same batch from the same weights: the timed epochs' first losses agree. (Later steps
    # drift apart: SGD at lr 0.1 on a 4-class toy set is chaotic, float32 rounding grows.)
    assert jax_rec["first_step_losses"][0] == pytest.approx(torch_rec["first_step_losses"][0], rel=1e-5)
    assert jax_rec["first_step_losses"][1] != pytest.approx(jax_rec["first_step_losses"][0], rel=1e-5)  # epoch 2 moved on


def test_eval_counts_accuracy_and_the_port_agrees_within_a_tenth_of_a_point(records) -> None:
    torch_rec = records["resnet_tiny-torch-cpu-bs8-float32-eval@shapes"]
    jax_rec = records["resnet_tiny-jax-cpu-bs8-float32-eval@shapes"]
    for rec in (torch_rec, jax_rec):
        assert rec["eval_images"] == 31  # 32 validation images, one corrupt
        assert rec["skipped_images"] == 2  # the corrupt one, once per timed pass
        assert 0.0 <= rec["top1"] <= rec["top5"] == 100.0  # 4 classes: top-5 holds every class
    assert jax_rec["parity"]["check"] == "accuracy" and jax_rec["parity"]["status"] == "passed", jax_rec["parity"]
    assert jax_rec["accuracy_diff_to_torch"] == pytest.approx(jax_rec["top1"] - torch_rec["top1"])
    assert abs(jax_rec["accuracy_diff_to_torch"]) <= 0.1


def test_inference_on_a_dataset_times_a_batch_of_its_images(records) -> None:
    for framework in ("torch", "jax"):
        rec = records[f"resnet_tiny-{framework}-cpu-bs8-float32@shapes"]
        assert rec["status"] == "ok" and rec["data"] == "shapes" and rec["n_samples"] == 5  # --rounds, not --epochs
    assert records["resnet_tiny-jax-cpu-bs8-float32@shapes"]["parity"]["status"] == "passed"


def test_progress_lines_reach_the_terminal(records) -> None:
    assert "resnet_tiny-torch-cpu-bs8-float32-train@shapes epoch 2: 12/12 batches" in records["_stdout"]
    assert "resnet_tiny-jax-cpu-bs8-float32-eval@shapes eval: 4/4 batches" in records["_stdout"]


@pytest.mark.parametrize("args, expected", [
    (["--mode", "eval"], "--mode eval: accuracy needs images with labels; give --data PATH"),
    (["--mode", "train", "--data", ".", "--data-workers", "-1"], "--data-workers: must be >= 0, got -1"),
    (["--mode", "train", "--data", "/no/such/dataset"], "--data: no such folder '/no/such/dataset'; give the folder that holds the dataset"),
    (["--mode", "train", "--data", ".", "--epochs", "0"], "--epochs: must be >= 1, got 0"),
])
def test_bad_data_options_are_one_line_and_exit_code_4(args, expected) -> None:
    result = _run("--collect-only", "-q", *args)
    assert result.returncode == USAGE_ERROR, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"ERROR: {expected}"), lines


@pytest.fixture(scope="module")
def finetuned(folder, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp("finetune")
    result = _run("--model", "resnet_tiny", "--data", str(folder), "--epochs", "3", "--batch-size", "8",
                  "--freeze", "1", "--data-workers", "1", "--output-dir", str(out), module="benchmarks.finetune")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out, result


def test_finetuning_learns_in_both_frameworks_from_the_same_weights(finetuned) -> None:
    out, _ = finetuned
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [(r["framework"], r["epoch"]) for r in rows] == [(f, e) for f in ("torch", "jax") for e in (1, 2, 3)]
    final = {r["framework"]: r for r in rows if r["epoch"] == 3}
    for row in final.values():
        assert row["top1"] >= 75.0  # 4 classes: chance is 25%
        assert Path(row["checkpoint"]).is_file()
    assert abs(final["jax"]["top1"] - final["torch"]["top1"]) <= 100.0 / 31 + 1e-9  # at most one image apart
    losses = {f: [r["train_loss"] for r in rows if r["framework"] == f] for f in ("torch", "jax")}
    # Same weights, same batches: the first epoch's mean loss agrees; later epochs drift apart
    # as float32 rounding grows along SGD's trajectory (lr 0.1 on a toy set), but both learn.
    assert losses["jax"][0] == pytest.approx(losses["torch"][0], rel=1e-2)
    assert all(loss[-1] < loss[0] for loss in losses.values())


def test_finetune_records_are_read_by_reports(finetuned) -> None:
    out, _ = finetuned
    result = subprocess.run([sys.executable, "-m", "reports", "table", str(out / "records.jsonl")], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "resnet_tiny" in result.stdout and "shapes" in result.stdout


def test_a_saved_torch_checkpoint_evaluates_to_the_logged_accuracy(finetuned, folder, tmp_path) -> None:
    # The fine-tuned weights, loaded by --weights, give the logged top-1 in torch, and the
    # Flax port of them agrees.
    out, _ = finetuned
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    logged = next(r for r in rows if r["framework"] == "torch" and r["epoch"] == 3)
    result_json = tmp_path / "eval.json"
    result = _run("--mode", "eval", "--data", str(folder), "--model", "resnet_tiny", "--batch-sizes", "8",
                  "--weights", logged["checkpoint"], "--data-workers", "1", f"--benchmark-json={result_json}")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    records = {b["extra_info"]["framework"]: b["extra_info"] for b in json.loads(result_json.read_text())["benchmarks"]}
    assert records["torch"]["top1"] == pytest.approx(logged["top1"])
    assert records["torch"]["head"] == "from the weights file"
    assert records["jax"]["parity"]["status"] == "passed"


def test_finetune_bad_input_is_one_line(tmp_path) -> None:
    result = _run("--model", "resnet_tiny", "--data", str(tmp_path / "missing"), "--output-dir", str(tmp_path / "o"),
                  module="benchmarks.finetune")
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "--data:" in lines[0], lines
    assert not (tmp_path / "o").exists()  # nothing was started


def test_a_weights_file_with_another_head_keeps_its_backbone_and_gets_a_new_head(tmp_path) -> None:
    import torch

    from benchmarks.data_runs import reference_for_data
    from models.registry import get_spec
    from models.torch_models import WeightsMismatchError, build_torch_model

    torch.manual_seed(7)
    state = build_torch_model(get_spec("resnet_tiny"), 32).state_dict()  # 10 classes
    path = tmp_path / "tiny.pth"
    torch.save(state, path)
    model, label, head = reference_for_data("resnet_tiny", 4, True, str(path), 0, 32)
    assert head == "new: 4 classes, seeded init" and label == f"pretrained:{path}"
    own = model.state_dict()
    assert own["fc.weight"].shape == (4, own["fc.weight"].shape[1])
    assert all(torch.equal(own[k], v) for k, v in state.items() if not k.startswith("fc."))
    state["conv1.weight"] = state["conv1.weight"][:1]  # a backbone tensor of another shape is refused
    torch.save(state, path)
    with pytest.raises(WeightsMismatchError, match=r"1 of another shape \(e.g. conv1.weight"):
        reference_for_data("resnet_tiny", 4, True, str(path), 0, 33)
