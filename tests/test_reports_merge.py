"""Journals read like JSON, `reports merge`, and reports keyed by machine (issue 11)."""

import copy
import json
from pathlib import Path

import pytest

from benchmarks.journal import Journal
from reports import load, machine
from reports.__main__ import main
from reports.errors import EXIT_BAD_INPUT, EXIT_OK

BASELINE = Path(__file__).resolve().parents[1] / "reports" / "baselines" / "cpu-smoke.json"


@pytest.fixture
def run_doc():
    doc = json.loads(BASELINE.read_text())
    doc["visionbench"]["run_id"] = "run-a"
    return doc


def write(folder, doc, name):
    path = Path(folder) / name
    path.write_text(json.dumps(doc))
    return path


def ids(doc):
    return {load.benchmark_id(b["extra_info"]) for b in doc["benchmarks"]}


def split(doc, keep):
    """A copy of `doc` holding only the benchmarks whose id is in `keep`, as its own run."""
    part = copy.deepcopy(doc)
    part["benchmarks"] = [b for b in part["benchmarks"] if load.benchmark_id(b["extra_info"]) in keep]
    part["visionbench"]["run_id"] = "run-" + "-".join(sorted(keep))[:40]
    return part


def on_gpu(doc, name, count=1, run_id="run-gpu"):
    other = copy.deepcopy(doc)
    other["machine_info"]["visionbench"].update(gpu_name=name, gpu_count=str(count), gpu_driver="550.54")
    other["visionbench"]["run_id"] = run_id
    return other


def write_journal(path, doc, run_id, torn=False):
    journal = Journal(path, run_id)
    journal.start(doc["machine_info"], doc["commit_info"], {"schema_version": 1, "run_id": run_id, "config": {}})
    for bench in doc["benchmarks"]:
        journal.append_benchmark(load.benchmark_id(bench["extra_info"]), bench)
    for failure in doc["visionbench"]["failures"]:
        journal.append_failure(load.benchmark_id(failure), failure)
    journal.close()
    if torn:
        with open(path, "ab") as f:
            f.write(b'{"kind": "benchmark", "run": "' + run_id.encode() + b'", "id": "x", "bench')
    return path


def error_line(capsys, argv):
    assert main(argv) == EXIT_BAD_INPUT
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("reports: error: ")
    return lines[0]


def test_two_shards_merge_to_the_whole_run(tmp_path, capsys, run_doc):
    every = sorted(ids(run_doc))
    a = write(tmp_path, split(run_doc, set(every[::2])), "shard1.json")
    b = write(tmp_path, split(run_doc, set(every[1::2])), "shard2.json")
    assert main(["merge", str(a), str(b), "--out", str(tmp_path / "merged.json")]) == EXIT_OK
    assert "8 records from 2 runs on 1 machine(s)" in capsys.readouterr().out
    merged = json.loads((tmp_path / "merged.json").read_text())
    assert sorted(load.benchmark_id(b["extra_info"]) for b in merged["benchmarks"]) == every  # each once
    whole = write(tmp_path, run_doc, "whole.json")
    assert main(["table", str(whole), "--format", "json"]) == EXIT_OK
    expected = json.loads(capsys.readouterr().out)["comparison"]
    assert main(["table", str(tmp_path / "merged.json"), "--format", "json"]) == EXIT_OK
    assert json.loads(capsys.readouterr().out)["comparison"] == expected


def test_journal_reads_like_its_json_and_a_session_counts_once(tmp_path, capsys, run_doc):
    journal = write_journal(tmp_path / "run.jsonl", run_doc, "run-a")
    json_file = write(tmp_path, run_doc, "run.json")
    (from_journal,) = load.load_file(journal)
    (from_json,) = load.load_file(json_file)
    assert from_journal.records == from_json.records and from_journal.machine_key == from_json.machine_key
    runs = load.load_runs([tmp_path])  # the folder holds both: one session
    assert len(runs) == 1 and runs[0].kind == "json"
    assert main(["table", str(journal)]) == EXIT_OK
    assert "| resnet_tiny | cpu | 1 |" in capsys.readouterr().out


def test_journal_cut_short_by_a_kill_keeps_every_whole_line(tmp_path, capsys, run_doc):
    journal = write_journal(tmp_path / "run.jsonl", run_doc, "run-a", torn=True)
    (run,) = load.load_file(journal)
    assert len(run.records) == len(run_doc["benchmarks"])
    assert "the last line was cut short" in capsys.readouterr().err


def test_journal_with_a_bad_line_in_the_middle_is_one_error(tmp_path, capsys, run_doc):
    journal = write_journal(tmp_path / "run.jsonl", run_doc, "run-a")
    lines = journal.read_text().splitlines(keepends=True)
    lines.insert(2, "not json\n")
    journal.write_text("".join(lines))
    assert error_line(capsys, ["table", str(journal)]).endswith("run.jsonl: line 3 is not JSON (Expecting value: line 1 column 1 (char 0))")


def test_machine_key_ignores_the_host_name_but_not_the_gpu_driver_or_commit(run_doc):
    key = machine.machine_key(run_doc["machine_info"], run_doc["commit_info"], run_doc["visionbench"])
    renamed = copy.deepcopy(run_doc)
    renamed["machine_info"]["node"] = "node-17"
    assert machine.machine_key(renamed["machine_info"], renamed["commit_info"], renamed["visionbench"]) == key
    for change in (lambda d: d["machine_info"]["visionbench"].update(gpu_driver="999"),
                   lambda d: d["machine_info"]["visionbench"].update(gpu_count="4"),
                   lambda d: d["machine_info"]["visionbench"]["torch_versions"].update(torch="9.9"),
                   lambda d: d["commit_info"].update(id="f" * 40),
                   lambda d: d["visionbench"].update(config={"tf32": True})):
        other = copy.deepcopy(run_doc)
        change(other)
        assert machine.machine_key(other["machine_info"], other["commit_info"], other["visionbench"]) != key


