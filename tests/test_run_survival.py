"""Runs that survive: the journal, SIGTERM, SIGKILL, --resume, --shard, and --threads (issue 11).

The signal tests run the real matrix on tiny torch models in a subprocess and signal it
once its journal shows completed records; the plugin-only tests run pytest on fake
benchmarks (no framework), so they take about a second.
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from benchmarks import shard
from reports import journal as journals
from reports import load

ROOT = Path(__file__).resolve().parents[1]
USAGE_ERROR = 4
INTERRUPTED = 2  # pytest's exit code after Ctrl-C, and so after SIGTERM
TINY = ["--device", "cpu", "--model", "resnet_tiny", "vit_tiny", "--framework", "torch", "-p", "no:cacheprovider", "-q"]


def pytest_command(*args):
    return [sys.executable, "-m", "pytest", "benchmarks", *TINY, *args]


def measured_ids(journal):
    return [line["id"] for _, line in journals.read_lines(journal) if line["kind"] == "benchmark"]


def wait_for_records(process, journal, count, timeout=240):
    """Poll the journal until it holds `count` measured records; the process must still be running."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if journal.exists() and len(measured_ids(journal)) >= count:
            return
        assert process.poll() is None, f"the run ended early: {process.stdout.read()}"
        time.sleep(0.05)
    raise AssertionError(f"no {count} records in {journal} after {timeout} s")


