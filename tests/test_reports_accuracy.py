"""Records on a dataset (issue 12): accuracy and data-wait columns, accuracy plots and their Pareto front, fine-tuning curves."""

import copy
import csv
import io
import json
from pathlib import Path

import pytest

from tests.reports_cli import table, write

from reports.__main__ import main
from reports.errors import EXIT_BAD_INPUT
from reports.pareto import pareto_front

BASELINE = Path(__file__).resolve().parents[1] / "reports" / "baselines" / "cpu-smoke.json"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# model: (GFLOPs per image, torch top-1, JAX top-1, torch img/s, JAX img/s). `dominated` is
# beaten by `small` on both axes (cheaper, more accurate), so it is on neither front.
MODELS = {
    "small": (0.5, 70.0, 70.0, 900.0, 1000.0),
    "dominated": (1.0, 65.0, 65.0, 500.0, 550.0),
    "medium": (2.0, 76.0, 75.9, 400.0, 450.0),
    "large": (8.0, 81.0, 81.05, 100.0, 90.0),
}
EVAL_BATCH = 64


def set_times(record, p50_ms, throughput_ips):
    for key in ("latency_p50_ms", "latency_p90_ms", "latency_p95_ms", "latency_p99_ms", "latency_mean_ms",
                "latency_min_ms", "latency_max_ms"):
        record[key] = p50_ms
    record["throughput_ips"] = throughput_ips


def eval_run(data="imagenet100", models=MODELS):
    """A run of eval records on `data`, one per model and framework, built from the stored baseline's records."""
    doc = json.loads(BASELINE.read_text())
    templates = {b["extra_info"]["framework"]: b for b in doc["benchmarks"] if b["extra_info"]["batch_size"] == 1
                 and b["extra_info"]["model"] == "resnet_tiny"}
    benchmarks = []
    for model, (gflops, torch_top1, jax_top1, torch_ips, jax_ips) in models.items():
        for framework, top1, ips in (("torch", torch_top1, torch_ips), ("jax", jax_top1, jax_ips)):
            bench = copy.deepcopy(templates[framework])
            info = bench["extra_info"]
            info.update(model=model, mode="eval", data=data, batch_size=EVAL_BATCH, flops=gflops * 1e9 * EVAL_BATCH,
                        top1=top1, top5=min(100.0, top1 + 15.0), eval_images=5000, input_size=32,
                        id=f"{model}-{framework}-cpu-bs{EVAL_BATCH}-float32-eval@{data}")
            set_times(info, 5000 / ips * 1e3, ips)  # one pass over the 5000 images
            if framework == "jax":
                info["accuracy_diff_to_torch"] = jax_top1 - torch_top1
                info["parity"] = {"check": "accuracy", "status": "passed", "top1_diff_pp": jax_top1 - torch_top1,
                                  "tolerance_pp": 0.1}
            else:
                info["parity"] = {"status": "not_applicable"}
            bench["name"] = f"test_eval[{info['id']}]"
            benchmarks.append(bench)
    doc["benchmarks"] = benchmarks
    return doc




