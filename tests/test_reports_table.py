"""`python -m reports table`: torch beside JAX per combination, ratios only where parity passed."""

import csv
import io
import json
from pathlib import Path

import pytest

from tests.reports_cli import table, write

from reports.__main__ import main
from reports.frame import CSV_COLUMNS

BASELINE = Path(__file__).resolve().parents[1] / "reports" / "baselines" / "cpu-smoke.json"
CONTRACT_COLUMNS = [
    "latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "latency_mean_ms", "latency_std_ms", "latency_min_ms",
    "latency_max_ms", "throughput_ips", "memory_mb", "compilation_time_ms", "framework", "model", "device",
    "device_type", "batch_size", "input_shape", "dtype", "timestamp", "git_commit",
]


def set_times(record, p50_ms):
    """Give a record a known median and throughput (other timings scaled alike)."""
    for key in ("latency_p50_ms", "latency_p90_ms", "latency_p95_ms", "latency_p99_ms", "latency_mean_ms",
                "latency_min_ms", "latency_max_ms"):
        record[key] = p50_ms
    record["throughput_ips"] = record["batch_size"] / (p50_ms / 1e3)


@pytest.fixture
def run_doc():
    doc = json.loads(BASELINE.read_text())
    for bench in doc["benchmarks"]:
        record = bench["extra_info"]
        set_times(record, 10.0 if record["framework"] == "torch" else 5.0)
    return doc




def find(doc, model, framework, batch):
    for bench in doc["benchmarks"]:
        r = bench["extra_info"]
        if (r["model"], r["framework"], r["batch_size"]) == (model, framework, batch):
            return r
    raise KeyError((model, framework, batch))


def test_markdown_puts_torch_beside_jax_with_their_throughput_ratio(tmp_path, capsys, run_doc):
    out = table(capsys, write(tmp_path, run_doc))
    header, _, *rows = out.splitlines()[:6]
    assert "torch p50 ms" in header and "JAX p50 ms" in header and "torch/JAX img/s" in header
    assert len(rows) == 4  # 2 models x 2 batch sizes; one row holds both frameworks
    cells = dict(zip([c.strip() for c in header.split("|")], [c.strip() for c in rows[0].split("|")]))
    assert (cells["model"], cells["bs"], cells["torch p50 ms"], cells["JAX p50 ms"]) == ("resnet_tiny", "1", "10.0", "5.00")
    assert cells["torch/JAX img/s"] == "0.50x"  # torch takes twice as long; timed apart: no interval


def test_ratio_is_blank_where_parity_did_not_pass(tmp_path, capsys, run_doc):
    find(run_doc, "vit_tiny", "jax", 2)["parity"] = {"status": "failed", "max_abs": 0.3}
    out = json.loads(table(capsys, write(tmp_path, run_doc), "--format", "json"))
    ratios = {(r["model"], r["batch_size"]): r["throughput_ratio"] for r in out["comparison"]}
    assert ratios[("vit_tiny", 2)] is None
    assert ratios[("vit_tiny", 1)] == pytest.approx(0.5)
    markdown = table(capsys, write(tmp_path, run_doc))
    vit2 = next(line for line in markdown.splitlines() if line.startswith("| vit_tiny | cpu | 2 |"))
    assert "| - | failed |" in vit2


def test_several_machines_become_a_column(tmp_path, capsys, run_doc):
    first = write(tmp_path, run_doc, "a.json")
    run_doc["machine_info"]["cpu_brand"] = "Other CPU"  # a machine is its hardware, software and commit
    second = write(tmp_path, run_doc, "b.json")
    assert "| machine |" not in table(capsys, first)
    out = table(capsys, first, second)
    assert out.splitlines()[0].startswith("| machine | model |")
    assert sum(line.startswith("| Other CPU (2 cores) @e03117d |") for line in out.splitlines()) == 4
    assert sum(line.startswith("| AMD EPYC (2 cores) @e03117d |") for line in out.splitlines()) == 4


def test_folder_of_runs_shows_the_newest_run_of_each_combination(tmp_path, capsys, run_doc):
    folder = tmp_path / ".benchmarks" / "Linux-CPython-3.11-64bit"
    folder.mkdir(parents=True)
    write(folder, run_doc, "0001_old.json")
    run_doc["datetime"] = "2099-01-01T00:00:00+00:00"
    set_times(find(run_doc, "resnet_tiny", "torch", 1), 40.0)
    write(folder, run_doc, "0002_new.json")
    out = json.loads(table(capsys, tmp_path / ".benchmarks", "--format", "json"))
    assert len(out["comparison"]) == 4
    assert out["comparison"][0]["torch_latency_p50_ms"] == 40.0
    assert len(out["records"]) == 16  # every record of both runs