def collect_ids(*args):
    result = subprocess.run([sys.executable, "-m", "pytest", "benchmarks", "--collect-only", "-q", "-p", "no:cacheprovider", *args],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return [line.split("[", 1)[1].rstrip("]") for line in result.stdout.splitlines() if "::test_forward[" in line]


@pytest.mark.timing  # watches a live run's journal in real time: run alone, not beside xdist workers
def test_sigterm_after_three_benchmarks_keeps_all_of_them(tmp_path):
    journal, out = tmp_path / "run.jsonl", tmp_path / "run.json"
    process = subprocess.Popen(pytest_command("--batch-sizes", "1", "2", "3", "4", "5", "6", "--rounds", "40",
                                              f"--journal={journal}", f"--benchmark-json={out}"),
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wait_for_records(process, journal, 3)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == INTERRUPTED, output
    assert "visionbench: stopped by SIGTERM" in output
    kept = measured_ids(journal)
    assert 3 <= len(kept) < 12, "the signal came after the run had finished: the test proved nothing"
    saved = json.loads(out.read_text())
    assert sorted(load.benchmark_id(b["extra_info"]) for b in saved["benchmarks"]) == sorted(kept)
    (run,) = load.load_file(out)  # every saved entry is a whole record: the one cut short is left out
    assert len(run.records) == len(kept)


@pytest.mark.timing  # watches a live run's journal in real time: run alone, not beside xdist workers
def test_sigkill_keeps_the_journal_and_resume_runs_only_the_rest(tmp_path):
    journal = tmp_path / "run.jsonl"
    options = ["--batch-sizes", "1", "2", "3", "--rounds", "40"]
    process = subprocess.Popen(pytest_command(*options, f"--journal={journal}"), cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wait_for_records(process, journal, 2)
    process.kill()
    process.communicate(timeout=60)
    before = measured_ids(journal)
    assert 2 <= len(before) < 6
    (run,) = load.load_file(journal)  # reports read the killed run's journal
    assert len(run.records) == len(before)
    result = subprocess.run(pytest_command(*options, "--rounds", "3", f"--resume={journal}"), cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"--resume: {len(before)} combination(s) already in {journal}, not run again" in result.stdout
    assert f"{len(before)} deselected" in result.stdout
    after = measured_ids(journal)
    assert after[:len(before)] == before
    assert sorted(after) == sorted(collect_ids(*TINY[:-3], *options))  # every combination, each once
    assert len(load.load_file(journal)) == 2  # two sessions: the killed one and the resumed one


@pytest.mark.timing  # runs two benchmark processes: alone, not beside xdist workers
def test_two_shards_measure_the_whole_matrix_once_and_merge(tmp_path):
    options = ["--batch-sizes", "1", "2", "--rounds", "2"]
    for index in (1, 2):
        # Shard 1 names its journal; shard 2's goes to its default place, beside the benchmark storage.
        journal = f"--journal={tmp_path / 's1.jsonl'}" if index == 1 else f"--benchmark-storage=file://{tmp_path / 'store'}"
        result = subprocess.run(pytest_command(*options, f"--shard={index}/2", f"--benchmark-json={tmp_path / f's{index}.json'}", journal),
                                cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stdout + result.stderr
    (default_journal,) = (tmp_path / "store").glob("*/journal_*.jsonl")
    assert f"visionbench: journal: {default_journal} (" in result.stdout
    merged = tmp_path / "merged.json"
    result = subprocess.run([sys.executable, "-m", "reports", "merge", str(tmp_path), "--out", str(merged)],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    ids = sorted(load.benchmark_id(b["extra_info"]) for b in json.loads(merged.read_text())["benchmarks"])
    assert ids == sorted(collect_ids(*TINY[:-3], *options))
    parts = [{load.benchmark_id(b["extra_info"]) for b in json.loads((tmp_path / f"s{i}.json").read_text())["benchmarks"]} for i in (1, 2)]
    assert parts[0] and parts[1] and not parts[0] & parts[1]


def test_shards_of_the_full_zoo_are_disjoint_balanced_and_cover_it():
    options = ["--model", "all", "--framework", "torch", "--batch-sizes", "1", "8", "32", "--device", "cpu"]
    whole = collect_ids(*options)
    parts = [collect_ids(*options, f"--shard={i}/3") for i in (1, 2, 3)]
    assert sorted(sum(parts, [])) == sorted(whole)
    assert all(set(a).isdisjoint(b) for i, a in enumerate(parts) for b in parts[i + 1:])
    assert all(parts)  # balanced by estimated cost, not by count: each shard gets some


class _Combo:
    def __init__(self, model, framework, batch):
        self.model, self.framework, self.batch_size = model, framework, batch

    @property
    def id(self):
        return f"{self.model}-{self.framework}-cpu-bs{self.batch_size}-float32"


def test_shard_split_is_deterministic_complete_and_balanced_by_cost():
    combos = [_Combo(m, f, b) for m in ("resnet50", "vit_b_16", "resnet_tiny", "vit_tiny") for f in ("torch", "jax") for b in (1, 4, 8)]
    costs = shard.costs_of(combos)
    assignment = shard.assign(costs, 3)
    assert assignment == shard.assign(dict(reversed(list(costs.items()))), 3)  # order of arrival does not matter
    assert set(assignment) == set(costs) and set(assignment.values()) == {1, 2, 3}
    loads = shard.loads(costs, 3)
    pairs: dict[str, float] = {}
    for combo_id, cost in costs.items():  # torch and JAX of a combination go together (interleaving)
        pairs[shard.pair_key(combo_id)] = pairs.get(shard.pair_key(combo_id), 0.0) + cost
    assert max(loads) <= max(1.05 * sum(loads) / 3, max(pairs.values()))
    round_robin = [sum(costs[i] for i in sorted(costs)[s::3]) for s in range(3)]
    assert max(round_robin) > 1.2 * sum(loads) / 3  # what balancing by cost is for
    assert shard.select(costs, 2, 3) == {i for i, s in assignment.items() if s == 2}


@pytest.mark.parametrize("text", ["0/2", "3/2", "1/0", "two", "1-2"])
def test_bad_shard_is_one_line_and_exit_code_4(text):
    result = subprocess.run([sys.executable, "-m", "pytest", "benchmarks", "--collect-only", "-q", "-p", "no:cacheprovider",
                             f"--shard={text}"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == USAGE_ERROR
    (line,) = [line for line in result.stderr.splitlines() if line.strip()]
    assert line.startswith("ERROR: --shard: expected I/N")


def test_resume_of_a_missing_or_foreign_journal_is_one_line(tmp_path):
    foreign = tmp_path / "notes.jsonl"
    foreign.write_text('{"hello": 1}\n')
    for path, expected in ((tmp_path / "nope.jsonl", "--resume: no such journal"),
                           (foreign, f"--resume: {foreign}: line 1 is not a visionbench journal line")):
        result = subprocess.run([sys.executable, "-m", "pytest", "benchmarks", "--collect-only", "-q", "-p", "no:cacheprovider",
                                 f"--resume={path}"], cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert result.returncode == USAGE_ERROR
        (line,) = [line for line in result.stderr.splitlines() if line.strip()]
        assert line.startswith(f"ERROR: {expected}")


def test_threads_beyond_the_usable_cores_is_one_line_and_exit_code_4():
    cores = len(os.sched_getaffinity(0))
    result = subprocess.run([sys.executable, "-m", "pytest", "benchmarks", "--collect-only", "-q", "-p", "no:cacheprovider",
                             f"--threads={cores + 1}"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == USAGE_ERROR
    (line,) = [line for line in result.stderr.splitlines() if line.strip()]
    assert line == (f"ERROR: --threads: {cores + 1} requested, but this process may use only {cores} core(s) "
                    f"(its CPU affinity); use --threads {cores} or fewer")


FAKE_CONFTEST = textwrap.dedent(
    """
    import json, pytest

    pytest_plugins = ["benchmarks.run_plugin"]
    BASELINE = json.load(open({baseline!r}))

    class Combo:
        def __init__(self, record):
            self.record, self.model, self.batch_size = record, record["model"], record["batch_size"]
            self.id = f"{{record['model']}}-{{record['framework']}}-cpu-bs{{record['batch_size']}}-float32"

    class Run:
        failures = []

    @pytest.fixture(scope="session")
    def bench_run():
        return Run()

    def pytest_generate_tests(metafunc):
        combos = [Combo(b["extra_info"]) for b in BASELINE["benchmarks"][:3]]
        metafunc.parametrize("combo", [pytest.param(c, id=c.id) for c in combos])
    """
)

FAKE_TEST = textwrap.dedent(
    """
    def test_forward(benchmark, bench_run, combo):
        if combo.record["framework"] == "jax":  # the second of the three fails, as a record
            failure = {**combo.record, "status": "error", "reason": "run: RuntimeError: boom"}
            bench_run.failures.append(failure)
            raise RuntimeError("boom")
        benchmark.pedantic(lambda: None, rounds=3)
        benchmark.extra_info.update(combo.record)
    """
)


def test_failure_records_are_journaled_as_they_happen(tmp_path):
    (tmp_path / "conftest.py").write_text(FAKE_CONFTEST.format(baseline=str(ROOT / "reports" / "baselines" / "cpu-smoke.json")))
    (tmp_path / "test_fake.py").write_text(FAKE_TEST)
    journal = tmp_path / "journal.jsonl"
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--journal={journal}"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 1, result.stdout + result.stderr  # the failing test fails
    lines = [line for _, line in journals.read_lines(journal)]
    assert [line["kind"] for line in lines] == ["header", "benchmark", "failure", "benchmark"]  # in the order they happened
    assert [line["id"] for line in lines[1:]] == [
        "resnet_tiny-torch-cpu-bs1-float32", "resnet_tiny-jax-cpu-bs1-float32", "resnet_tiny-torch-cpu-bs2-float32"]
    assert lines[2]["record"]["reason"] == "run: RuntimeError: boom"


def test_a_combination_in_both_frameworks_stays_in_one_shard_so_it_can_be_interleaved():
    combos = [_Combo(m, f, b) for m in ("resnet50", "vit_b_16", "resnet_tiny") for f in ("torch", "jax") for b in (1, 8)]
    assignment = shard.assign(shard.costs_of(combos), 2)
    for combo in combos:
        twin = combo.id.replace("-torch-", "-jax-") if combo.framework == "torch" else combo.id.replace("-jax-", "-torch-")
        assert assignment[combo.id] == assignment[twin]
    assert set(assignment.values()) == {1, 2}
