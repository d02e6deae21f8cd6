"""`python -m reports gate` end to end: sides, workers, ABBA rounds, re-measure, verdict files, exit codes.

Most tests time fake sides: a checkout whose `benchmarks` package busy-waits a known time per
call, so they are fast and need no torch; one test drives the real worker on this checkout.
"""

import contextlib
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from reports import gate, gate_sides
from reports.__main__ import main
from reports.errors import EXIT_BAD_INPUT, EXIT_INVALID, EXIT_MISMATCH, EXIT_OK, BadInput
from reports.gate_sides import SideSpec, Worker

ROOT = Path(__file__).resolve().parents[1]

FAKE_WORKLOAD = textwrap.dedent(
    """
    import dataclasses, os, time, types

    CALL_S = {call_s!r}

    @dataclasses.dataclass(frozen=True)
    class Combination:
        model: str
        framework: str
        device: str
        batch_size: int
        dtype: str
        mode: str = "inference"

    @dataclasses.dataclass(frozen=True)
    class BuildOptions:
        threads: int

    class _Backend:
        def unsupported_reason(self, combo):
            return None

        def build_workload(self, combo, options):
            if combo.model == "broken":
                raise RuntimeError("this checkout cannot build broken")
            def run():
                end = time.perf_counter() + CALL_S
                while time.perf_counter() < end:
                    pass
            return types.SimpleNamespace(run=run)

    def get_backend(framework):
        print("noise a framework prints on stdout")
        return _Backend()
    """
)

# Real wall-clock timings decide these: run alone, never beside parallel workers (run.sh test).
pytestmark = pytest.mark.timing


def fake_checkout(folder: Path, call_s: float) -> Path:
    (folder / "benchmarks").mkdir(parents=True)
    (folder / "benchmarks" / "__init__.py").write_text("")
    (folder / "benchmarks" / "workload.py").write_text(FAKE_WORKLOAD.format(call_s=call_s))
    return folder


@pytest.fixture
def sides(tmp_path, monkeypatch):
    """Sides named by their call time in ms ('2.0', '2.4'): each a fake checkout run by this python."""
    roots = {}

    def parse_side(text, python):
        if text not in roots:
            roots[text] = fake_checkout(tmp_path / f"side-{text}", float(text) / 1e3)
        return SideSpec(text, python, None)

    @contextlib.contextmanager
    def checkout(side):
        yield roots[side.label]

    monkeypatch.setattr(gate, "parse_side", parse_side)
    monkeypatch.setattr(gate, "checkout", checkout)
    return roots


def run_gate(tmp_path, capsys, baseline, candidate, *extra):
    out = tmp_path / "verdicts"
    code = main(["gate", "--baseline", baseline, "--candidate", candidate, "--model", "fake", "--framework", "torch",
                 "--batch-sizes", "1", "--rounds", "12", "--calls", "5", "--min-round-ms", "0", "--warmup", "1", "--threads", "1",
                 "--out", str(out), *extra])
    return code, capsys.readouterr(), out


def test_same_code_on_both_sides_passes_without_remeasure(tmp_path, capsys, sides):
    code, printed, out = run_gate(tmp_path, capsys, "2.0", "2.0")
    assert code == EXIT_OK, printed.out
    verdict = json.loads((out / "fake-torch-cpu-bs1-float32.json").read_text())
    assert verdict["verdict"] == "PASS" and verdict["remeasured"] is False
    assert len(verdict["measurement"]["log_ratios"]) == 12
    assert verdict["design"]["order"] == "ABBA"
    assert json.loads((out / "gate.json").read_text())["verdict"] == "PASS"
    assert "re-measuring" not in printed.err


def test_twenty_percent_slower_candidate_is_remeasured_then_fails(tmp_path, capsys, sides):
    code, printed, out = run_gate(tmp_path, capsys, "2.0", "2.4")
    assert code == EXIT_MISMATCH, printed.out
    verdict = json.loads((out / "fake-torch-cpu-bs1-float32.json").read_text())
    assert verdict["verdict"] == "REGRESSION" and verdict["remeasured"] is True
    assert verdict["first_measurement"]["verdict"] == "REGRESSION"
    assert verdict["measurement"]["slowdown"] == pytest.approx(0.2, abs=0.08)
    assert "re-measuring fake-torch-cpu-bs1-float32 with fresh workers" in printed.err
    assert "| fake-torch-cpu-bs1-float32 | REGRESSION |" in printed.out