def test_csv_keeps_the_contract_columns_one_row_per_record(tmp_path, capsys, run_doc):
    rows = list(csv.DictReader(io.StringIO(table(capsys, write(tmp_path, run_doc), "--format", "csv"))))
    assert list(rows[0])[: len(CONTRACT_COLUMNS)] == CONTRACT_COLUMNS == list(CSV_COLUMNS)
    assert len(rows) == 8
    jax = next(r for r in rows if r["framework"] == "jax" and r["model"] == "vit_tiny" and r["batch_size"] == "2")
    assert jax["input_shape"] == "2x32x32x3"  # JAX records are NHWC
    assert (jax["device"], jax["device_type"]) == ("AMD EPYC", "cpu")
    assert jax["git_commit"] == run_doc["commit_info"]["id"] and jax["timestamp"] == run_doc["datetime"]
    assert float(jax["compilation_time_ms"]) == pytest.approx(find(run_doc, "vit_tiny", "jax", 2)["compile_ms"])
    torch = next(r for r in rows if r["framework"] == "torch")
    assert torch["compilation_time_ms"] == ""  # eager torch has no compile step


def test_memory_column_prefers_the_device_peak(tmp_path, capsys, run_doc):
    record = find(run_doc, "resnet_tiny", "jax", 1)
    record["rss_peak_mb"] = 900.0
    record["jax_device_peak_mb"] = 123.0
    find(run_doc, "resnet_tiny", "torch", 1)["rss_peak_mb"] = 800.0
    rows = json.loads(table(capsys, write(tmp_path, run_doc), "--format", "json"))["records"]
    memory = {(r["framework"], r["model"], r["batch_size"]): r["memory_mb"] for r in rows}
    assert memory[("jax", "resnet_tiny", 1)] == 123.0
    assert memory[("torch", "resnet_tiny", 1)] == 800.0


def test_unmeasured_records_are_listed_with_their_reason(tmp_path, capsys, run_doc):
    failed = dict(find(run_doc, "vit_tiny", "jax", 2), status="oom", reason="run: RESOURCE_EXHAUSTED")
    run_doc["benchmarks"] = [b for b in run_doc["benchmarks"] if b["extra_info"] is not find(run_doc, "vit_tiny", "jax", 2)]
    run_doc["visionbench"]["failures"] = [failed]
    out = table(capsys, write(tmp_path, run_doc))
    assert "Not measured:" in out and "| oom | run: RESOURCE_EXHAUSTED |" in out
    vit2 = next(line for line in out.splitlines() if line.startswith("| vit_tiny | cpu | 2 |"))
    assert vit2.count("| - |") >= 2  # JAX cells empty, no ratio


def test_out_writes_the_table_to_a_file(tmp_path, capsys, run_doc):
    out = tmp_path / "deep" / "table.md"
    assert main(["table", str(write(tmp_path, run_doc)), "--out", str(out)]) == 0
    assert capsys.readouterr().out == ""
    assert out.read_text().startswith("| model | device | bs |")


def test_gpu_jax_memory_is_the_programs_buffers_not_the_process_peak():
    from reports.frame import peak_memory_mb

    record = {"device": "cuda", "xla_argument_mb": 100.0, "xla_output_mb": 1.0, "xla_temp_mb": 20.0,
              "jax_device_peak_mb": 932.0, "rss_peak_mb": 5000.0}
    assert peak_memory_mb(record) == 121.0
    assert peak_memory_mb({**record, "device": "cpu"}) == 932.0  # CPU: no per-program figure for torch to match
    assert peak_memory_mb({"device": "cuda", "torch_cuda_allocated_peak_mb": 141.0, "rss_peak_mb": 5000.0}) == 141.0


def test_interleaved_ratio_is_the_pooled_median_with_its_interval(tmp_path, capsys, run_doc):
    import math

    torch_r, jax_r = find(run_doc, "resnet_tiny", "torch", 1), find(run_doc, "resnet_tiny", "jax", 1)
    torch_r["ratio_log_rounds"] = [math.log(1.2)] * 6 + [math.log(1.25)] * 4
    jax_r["ratio_log_rounds"] = [math.log(1.2)] * 10
    vit_torch, vit_jax = find(run_doc, "vit_tiny", "torch", 1), find(run_doc, "vit_tiny", "jax", 1)
    vit_torch["ratio_log_rounds"] = [math.log(r) for r in (0.9, 1.1, 0.95, 1.05, 1.0, 1.02)]
    vit_jax["ratio_log_rounds"] = [math.log(r) for r in (1.08, 0.93, 0.97, 1.01)]
    out = table(capsys, write(tmp_path, run_doc))
    assert "1.20x [1.20, 1.20]" in out or "1.20x [1.20, 1.25]" in out  # the pooled median of 20 rounds, 1.2
    vit_row = next(line for line in out.splitlines() if line.startswith("| vit_tiny") and "| 1 |" in line)
    assert "no difference shown" in vit_row  # its interval holds 1
    data = json.loads(table(capsys, write(tmp_path, run_doc), "--format", "json"))
    res = next(r for r in data["comparison"] if (r["model"], r["batch_size"]) == ("resnet_tiny", 1))
    assert res["throughput_ratio"] == pytest.approx(1.2) and res["ratio_rounds"] == 20
    assert res["ratio_ci_low"] <= 1.2 <= res["ratio_ci_high"]