def markdown_rows(text):
    """The comparison's rows as dicts of header -> cell."""
    lines = [line for line in text.splitlines() if line.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = []
    for line in lines[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) != len(header):
            break  # the next table (not measured) starts
        rows.append(dict(zip(header, cells)))
    return rows


# ---- the Pareto front --------------------------------------------------------------------


def test_pareto_front_keeps_points_no_other_beats_cheapest_first():
    points = [(8.0, 81.0), (0.5, 70.0), (1.0, 65.0), (2.0, 76.0), (4.0, 74.0)]
    assert pareto_front(points) == [1, 3, 0]  # (1, 65) and (4, 74) are each beaten by a cheaper, better point


def test_pareto_front_of_a_single_point_is_that_point():
    assert pareto_front([(3.0, 50.0)]) == [0]
    assert pareto_front([]) == []


def test_pareto_front_keeps_duplicates_and_drops_ties_that_lose_on_the_other_axis():
    points = [(1.0, 70.0), (1.0, 70.0), (1.0, 60.0), (2.0, 70.0), (0.5, 50.0)]
    # Equal points do not beat each other; equal cost with lower accuracy, or equal accuracy
    # at a higher cost, is beaten.
    assert pareto_front(points) == [4, 0, 1]


def test_pareto_front_ignores_points_without_a_figure():
    nan = float("nan")
    assert pareto_front([(nan, 99.0), (1.0, 60.0), (2.0, nan), (3.0, 70.0)]) == [1, 3]


# ---- tables ------------------------------------------------------------------------------


def test_markdown_shows_top1_top5_per_framework_and_their_difference(tmp_path, capsys):
    out = table(capsys, write(tmp_path, eval_run()))
    rows = {r["model"]: r for r in markdown_rows(out)}
    assert set(rows) == set(MODELS)  # one row per model: torch beside JAX
    medium = rows["medium"]
    assert (medium["dataset"], medium["mode"]) == ("imagenet100", "eval")
    assert (medium["torch top-1 %"], medium["JAX top-1 %"]) == ("76.00", "75.90")
    assert (medium["torch top-5 %"], medium["JAX top-5 %"]) == ("91.00", "90.90")
    assert medium["JAX-torch top-1 pp"] == "-0.10"
    assert (rows["large"]["JAX top-1 %"], rows["large"]["JAX-torch top-1 pp"]) == ("81.05", "+0.05")
    assert "torch data wait" not in out  # no train record on a dataset
    assert "percentage points" in out


def test_json_and_csv_carry_accuracy_and_dataset(tmp_path, capsys):
    path = write(tmp_path, eval_run())
    document = json.loads(table(capsys, path, "--format", "json"))
    large = next(r for r in document["comparison"] if r["model"] == "large")
    assert (large["data"], large["torch_top1"], large["jax_top1"]) == ("imagenet100", 81.0, 81.05)
    assert large["top1_diff_pp"] == pytest.approx(0.05)
    jax_record = next(r for r in document["records"] if (r["model"], r["framework"]) == ("large", "jax"))
    assert jax_record["accuracy_diff_to_torch"] == pytest.approx(0.05) and jax_record["eval_images"] == 5000
    rows = list(csv.DictReader(io.StringIO(table(capsys, path, "--format", "csv"))))
    torch_small = next(r for r in rows if (r["model"], r["framework"]) == ("small", "torch"))
    assert (torch_small["data"], float(torch_small["top1"]), float(torch_small["top5"])) == ("imagenet100", 70.0, 85.0)
    assert "data_wait_fraction" not in rows[0]  # no record fills it


def test_jax_record_states_the_difference_when_its_torch_record_is_missing(tmp_path, capsys):
    doc = eval_run()
    doc["benchmarks"] = [b for b in doc["benchmarks"] if (b["extra_info"]["model"], b["extra_info"]["framework"]) != ("medium", "torch")]
    rows = json.loads(table(capsys, write(tmp_path, doc), "--format", "json"))["comparison"]
    medium = next(r for r in rows if r["model"] == "medium")
    assert medium["torch_top1"] is None and medium["top1_diff_pp"] == pytest.approx(-0.1)


def test_two_datasets_never_share_a_row_or_replace_each_other(tmp_path, capsys):
    first = write(tmp_path, eval_run("imagenet100"), "a.json")
    other = eval_run("imagenette")
    other["datetime"] = "2099-01-01T00:00:00+00:00"  # newer: would replace the first run's records were data not in the key
    for bench in other["benchmarks"]:
        bench["extra_info"]["top1"] += 10.0
    second = write(tmp_path, other, "b.json")
    rows = json.loads(table(capsys, first, second, "--format", "json"))["comparison"]
    assert len(rows) == 2 * len(MODELS)
    small = {r["data"]: r["torch_top1"] for r in rows if r["model"] == "small"}
    assert small == {"imagenet100": 70.0, "imagenette": 80.0}


def test_one_run_may_hold_a_combination_on_two_datasets(tmp_path, capsys):
    doc = eval_run("imagenet100")
    doc["benchmarks"] += eval_run("imagenette")["benchmarks"]  # a duplicate id were the dataset not part of the key
    rows = markdown_rows(table(capsys, write(tmp_path, doc)))
    assert sorted({r["dataset"] for r in rows}) == ["imagenet100", "imagenette"]


def test_records_without_data_read_as_synthetic_and_keep_their_key():
    from reports.load import record_key

    old = {"model": "resnet_tiny", "framework": "jax", "device": "cpu", "batch_size": 2, "dtype": "float32",
           "mode": "inference", "input_shape": [2, 32, 32, 3]}
    assert record_key(old) == record_key({**old, "data": "synthetic"})
    assert record_key(old) != record_key({**old, "data": "imagenet100"})


def test_synthetic_and_dataset_records_of_one_model_get_a_dataset_column(tmp_path, capsys):
    doc = json.loads(BASELINE.read_text())  # synthetic records without a `data` field
    doc["benchmarks"] += eval_run()["benchmarks"]
    rows = markdown_rows(table(capsys, write(tmp_path, doc)))
    # Only the combinations measured: no empty row for a model at another dataset, batch or mode.
    assert len(rows) == 4 + len(MODELS) and all(r["device name"] == "AMD EPYC" for r in rows)
    assert {r["dataset"] for r in rows} == {"synthetic", "imagenet100"}
    synthetic = next(r for r in rows if r["dataset"] == "synthetic")
    assert synthetic["torch top-1 %"] == "-" and synthetic["mode"] == "inference"


def train_epochs_run(waits=(0.25, 0.05)):
    """Train records on a dataset: one per framework, timed per epoch, with their input-pipeline wait."""
    doc = json.loads(BASELINE.read_text())
    benchmarks = [b for b in doc["benchmarks"] if b["extra_info"]["model"] == "resnet_tiny" and b["extra_info"]["batch_size"] == 2]
    for bench, wait in zip(sorted(benchmarks, key=lambda b: b["extra_info"]["framework"] != "torch"), waits):
        info = bench["extra_info"]
        info.update(mode="train", data="imagenette", epochs=2, dataset_size=960, images_per_epoch=960,
                    data_wait_fraction=wait, epoch_s=[12.0, 11.0], id=bench["name"][bench["name"].index("[") + 1:-1] + "-train@imagenette")
        set_times(info, 11_500.0, 960 / 11.5)
    doc["benchmarks"] = benchmarks
    return doc


def test_train_epochs_show_their_data_wait_fraction(tmp_path, capsys):
    out = table(capsys, write(tmp_path, train_epochs_run()))
    (row,) = markdown_rows(out)
    assert (row["dataset"], row["mode"], row["torch data wait"], row["JAX data wait"]) == ("imagenette", "train", "0.250", "0.0500")
    assert "top-1" not in out.splitlines()[0]  # no accuracy in these records
    assert "fraction of a train epoch" in out


def test_runs_without_dataset_fields_read_exactly_as_before(tmp_path, capsys):
    """The stored baseline and the same records as new writers spell them ("data": "synthetic") give one output."""
    doc = json.loads(BASELINE.read_text())
    for bench in doc["benchmarks"]:
        bench["extra_info"]["data"] = "synthetic"
    spelt = write(tmp_path, doc)
    for fmt in ("markdown", "csv", "json"):
        plain = table(capsys, BASELINE, "--format", fmt)
        assert table(capsys, spelt, "--format", fmt).replace(str(spelt), str(BASELINE)) == plain
        for word in ("top1", "top-1", "dataset", "data_wait", "data wait", "imagenet"):
            assert word not in plain


# ---- plots -------------------------------------------------------------------------------


def test_plot_writes_the_accuracy_plots_when_records_carry_accuracy(tmp_path, capsys):
    from matplotlib.image import imread

    doc = json.loads(BASELINE.read_text())
    doc["benchmarks"] += eval_run()["benchmarks"]
    assert main(["plot", str(write(tmp_path, doc)), "--out", str(tmp_path / "plots")]) == 0
    printed = capsys.readouterr().out.splitlines()
    for name in ("accuracy_vs_flops", "accuracy_vs_latency"):
        path = tmp_path / "plots" / f"{name}.png"
        assert str(path) in printed
        assert path.read_bytes().startswith(PNG_SIGNATURE)
        image = imread(path)
        assert image.shape[1] >= 500 and image[..., :3].std() > 0.05
    assert (tmp_path / "plots" / "latency_vs_batch.png").exists()  # the other plots as before


def test_no_accuracy_plot_without_accuracy(tmp_path, capsys):
    for source in (BASELINE, write(tmp_path, train_epochs_run())):
        out = tmp_path / Path(source).stem
        assert main(["plot", str(source), "--out", str(out)]) == 0
        written = sorted(p.name for p in out.iterdir())
        assert "latency_vs_batch.png" in written and not [n for n in written if n.startswith("accuracy_")]
        assert sorted(Path(line).name for line in capsys.readouterr().out.splitlines()) == written


def _measured(tmp_path, doc):
    from reports import frame as frames
    from reports.load import load_runs

    return frames.measured(frames.records_frame(load_runs([write(tmp_path, doc)])))


def _fronts(fig):
    """framework label -> the (x, y) of its drawn Pareto step line."""
    (ax,) = [a for a in fig.axes if a.get_visible() and a.get_title()]
    return ax, {line.get_label().removesuffix(" Pareto front"): [v for xy in zip(line.get_xdata(), line.get_ydata()) for v in xy]
                for line in ax.get_lines() if line.get_label().endswith("Pareto front")}


def flat(points):
    return [v for xy in points for v in xy]


def test_accuracy_vs_flops_draws_each_frameworks_front_through_the_models_no_other_beats(tmp_path):
    from reports import plots

    fig = plots.accuracy_vs_flops(_measured(tmp_path, eval_run()))
    ax, fronts = _fronts(fig)
    expected = [(0.5, 70.0), (2.0, 76.0), (8.0, 81.0)]  # `dominated` is off the front
    assert fronts["PyTorch"] == pytest.approx(flat(expected))
    assert fronts["JAX/Flax"] == pytest.approx(flat([(0.5, 70.0), (2.0, 75.9), (8.0, 81.05)]))
    names = sorted(t.get_text() for t in ax.texts)
    assert names == sorted(MODELS)  # both ports at one FLOP count: each model named once
    assert ax.get_xscale() == "log"
    assert "imagenet100" in ax.get_title() and "float32" in ax.get_title() and f"bs{EVAL_BATCH}" in ax.get_title()
    assert "AMD EPYC" in ax.get_title()


def test_accuracy_vs_latency_uses_time_per_image(tmp_path):
    from reports import plots

    ax, fronts = _fronts(plots.accuracy_vs_latency(_measured(tmp_path, eval_run())))
    # JAX: small 1 ms/img, medium 2.2, large 11.1; torch: small 1.11, medium 2.5, large 10.
    assert fronts["JAX/Flax"] == pytest.approx(flat([(1.0, 70.0), (1000 / 450, 75.9), (1000 / 90, 81.05)]))
    assert fronts["PyTorch"] == pytest.approx(flat([(1000 / 900, 70.0), (2.5, 76.0), (10.0, 81.0)]))
    assert sorted(t.get_text() for t in ax.texts) == sorted(MODELS)  # each port's points close: one name, no overprint


def test_accuracy_plot_names_each_port_whose_points_lie_apart(tmp_path):
    from reports import plots

    models = {**MODELS, "large": (8.0, 81.0, 81.0, 100.0, 20.0)}  # JAX 5x slower: 50 ms/img against 10
    ax, _ = _fronts(plots.accuracy_vs_latency(_measured(tmp_path, eval_run(models=models))))
    names = [t.get_text() for t in ax.texts]
    assert names.count("large") == 2 and names.count("small") == 1


def test_accuracy_plot_borrows_flops_from_the_models_inference_record(tmp_path):
    from reports import plots

    doc = eval_run(models={"resnet_tiny": (0.0, 60.0, 60.0, 100.0, 100.0)})
    for bench in doc["benchmarks"]:
        del bench["extra_info"]["flops"]
    baseline = json.loads(BASELINE.read_text())
    inference = [b for b in baseline["benchmarks"] if b["extra_info"]["model"] == "resnet_tiny"]
    doc["benchmarks"] += inference
    def per_image(framework):  # torch and XLA count FLOPs differently: each port takes its own framework's
        info = next(b["extra_info"] for b in inference if b["extra_info"]["framework"] == framework)
        return info["flops"] / info["batch_size"] / 1e9

    assert per_image("torch") != pytest.approx(per_image("jax"))
    _, fronts = _fronts(plots.accuracy_vs_flops(_measured(tmp_path, doc)))
    assert fronts["PyTorch"] == pytest.approx([per_image("torch"), 60.0])
    assert fronts["JAX/Flax"] == pytest.approx([per_image("jax"), 60.0])


def test_accuracy_plots_return_nothing_without_accuracy(tmp_path):
    from reports import plots

    measured = _measured(tmp_path, json.loads(BASELINE.read_text()))
    assert plots.accuracy_vs_flops(measured) is None and plots.accuracy_vs_latency(measured) is None


# ---- fine-tuning logs --------------------------------------------------------------------


def finetune_rows(epochs=3):
    rows = []
    for framework, offset in (("torch", 0.0), ("jax", 0.3)):
        for epoch in range(1, epochs + 1):
            rows.append({"framework": framework, "epoch": epoch, "train_loss": 2.0 / epoch + offset / 10,
                         "top1": 60.0 + 8 * epoch + offset, "top5": 85.0 + epoch, "epoch_s": 30.0 - epoch - 5 * offset,
                         "images_per_s": 320.0 + 10 * epoch, "data_wait_fraction": 0.1 + offset / 3})
    return rows


def write_log(tmp_path, rows, name="finetune.jsonl"):
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_finetune_writes_the_curve_and_prints_the_epoch_table(tmp_path, capsys):
    log = write_log(tmp_path, finetune_rows())
    assert main(["finetune", str(log), "--out", str(tmp_path / "plots")]) == 0
    png = tmp_path / "plots" / "finetune_curve.png"
    assert png.read_bytes().startswith(PNG_SIGNATURE)
    out = capsys.readouterr().out
    assert out.splitlines()[-1] == str(png)
    rows = markdown_rows(out)
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    assert (rows[1]["torch top-1 %"], rows[1]["JAX top-1 %"]) == ("76.0", "76.3")
    assert (rows[0]["torch loss"], rows[0]["JAX loss"]) == ("2.00", "2.03")
    assert (rows[2]["torch epoch s"], rows[2]["JAX img/s"], rows[2]["JAX data wait"]) == ("27.0", "350", "0.200")


def test_finetune_curves_draw_top1_and_loss_per_framework():
    from reports.plots import finetune_curves

    fig = finetune_curves(finetune_rows())
    accuracy, loss = [ax for ax in fig.axes if ax.get_title()]
    lines = {line.get_label(): line for line in accuracy.get_lines()}
    assert list(lines["JAX/Flax"].get_xdata()) == [1, 2, 3]
    assert list(lines["PyTorch"].get_ydata()) == [68.0, 76.0, 84.0]
    assert list({line.get_label(): line for line in loss.get_lines()}["PyTorch"].get_ydata()) == [2.0, 1.0, 2 / 3]


def test_finetune_log_of_one_framework_shows_only_its_columns(tmp_path, capsys):
    log = write_log(tmp_path, [r for r in finetune_rows() if r["framework"] == "jax"])
    assert main(["finetune", str(log), "--out", str(tmp_path)]) == 0
    header = capsys.readouterr().out.splitlines()[0]
    assert "JAX top-1 %" in header and "torch" not in header


BAD_LOGS = {
    "missing": (None, "no such file"),
    "empty": ("\n", "empty file (no epoch logged)"),
    "not_json": (None, "line 2 is not JSON"),
    "not_an_object": ("[1, 2]\n", "line 1 is not a JSON object"),
    "missing_keys": (None, "line 2: missing key(s) top5, data_wait_fraction"),
    "bad_framework": (None, "line 1: framework 'mxnet' is not one of torch, jax"),
    "bad_epoch": (None, "line 3: epoch must be a whole number >= 1, got 0"),
    "bad_top1": (None, "line 1: top1 must be a finite number in [0, 100], got 140.0"),
    "repeated_epoch": (None, "line 4: torch epoch 1 again (first on line 1)"),
}


def _bad_log(tmp_path, case):
    text, problem = BAD_LOGS[case]
    path = tmp_path / f"{case}.jsonl"
    rows = finetune_rows(2)
    if case == "missing":
        return path, problem
    if text is None:
        if case == "missing_keys":
            del rows[1]["top5"], rows[1]["data_wait_fraction"]
        elif case == "bad_framework":
            rows[0]["framework"] = "mxnet"
        elif case == "bad_epoch":
            rows[2]["epoch"] = 0
        elif case == "bad_top1":
            rows[0]["top1"] = 140.0
        elif case == "repeated_epoch":
            rows[3] = dict(rows[0])
        lines = [json.dumps(r) for r in rows]
        if case == "not_json":
            lines[1] = "not json"
        text = "".join(line + "\n" for line in lines)
    path.write_text(text)
    return path, problem


@pytest.mark.parametrize("case", sorted(BAD_LOGS))
def test_bad_finetune_log_is_one_line_naming_file_and_line(tmp_path, capsys, case):
    path, problem = _bad_log(tmp_path, case)
    out = tmp_path / "plots"
    assert main(["finetune", str(path), "--out", str(out)]) == EXIT_BAD_INPUT
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"reports: error: {path}: {problem}")
    assert captured.err.count("\n") == 1
    assert not out.exists()  # nothing written


def test_finetune_log_cut_short_at_the_end_keeps_its_whole_lines(tmp_path, capsys):
    rows = finetune_rows(2)
    text = "".join(json.dumps(r) + "\n" for r in rows) + json.dumps(rows[0])[:25]  # a killed writer's last line
    log = tmp_path / "killed.jsonl"
    log.write_text(text)
    assert main(["finetune", str(log), "--out", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert "line 5, the last, was cut short" in captured.err
    assert len(markdown_rows(captured.out)) == 2
