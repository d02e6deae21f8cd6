"""`python -m reports diff` against the stored CPU smoke baseline: what fails and what does not.

Each test edits a copy of reports/baselines/cpu-smoke.json as a "current" run, so a change
that alters params, FLOPs, status or parity is shown to fail CI's diff step.
"""

import copy
import json
from pathlib import Path

import pytest

from reports.__main__ import main
from reports.errors import EXIT_MISMATCH, EXIT_OK

BASELINE = Path(__file__).resolve().parents[1] / "reports" / "baselines" / "cpu-smoke.json"
SMOKE_IDS = {
    f"{model}-{framework}-cpu-bs{batch}-float32"
    for model in ("resnet_tiny", "vit_tiny") for framework in ("torch", "jax") for batch in (1, 2)
}


@pytest.fixture
def current():
    return json.loads(BASELINE.read_text())


def record(doc, name):
    for bench in doc["benchmarks"]:
        r = bench["extra_info"]
        if f"{r['model']}-{r['framework']}-{r['device']}-bs{r['batch_size']}-{r['dtype']}" == name:
            return r
    raise KeyError(name)


def diff(tmp_path, capsys, doc):
    path = tmp_path / "current.json"
    path.write_text(json.dumps(doc))
    code = main(["diff", str(BASELINE), str(path)])
    return code, capsys.readouterr().out


def row(out, name):
    return next(line for line in out.splitlines() if line.startswith(f"| {name} |"))


def test_stored_baseline_is_the_ci_smoke_matrix():
    doc = json.loads(BASELINE.read_text())
    names = {b["name"].removeprefix("test_forward[").removesuffix("]") for b in doc["benchmarks"]}
    assert names == SMOKE_IDS
    assert all(b["extra_info"]["status"] == "ok" for b in doc["benchmarks"])
    assert {record(doc, n)["parity"]["status"] for n in SMOKE_IDS if "-jax-" in n} == {"passed"}


def test_identical_run_passes(tmp_path, capsys, current):
    code, out = diff(tmp_path, capsys, current)
    assert code == EXIT_OK
    assert "diff passed: 8 match, 0 mismatch, 0 missing, 0 new" in out


def test_timings_are_shown_as_ratios_and_never_gated(tmp_path, capsys, current):
    record(current, "vit_tiny-torch-cpu-bs1-float32")["latency_p50_ms"] *= 3
    code, out = diff(tmp_path, capsys, current)
    assert code == EXIT_OK
    assert "| 3.00x |" in row(out, "vit_tiny-torch-cpu-bs1-float32")


@pytest.mark.parametrize(
    ("name", "edit", "detail"),
    [
        ("resnet_tiny-torch-cpu-bs1-float32", lambda r: r.update(params=r["params"] + 1), "params 8036426 -> 8036427"),
        ("vit_tiny-jax-cpu-bs2-float32", lambda r: r.update(flops=r["flops"] * 1.05), "flops"),
        ("resnet_tiny-jax-cpu-bs2-float32", lambda r: r.update(status="error", reason="build: RuntimeError: boom"),
         "status ok -> error (build: RuntimeError: boom)"),
        ("vit_tiny-jax-cpu-bs1-float32", lambda r: r["parity"].update(status="failed"), "parity passed -> failed"),
        ("vit_tiny-jax-cpu-bs1-float32", lambda r: r["parity"].update(status="not_checked"), "parity passed -> not_checked"),
        ("resnet_tiny-jax-cpu-bs1-float32", lambda r: r["parity"].update(max_abs=3e-3), "parity_max_abs"),
        ("resnet_tiny-torch-cpu-bs2-float32", lambda r: r.update(input_shape=[2, 32, 32, 3]), "input_shape"),
    ],
)
def test_changed_deterministic_figure_fails(tmp_path, capsys, current, name, edit, detail):
    edit(record(current, name))
    code, out = diff(tmp_path, capsys, current)
    assert code == EXIT_MISMATCH
    assert "MISMATCH" in row(out, name) and detail in row(out, name)
    assert "diff FAILED: 7 match, 1 mismatch" in out


def test_flops_within_tolerance_and_smaller_parity_error_pass(tmp_path, capsys, current):
    record(current, "vit_tiny-jax-cpu-bs2-float32")["flops"] *= 1.01  # under the 2% rel_tol
    record(current, "resnet_tiny-jax-cpu-bs1-float32")["parity"]["max_abs"] = 1e-9  # better is fine
    record(current, "vit_tiny-jax-cpu-bs1-float32")["parity"]["max_abs"] *= 5  # float noise of another CPU
    code, out = diff(tmp_path, capsys, current)
    assert code == EXIT_OK, out


def test_failure_record_in_current_run_fails_as_a_status_change(tmp_path, capsys, current):
    failed = record(current, "vit_tiny-torch-cpu-bs2-float32")
    current["benchmarks"] = [b for b in current["benchmarks"] if b["extra_info"] is not failed]
    current["visionbench"]["failures"] = [dict(failed, status="oom", reason="run: out of memory")]
    code, out = diff(tmp_path, capsys, current)
    assert code == EXIT_MISMATCH
    assert "status ok -> oom (run: out of memory)" in row(out, "vit_tiny-torch-cpu-bs2-float32")


def test_missing_benchmark_fails(tmp_path, capsys, current):
    current["benchmarks"] = [b for b in current["benchmarks"] if b["extra_info"]["model"] != "vit_tiny"]
    code, out = diff(tmp_path, capsys, current)
    assert code == EXIT_MISMATCH
    assert "| MISSING |" in row(out, "vit_tiny-jax-cpu-bs2-float32")
    assert "4 missing" in out


def test_new_benchmark_is_reported_and_passes(tmp_path, capsys, current):
    extra = copy.deepcopy(current["benchmarks"][0])
    extra["extra_info"]["batch_size"] = 4
    current["benchmarks"].append(extra)
    code, out = diff(tmp_path, capsys, current)
    assert code == EXIT_OK
    assert "| new |" in row(out, "resnet_tiny-torch-cpu-bs4-float32")
    assert "1 new" in out


def test_baseline_command_keeps_what_diff_needs_and_drops_samples(tmp_path, capsys, current):
    full = copy.deepcopy(current)
    for bench in full["benchmarks"]:
        bench["extra_info"]["samples_ms"] = [1.0, 2.0, 3.0]
    source, stored = tmp_path / "run.json", tmp_path / "baselines" / "new.json"
    source.write_text(json.dumps(full))
    assert main(["baseline", str(source), "--out", str(stored)]) == 0
    slim = json.loads(stored.read_text())
    assert all("samples_ms" not in b["extra_info"] for b in slim["benchmarks"])
    assert main(["diff", str(stored), str(source)]) == EXIT_OK
    record(full, "vit_tiny-jax-cpu-bs1-float32")["params"] += 10
    source.write_text(json.dumps(full))
    assert main(["diff", str(stored), str(source)]) == EXIT_MISMATCH


def test_records_from_before_input_sizes_and_configs_keep_their_key():
    from reports.load import record_key

    old = {"model": "resnet_tiny", "framework": "jax", "device": "cpu", "batch_size": 2, "dtype": "float32",
           "mode": "inference", "input_shape": [2, 32, 32, 3]}
    new = {**old, "input_size": 32, "config": "eager"}
    assert record_key(old) == record_key(new)
    assert record_key({**new, "input_size": 48}) != record_key(old)
    assert record_key({**new, "config": "compile"}) != record_key(old)
