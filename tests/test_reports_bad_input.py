"""Bad input to `python -m reports`: one line naming the file and the problem, exit 3, never a pass."""

import copy
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from tests.reports_cli import write

from reports.__main__ import main
from reports.errors import EXIT_BAD_INPUT

ROOT = Path(__file__).resolve().parents[1]
BASELINE = ROOT / "reports" / "baselines" / "cpu-smoke.json"


@pytest.fixture
def run_doc():
    """A real (stored) run document to break in one place."""
    return json.loads(BASELINE.read_text())


def one_error_line(capsys, argv):
    code = main(argv)
    err = capsys.readouterr().err
    assert code == EXIT_BAD_INPUT
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("reports: error: ")
    return lines[0]


@pytest.mark.parametrize("command", [["table"], ["plot", "--out", "PLOTS"], ["html", "--out", "PAGE"]])
def test_every_reading_command_refuses_an_empty_file(tmp_path, capsys, command):
    path = write(tmp_path, "")
    argv = [command[0], str(path), *[a.replace("PLOTS", str(tmp_path / "p")).replace("PAGE", str(tmp_path / "r.html")) for a in command[1:]]]
    line = one_error_line(capsys, argv)
    assert line == f"reports: error: {path}: empty file"
    assert not (tmp_path / "p").exists() and not (tmp_path / "r.html").exists()


def test_truncated_file_is_named_truncated(tmp_path, capsys):
    path = write(tmp_path, BASELINE.read_text()[:500])
    assert "truncated JSON" in one_error_line(capsys, ["table", str(path)])


def test_non_json_file_says_not_valid_json_with_position(tmp_path, capsys):
    path = write(tmp_path, "name,p50\nresnet50,3.1\n")
    line = one_error_line(capsys, ["table", str(path)])
    assert f"{path}: not valid JSON" in line and "line 1" in line


def test_binary_file_is_not_json(tmp_path, capsys):
    path = tmp_path / "run.json"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    assert "not JSON" in one_error_line(capsys, ["table", str(path)])


def test_json_that_is_not_pytest_benchmark_is_foreign(tmp_path, capsys):
    path = write(tmp_path, {"results": []})
    assert "not a pytest-benchmark JSON file" in one_error_line(capsys, ["table", str(path)])


def test_pytest_benchmark_file_without_visionbench_records_is_foreign(tmp_path, capsys, run_doc):
    run_doc["benchmarks"][0]["extra_info"] = {"foo": 1}
    run_doc.pop("visionbench")
    line = one_error_line(capsys, ["table", str(write(tmp_path, run_doc))])
    assert "test_forward[resnet_tiny-torch-cpu-bs1-float32]: not a visionbench record" in line


@pytest.mark.parametrize("where", ["file", "record"])
def test_unknown_schema_version_is_refused(tmp_path, capsys, run_doc, where):
    if where == "file":
        run_doc["visionbench"]["schema_version"] = 2
    else:
        run_doc["benchmarks"][3]["extra_info"]["schema_version"] = 2
    line = one_error_line(capsys, ["table", str(write(tmp_path, run_doc))])
    assert "schema version 2, which this reports does not know (it reads 1)" in line


@pytest.mark.parametrize("value", [math.nan, math.inf, 0.0, -1.5, "fast", None])
def test_bad_latency_is_refused(tmp_path, capsys, run_doc, value):
    run_doc["benchmarks"][2]["extra_info"]["latency_p50_ms"] = value
    line = one_error_line(capsys, ["table", str(write(tmp_path, run_doc))])
    assert "resnet_tiny-torch-cpu-bs2-float32]: latency_p50_ms must be a finite number > 0" in line


def test_nan_written_as_json_literal_is_refused(tmp_path, capsys, run_doc):
    text = json.dumps(run_doc).replace('"throughput_ips": ', '"throughput_ips": NaN, "x": ', 1)
    assert "throughput_ips must be a finite number > 0, got nan" in one_error_line(capsys, ["table", str(write(tmp_path, text))])


def test_zero_sample_is_refused(tmp_path, capsys, run_doc):
    run_doc["benchmarks"][0]["extra_info"]["samples_ms"] = [1.0, 0.0, 1.2]
    assert "samples_ms must be finite numbers > 0" in one_error_line(capsys, ["table", str(write(tmp_path, run_doc))])


def test_negative_spread_is_refused(tmp_path, capsys, run_doc):
    run_doc["benchmarks"][0]["extra_info"]["latency_std_ms"] = -0.1
    assert "latency_std_ms must be a finite number >= 0" in one_error_line(capsys, ["table", str(write(tmp_path, run_doc))])


def test_duplicate_benchmark_id_is_refused(tmp_path, capsys, run_doc):
    run_doc["benchmarks"].append(copy.deepcopy(run_doc["benchmarks"][1]))
    line = one_error_line(capsys, ["table", str(write(tmp_path, run_doc))])
    assert line.endswith("duplicate benchmark id resnet_tiny-jax-cpu-bs1-float32")


def test_duplicate_across_files_of_a_diff_side_is_refused(tmp_path, capsys, run_doc):
    folder = tmp_path / "current"
    folder.mkdir()
    write(folder, run_doc, "a.json")
    write(folder, run_doc, "b.json")
    line = one_error_line(capsys, ["diff", str(BASELINE), str(folder)])
    assert "duplicate benchmark id" in line


def test_run_with_no_benchmarks_is_refused(tmp_path, capsys, run_doc):
    run_doc["benchmarks"] = []
    run_doc["visionbench"]["failures"] = []
    assert "no benchmarks in this file" in one_error_line(capsys, ["table", str(write(tmp_path, run_doc))])


def test_unknown_status_and_parity_are_refused(tmp_path, capsys, run_doc):
    run_doc["benchmarks"][0]["extra_info"]["status"] = "fine"
    assert "unknown status 'fine'" in one_error_line(capsys, ["table", str(write(tmp_path, run_doc))])
    run_doc["benchmarks"][0]["extra_info"]["status"] = "ok"
    run_doc["benchmarks"][1]["extra_info"]["parity"] = {"status": "maybe"}
    assert "parity status 'maybe'" in one_error_line(capsys, ["table", str(write(tmp_path, run_doc))])


def test_missing_path_and_empty_folder_are_refused(tmp_path, capsys):
    assert one_error_line(capsys, ["table", str(tmp_path / "nope.json")]).endswith("nope.json: no such file or folder")
    assert one_error_line(capsys, ["table", str(tmp_path)]).endswith("no benchmark JSON files in this folder")


def test_bad_baseline_fails_diff_with_exit_3_not_a_pass(tmp_path, capsys):
    broken = write(tmp_path, BASELINE.read_text()[:-40], "baseline.json")
    line = one_error_line(capsys, ["diff", str(broken), str(BASELINE)])
    assert str(broken) in line and "truncated JSON" in line


def test_usage_errors_exit_3_with_one_line(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["table", "x.json", "--format", "xml"])
    assert exc.value.code == EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("reports: error: argument --format")


def test_command_line_prints_no_traceback(tmp_path):
    path = write(tmp_path, '{"benchmarks": [')
    result = subprocess.run([sys.executable, "-m", "reports", "diff", str(BASELINE), str(path)],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == EXIT_BAD_INPUT
    assert result.stdout == ""
    assert result.stderr == f"reports: error: {path}: truncated JSON (the text ends early: Expecting value, line 1)\n"
