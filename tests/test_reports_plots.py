"""`python -m reports plot` and `html`: real PNGs, and one page that needs nothing else."""

import base64
import json
import re
from pathlib import Path

from matplotlib.image import imread

from reports.__main__ import main

BASELINE = Path(__file__).resolve().parents[1] / "reports" / "baselines" / "cpu-smoke.json"
PLOTS = ("latency_vs_batch", "throughput_ratio", "memory_vs_batch", "latency_vs_flops")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_plot_writes_one_readable_png_per_view(tmp_path, capsys):
    assert main(["plot", str(BASELINE), "--out", str(tmp_path / "plots")]) == 0
    written = sorted(p.name for p in (tmp_path / "plots").iterdir())
    assert written == sorted(f"{name}.png" for name in PLOTS)
    for name in PLOTS:
        image = imread(tmp_path / "plots" / f"{name}.png")
        height, width = image.shape[:2]
        assert width >= 500 and height >= 300
        assert image[..., :3].std() > 0.05  # something is drawn, not a blank canvas


def test_plots_survive_a_run_without_memory_figures_or_jax(tmp_path, capsys):
    doc = json.loads(BASELINE.read_text())
    doc["benchmarks"] = [b for b in doc["benchmarks"] if b["extra_info"]["framework"] == "torch"]
    path = tmp_path / "torch_only.json"
    path.write_text(json.dumps(doc))
    assert main(["plot", str(path), "--out", str(tmp_path / "plots")]) == 0
    assert len(list((tmp_path / "plots").glob("*.png"))) == len(PLOTS)


def test_html_is_one_self_contained_page_with_tables_and_plots(tmp_path, capsys):
    page = tmp_path / "report.html"
    assert main(["html", str(BASELINE), "--out", str(page)]) == 0
    text = page.read_text()
    assert text.startswith("<!DOCTYPE html>")
    assert "<th>torch p50 ms</th>" in text and "<td>resnet_tiny</td>" in text
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    assert len(images) == len(PLOTS)
    assert all(base64.b64decode(data).startswith(PNG_SIGNATURE) for data in images)
    assert not re.search(r'(src|href)="(https?:)?//', text)  # nothing fetched from elsewhere


def test_run_where_nothing_was_measured_is_not_plotted_silently(tmp_path, capsys):
    doc = json.loads(BASELINE.read_text())
    doc["visionbench"]["failures"] = [dict(b["extra_info"], status="error", reason="build: boom") for b in doc["benchmarks"]]
    doc["benchmarks"] = []
    path = tmp_path / "all_failed.json"
    path.write_text(json.dumps(doc))
    assert main(["plot", str(path), "--out", str(tmp_path / "plots")]) == 3
    assert capsys.readouterr().err == (f"reports: error: {path}: nothing to plot: none of its 8 records was measured "
                                       "(see python -m reports table)\n")
    assert main(["html", str(path), "--out", str(tmp_path / "page.html")]) == 0
    page = (tmp_path / "page.html").read_text()
    assert "nothing to plot" in page and page.count("<td>build: boom</td>") == 8


def _size_sweep(tmp_path: Path) -> Path:
    """The baseline's records at two more input sizes, their latencies scaled by the pixel count."""
    doc = json.loads(BASELINE.read_text())
    swept = []
    for bench in doc["benchmarks"]:
        for size in (32, 48, 64):
            copy = json.loads(json.dumps(bench))
            info = copy["extra_info"]
            scale = (size / 32) ** 2
            info["input_size"] = size
            info["id"] = f"{info.get('id', bench['name'])}-{size}px"
            for key in ("latency_p50_ms", "latency_min_ms", "latency_p95_ms"):
                info[key] *= scale
            swept.append(copy)
    doc["benchmarks"] = swept
    path = tmp_path / "sweep.json"
    path.write_text(json.dumps(doc))
    return path


def test_input_size_sweep_gets_its_own_plot_and_other_runs_do_not(tmp_path, capsys):
    assert main(["plot", str(_size_sweep(tmp_path)), "--out", str(tmp_path / "plots")]) == 0
    image = imread(tmp_path / "plots" / "latency_vs_input_size.png")
    assert image.shape[1] >= 500 and image[..., :3].std() > 0.05
    assert main(["plot", str(BASELINE), "--out", str(tmp_path / "plain")]) == 0
    assert not (tmp_path / "plain" / "latency_vs_input_size.png").exists()


def test_input_size_plot_draws_one_panel_per_model_and_batch(tmp_path):
    from reports import frame as frames
    from reports import plots
    from reports.load import load_runs

    measured = frames.measured(frames.records_frame(load_runs([_size_sweep(tmp_path)])))
    assert sorted(measured["input_size"].unique()) == [32, 48, 64]
    fig = plots.latency_vs_input_size(measured)
    panels = [ax for ax in fig.axes if ax.get_visible() and ax.get_title()]
    expected = measured.groupby(["model", "batch_size"]).ngroups
    assert len(panels) == expected
    for ax in panels:
        for line in ax.get_lines():
            assert list(line.get_xdata()) == [32, 48, 64]
            y = list(line.get_ydata())
            assert y == sorted(y)  # latencies scaled with the pixel count rise with the size