def test_too_few_rounds_is_invalid(tmp_path, capsys, sides):
    code, printed, out = run_gate(tmp_path, capsys, "2.0", "2.4", "--rounds", "6")
    assert code == EXIT_INVALID
    assert "only 6 rounds" in json.loads((out / "fake-torch-cpu-bs1-float32.json").read_text())["reasons"][0]


def test_side_that_cannot_build_is_bad_input_naming_the_side(tmp_path, capsys, sides):
    code = main(["gate", "--baseline", "2.0", "--candidate", "2.0", "--model", "broken", "--framework", "torch",
                 "--rounds", "10", "--threads", "1", "--out", str(tmp_path / "v")])
    last = capsys.readouterr().err.splitlines()[-1]  # after the progress lines
    assert code == EXIT_BAD_INPUT
    assert last.startswith("reports: error: gate: 2.0 (working tree") and last.endswith("cannot build broken")
    assert not (tmp_path / "v").exists()


@pytest.mark.parametrize(("argv", "problem"), [
    (["--rounds", "0"], "--rounds: must be >= 1, got 0"),
    (["--calls", "2"], "--calls: must be >= 3, got 2"),
    (["--baseline", "no-such-ref-anywhere"], "no-such-ref-anywhere: neither a git ref of this repository nor a python executable"),
])
def test_bad_gate_arguments_exit_3_with_one_line(capsys, argv, problem):
    assert main(["gate", *argv]) == EXIT_BAD_INPUT
    assert capsys.readouterr().err == f"reports: error: {problem}\n"


def test_short_calls_get_enough_calls_to_fill_a_round():
    from reports.gate_worker import calls_for, parse_benchmark_id

    assert calls_for(0.020, 10, 0.100) == 10  # 10 x 20 ms already fills 100 ms
    assert calls_for(0.0003, 10, 0.100) == 334  # a 0.3 ms call: 334 calls make the round
    assert calls_for(1e-9, 10, 1.0, most=500) == 500
    assert parse_benchmark_id("deit_small_patch16_224-jax-cuda-bs32-bfloat16") == {
        "model": "deit_small_patch16_224", "framework": "jax", "device": "cuda", "batch": 32, "dtype": "bfloat16"}


def test_sides_are_refs_pythons_or_the_working_tree(tmp_path):
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    assert gate_sides.parse_side("HEAD", "py") == SideSpec("HEAD", "py", head)
    assert gate_sides.parse_side(".", "py") == SideSpec(".", "py", None)
    assert gate_sides.parse_side(sys.executable, "py") == SideSpec(sys.executable, sys.executable, None)
    plain = tmp_path / "python"
    plain.write_text("")
    with pytest.raises(BadInput, match="not executable"):
        gate_sides.parse_side(str(plain), "py")


def test_git_ref_side_is_checked_out_in_a_temporary_worktree_and_removed(tmp_path):
    def worktrees():
        out = subprocess.run(["git", "worktree", "list", "--porcelain"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
        return {line.split(" ", 1)[1] for line in out.splitlines() if line.startswith("worktree ")}

    before = worktrees()
    side = gate_sides.parse_side("HEAD", sys.executable)
    with gate_sides.checkout(side) as tree:
        assert str(tree) in worktrees()
        assert (tree / "benchmarks" / "workload.py").is_file()
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tree, capture_output=True, text=True, check=True).stdout.strip()
        assert head == side.commit
    assert not tree.exists()
    assert worktrees() == before


def test_real_worker_times_this_checkouts_benchmark():
    side = SideSpec(".", sys.executable, None)
    worker = Worker(side, ROOT, ["vit_tiny-torch-cpu-bs1-float32"], threads=1, warmup=1)
    try:
        samples = worker.time_round(3)
    finally:
        worker.close()
    assert list(samples) == ["vit_tiny-torch-cpu-bs1-float32"]
    assert len(samples["vit_tiny-torch-cpu-bs1-float32"]) == 3
    assert all(0 < s < 5 for s in samples["vit_tiny-torch-cpu-bs1-float32"])
    assert 0 < worker.timer_resolution_s < 1e-3