def test_table_never_puts_two_machines_in_one_row_unless_asked(tmp_path, capsys, run_doc):
    torch_only = copy.deepcopy(run_doc)
    torch_only["benchmarks"] = [b for b in torch_only["benchmarks"] if b["extra_info"]["framework"] == "torch"]
    jax_only = on_gpu(run_doc, "NVIDIA H100 80GB HBM3", count=2)
    jax_only["benchmarks"] = [b for b in jax_only["benchmarks"] if b["extra_info"]["framework"] == "jax"]
    a, b = write(tmp_path, torch_only, "a.json"), write(tmp_path, jax_only, "b.json")
    assert main(["merge", str(a), str(b), "--out", str(tmp_path / "m.json")]) == EXIT_OK
    capsys.readouterr()
    assert main(["table", str(tmp_path / "m.json"), "--format", "json"]) == EXIT_OK
    rows = json.loads(capsys.readouterr().out)["comparison"]
    assert len(rows) == 8  # 4 combinations x 2 machines: no row holds both frameworks
    assert all(r["throughput_ratio"] is None for r in rows)
    assert {r["machine"] for r in rows} == {"AMD EPYC (2 cores) @e03117d", "2x NVIDIA H100 80GB HBM3 @e03117d"}
    assert main(["table", str(tmp_path / "m.json")]) == EXIT_OK
    markdown = capsys.readouterr().out
    assert "- 2x NVIDIA H100 80GB HBM3 @e03117d: GPU 2x NVIDIA H100 80GB HBM3 (driver 550.54)" in markdown
    assert main(["table", str(tmp_path / "m.json"), "--format", "json", "--across-machines"]) == EXIT_OK
    rows = json.loads(capsys.readouterr().out)["comparison"]
    assert len(rows) == 4 and all(r["throughput_ratio"] is not None for r in rows)


def test_overlapping_runs_of_one_machine_are_refused_unless_newest_is_asked(tmp_path, capsys, run_doc):
    a = write(tmp_path, run_doc, "a.json")
    later = copy.deepcopy(run_doc)
    later["visionbench"]["run_id"] = "run-b"
    later["datetime"] = "2099-01-01T00:00:00+00:00"
    later["benchmarks"][0]["extra_info"]["latency_p50_ms"] = 123.0
    b = write(tmp_path, later, "b.json")
    line = error_line(capsys, ["merge", str(a), str(b), "--out", str(tmp_path / "m.json")])
    assert line.startswith(f"reports: error: {b}: resnet_tiny-torch-cpu-bs1-float32 on machine AMD EPYC (2 cores) @e03117d "
                           f"is also in {a}; merge runs that do not overlap, or add --newest")
    assert not (tmp_path / "m.json").exists()
    assert main(["merge", str(a), str(b), "--out", str(tmp_path / "m.json"), "--newest"]) == EXIT_OK
    merged = json.loads((tmp_path / "m.json").read_text())
    assert len(merged["benchmarks"]) == 8
    assert {b["extra_info"]["run_id"] for b in merged["benchmarks"]} == {"run-b"}
    # The same combinations on another machine are no overlap.
    c = write(tmp_path, on_gpu(run_doc, "NVIDIA A100"), "c.json")
    assert main(["merge", str(a), str(c), "--out", str(tmp_path / "m2.json")]) == EXIT_OK


def test_merging_a_merged_file_with_one_of_its_inputs_counts_that_run_once(tmp_path, capsys, run_doc):
    a = write(tmp_path, run_doc, "a.json")
    c = write(tmp_path, on_gpu(run_doc, "NVIDIA A100"), "c.json")
    assert main(["merge", str(a), str(c), "--out", str(tmp_path / "m.json")]) == EXIT_OK
    assert main(["merge", str(tmp_path / "m.json"), str(a), "--out", str(tmp_path / "again.json")]) == EXIT_OK
    again = json.loads((tmp_path / "again.json").read_text())
    assert len(again["benchmarks"]) == 16
    assert len(again["visionbench"]["merged"]["machines"]) == 2


def test_records_of_two_schema_versions_are_not_merged(tmp_path, capsys, run_doc, monkeypatch):
    monkeypatch.setattr(load, "SUPPORTED_SCHEMA_VERSIONS", (1, 2))
    newer = on_gpu(run_doc, "NVIDIA A100")
    newer["visionbench"]["schema_version"] = 2
    for bench in newer["benchmarks"]:
        bench["extra_info"]["schema_version"] = 2
    a, b = write(tmp_path, run_doc, "a.json"), write(tmp_path, newer, "b.json")
    line = error_line(capsys, ["merge", str(a), str(b), "--out", str(tmp_path / "m.json")])
    assert line == f"reports: error: {b}: records of schema version 2, but {a} holds version 1; merge runs of one schema version"


def test_merged_file_with_a_record_of_an_unknown_run_is_refused(tmp_path, capsys, run_doc):
    a = write(tmp_path, run_doc, "a.json")
    assert main(["merge", str(a), "--out", str(tmp_path / "m.json")]) == EXIT_OK
    merged = json.loads((tmp_path / "m.json").read_text())
    merged["benchmarks"][0]["extra_info"]["run_id"] = "nobody"
    bad = write(tmp_path, merged, "bad.json")
    assert "run 'nobody' is not in the merged file's runs" in error_line(capsys, ["table", str(bad)])
