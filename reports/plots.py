"""`python -m reports plot`: PNG figures of latency, throughput ratio, memory, FLOPs and accuracy; fine-tuning curves."""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any, Callable, Sequence

import matplotlib

matplotlib.use("Agg")  # files only, never a window; before pyplot is imported

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import (FixedLocator, FuncFormatter, LogLocator, MaxNLocator, NullFormatter, NullLocator,  # noqa: E402
                               ScalarFormatter)

from reports import atomic  # noqa: E402
from reports import frame as frames  # noqa: E402
from reports.errors import BadInput  # noqa: E402
from reports.pareto import pareto_front  # noqa: E402

COLORS = {"torch": "#EE4C2C", "jax": "#3F7FBF"}  # PyTorch's orange, a JAX-ish blue
LABELS = {"torch": "PyTorch", "jax": "JAX/Flax"}
LINESTYLES = ("-", "--", ":", "-.")
MARKERS = ("o", "s", "^", "D", "v", "P", "X")
SERIES_FIELDS = ("machine", "device_type", "dtype", "mode")


def with_series(measured: pd.DataFrame) -> pd.DataFrame:
    """`measured` plus a `series` label naming what varies besides model, batch and framework."""
    varying = [f for f in SERIES_FIELDS if measured[f].nunique() > 1]
    out = measured.copy()
    out["series"] = out[varying].astype(str).agg(" ".join, axis=1) if varying else ""
    return out


def _framework_first(column: pd.Series) -> pd.Series:
    """Sort key putting torch before jax (as the tables do), other columns as they are."""
    return column.map({"torch": "0", "jax": "1"}).fillna(column) if column.name == "framework" else column


def _grid(n: int, width: float = 4.6, height: float = 3.6) -> tuple[Figure, list[plt.Axes]]:
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows + 0.6), squeeze=False, layout="constrained")
    flat = list(axes.flat)
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def _batch_axis(ax: plt.Axes, batches: list[int]) -> None:
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_locator(FixedLocator(batches))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(ScalarFormatter())
    if len(batches) == 1:
        ax.set_xlim(batches[0] / 1.5, batches[0] * 1.5)
    ax.set_xlabel("batch size")


def _readable_log_y(ax: plt.Axes, suffix: str = "") -> None:
    """Log y axis ticked at 1, 2, 5 x 10^k and labelled as plain numbers, not 4x10^1."""
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}{suffix}"))
    ax.yaxis.set_minor_formatter(NullFormatter())


def _figure_legend(fig: Figure, axes: list[plt.Axes]) -> None:
    """One legend for all panels, below them, each entry once."""
    entries: dict[str, object] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            entries.setdefault(label, handle)
    fig.legend(list(entries.values()), list(entries), loc="outside lower center",
               ncols=min(len(entries), max(1, int(fig.get_figwidth() // 3.2))), frameon=False)


def _per_model_lines(data: pd.DataFrame, value: str, ylabel: str, title: str, log_y: bool, band: tuple[str, str] | None) -> Figure:
    models = sorted(data["model"].unique())
    data = data.sort_values(["framework", "series"], key=_framework_first)
    fig, axes = _grid(len(models))
    series = sorted(data["series"].unique())
    for ax, model in zip(axes, models):
        rows = data[data["model"] == model]
        for (framework, name), line in rows.groupby(["framework", "series"], sort=False):
            line = line.sort_values("batch_size")
            style = LINESTYLES[series.index(name) % len(LINESTYLES)]
            label = f"{LABELS.get(framework, framework)} {name}".strip()
            ax.plot(line["batch_size"], line[value], style, marker="o", color=COLORS.get(framework), label=label)
            if band is not None:
                ax.fill_between(line["batch_size"], line[band[0]], line[band[1]], color=COLORS.get(framework), alpha=0.15, linewidth=0)
        _batch_axis(ax, sorted(rows["batch_size"].unique().tolist()))
        if log_y:
            _readable_log_y(ax)
        else:
            ax.set_ylim(0, float(rows[value].max()) * 1.12)
        ax.set_title(model)
        ax.set_ylabel(ylabel)
        ax.grid(True, which="major", alpha=0.3)
    _figure_legend(fig, axes)
    fig.suptitle(title)
    return fig


def latency_vs_batch(measured: pd.DataFrame) -> Figure:
    """Median latency per batch size, one panel per model, both frameworks."""
    return _per_model_lines(
        with_series(measured), "latency_p50_ms", "latency per call (ms, log)",
        "Median latency vs batch size (band: fastest call to p95)", True, ("latency_min_ms", "latency_p95_ms"),
    )


def memory_vs_batch(measured: pd.DataFrame) -> Figure:
    """Peak memory per batch size, one panel per model, both frameworks."""
    data = with_series(measured.dropna(subset=["memory_mb"]))
    if not len(data):
        return _empty("Peak memory vs batch size", "no memory figures in these records")
    cpu_only = (data["device_type"] == "cpu").all()
    note = " (CPU: process peak RSS over the whole run)" if cpu_only else " (GPU: framework's device peak)"
    return _per_model_lines(data, "memory_mb", "peak memory (MiB)", "Peak memory vs batch size" + note, False, None)


def throughput_ratio(comparison: pd.DataFrame) -> Figure:
    """torch img/s over JAX img/s per model and batch, where parity passed; 1 means equal speed."""
    table = comparison.copy()
    varying = [f for f in SERIES_FIELDS if table[f].nunique() > 1]
    table["label"] = table.apply(lambda r: "\n".join([r["model"], f"bs{r['batch_size']}", *(str(r[f]) for f in varying)]), axis=1)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(table) + 2), 4.6), layout="constrained")
    x = range(len(table))
    ratios = table["throughput_ratio"]
    shown = ratios.fillna(1.0)
    colors = [COLORS["torch"] if r >= 1 else COLORS["jax"] for r in shown]
    ax.bar(x, shown - 1.0, bottom=1.0, color=colors, width=0.6)  # from 1 to the ratio, on a log axis
    for i, (ratio, parity) in enumerate(zip(ratios, table["parity_status"])):
        if pd.isna(ratio):
            why = "one framework\nnot measured" if pd.isna(parity) else f"parity\n{parity}"
            ax.annotate(why, (i, 1.0), ha="center", va="bottom", fontsize="small", color="gray", xytext=(0, 3), textcoords="offset points")
        else:
            ax.annotate(f"{ratio:.2f}x" if ratio >= 0.095 else f"{ratio:.2g}x", (i, ratio), ha="center", va="bottom" if ratio >= 1 else "top",
                        fontsize="small", xytext=(0, 3 if ratio >= 1 else -3), textcoords="offset points")
    for i, (ratio, low, high) in enumerate(zip(ratios, table["ratio_ci_low"], table["ratio_ci_high"])):
        if pd.notna(ratio) and pd.notna(low):  # interleaved: the 95% interval of the median per-round ratio
            ax.errorbar(i, ratio, yerr=[[ratio - low], [high - ratio]], fmt="none", ecolor="black", capsize=4, linewidth=1)
            if low <= 1.0 <= high:
                ax.annotate("no difference shown", (i, high), ha="center", va="bottom", fontsize="x-small", color="dimgray",
                            xytext=(0, 3), textcoords="offset points")
    ax.axhline(1.0, color="black", linewidth=0.8)
    extreme = float(pd.concat([shown, table["ratio_ci_low"].dropna(), table["ratio_ci_high"].dropna()])
                    .map(lambda r: max(r, 1 / r)).max()) if len(shown) else 1.0
    limit = max(2.0, extreme * 1.6)
    ax.set_ylim(1 / limit, limit)
    _readable_log_y(ax, "x")
    ax.set_xticks(list(x), table["label"], fontsize="small")
    ax.set_ylabel("torch img/s ÷ JAX img/s (log scale)")
    ax.text(0.01, 0.98, "above 1: PyTorch faster", transform=ax.transAxes, va="top", color=COLORS["torch"], fontsize="small")
    ax.text(0.01, 0.02, "below 1: JAX faster", transform=ax.transAxes, va="bottom", color=COLORS["jax"], fontsize="small")
    ax.grid(True, axis="y", alpha=0.3)
    ax.set_title("Throughput ratio torch / JAX\n(only where the JAX port's parity passed;\nerror bars: 95% interval of interleaved runs)")
    return fig


def latency_vs_flops(measured: pd.DataFrame) -> Figure:
    """Median latency against FLOPs of the batch's forward: cost per unit of work."""
    data = with_series(measured.dropna(subset=["flops"]))
    if not len(data):
        return _empty("Latency vs FLOPs", "no FLOP counts in these records")
    fig, ax = plt.subplots(figsize=(8.0, 5.6), layout="constrained")
    models = sorted(data["model"].unique())
    series = sorted(data["series"].unique())
    data = data.sort_values(["framework", "model", "series"], key=_framework_first)
    for (framework, model, name), points in data.groupby(["framework", "model", "series"], sort=False):
        points = points.sort_values("flops")
        marker = MARKERS[models.index(model) % len(MARKERS)]
        style = LINESTYLES[series.index(name) % len(LINESTYLES)]
        label = f"{LABELS.get(framework, framework)} {model} {name}".strip()
        ax.plot(points["flops"], points["latency_p50_ms"], style, marker=marker, color=COLORS.get(framework), label=label, alpha=0.85)
        for _, p in points.iterrows():
            ax.annotate(f"bs{p['batch_size']}", (p["flops"], p["latency_p50_ms"]), fontsize="x-small",
                        xytext=(4, -3), textcoords="offset points", color="dimgray")
    ax.set_xscale("log")
    _readable_log_y(ax)
    ax.set_xlabel("FLOPs of one forward of the batch (log)")
    ax.set_ylabel("median latency (ms, log)")
    ax.grid(True, which="major", alpha=0.3)
    _figure_legend(fig, [ax])
    ax.set_title("Latency vs FLOPs of the batch (points: batch sizes)")
    return fig


def latency_vs_input_size(measured: pd.DataFrame) -> Figure | None:
    """Median latency per input size, one panel per model and batch, both frameworks; None without a size sweep."""
    data = measured.dropna(subset=["input_size"])
    swept = data.groupby("model")["input_size"].nunique()
    data = with_series(data[data["model"].isin(swept[swept > 1].index)])
    if not len(data):
        return None
    panels = sorted({(m, b) for m, b in zip(data["model"], data["batch_size"])})
    series = sorted(data["series"].unique())
    fig, axes = _grid(len(panels))
    data = data.sort_values(["framework", "series"], key=_framework_first)
    for ax, (model, batch) in zip(axes, panels):
        rows = data[(data["model"] == model) & (data["batch_size"] == batch)]
        for (framework, name), line in rows.groupby(["framework", "series"], sort=False):
            line = line.sort_values("input_size")
            style = LINESTYLES[series.index(name) % len(LINESTYLES)]
            label = f"{LABELS.get(framework, framework)} {name}".strip()
            ax.plot(line["input_size"], line["latency_p50_ms"], style, marker="o", color=COLORS.get(framework), label=label)
            ax.fill_between(line["input_size"], line["latency_min_ms"], line["latency_p95_ms"], color=COLORS.get(framework),
                            alpha=0.15, linewidth=0)
        sizes = sorted(rows["input_size"].unique().tolist())
        ax.xaxis.set_major_locator(FixedLocator(sizes))
        ax.set_xlabel("input size (pixels per side)")
        ax.set_ylim(0, float(rows["latency_p95_ms"].max()) * 1.12)
        ax.set_ylabel("latency per call (ms)")
        ax.set_title(f"{model}, bs{batch}")
        ax.grid(True, which="major", alpha=0.3)
    _figure_legend(fig, axes)
    fig.suptitle("Median latency vs input size (band: fastest call to p95)")
    return fig


# Framework by colour and marker: JAX's open square stays visible over torch's dot where
# the two ports score the same (they run the same weights).
_ACCURACY_MARKERS = {"torch": dict(marker="o", markersize=7), "jax": dict(marker="s", markersize=11, fillstyle="none", markeredgewidth=1.6)}
_FRONT_STYLES = {"torch": "-", "jax": "--"}
# One panel per evaluation setting; accuracy and cost are compared only within it.
_ACCURACY_PANEL = ("machine", "data", "device", "device_type", "dtype", "batch_size", "config")


def _accuracy_points(measured: pd.DataFrame) -> pd.DataFrame:
    """The records with a top-1, plus their GFLOPs per image and ms per image.

    A record without its own FLOP count takes its model's (per image, at the same input
    size) from another record, e.g. an inference one, of its framework if there is one (the
    two count differently); ms per image is 1000 / img/s, since an eval record's throughput
    counts images whatever its latency's unit.
    """
    data = measured[measured["top1"].notna()].copy()
    known = measured.assign(per_image=pd.to_numeric(measured["flops"], errors="coerce") / measured["batch_size"])
    known = known.dropna(subset=["per_image"])
    same = known.drop_duplicates(["model", "input_size", "framework"]).set_index(["model", "input_size", "framework"])["per_image"]
    other = known.drop_duplicates(["model", "input_size"]).set_index(["model", "input_size"])["per_image"]
    borrowed = [same.get((m, s, f), other.get((m, s), float("nan"))) for m, s, f in zip(data["model"], data["input_size"], data["framework"])]
    own = pd.to_numeric(data["flops"], errors="coerce") / data["batch_size"]
    data["gflops_per_image"] = own.fillna(pd.Series(borrowed, index=data.index, dtype=float)) / 1e9
    data["ms_per_image"] = 1000.0 / data["throughput_ips"]
    data["top1"] = data["top1"].astype(float)
    return data


def _panel_title(key: dict[str, Any], varying: list[str]) -> str:
    device = key["device"] if key["device"] == key["device_type"] else f"{key['device']} ({key['device_type']})"
    parts = [str(key["data"]), device, str(key["dtype"]), f"bs{key['batch_size']}"]
    if key["config"] != "eager":
        parts.append(str(key["config"]))
    if "machine" in varying:
        parts.insert(0, str(key["machine"]))
    return " · ".join(parts)


def _log_axis_x(ax: plt.Axes, values: pd.Series) -> None:
    """Log x axis ticked at 1, 2, 5 x 10^k and labelled as plain numbers, with room for the labels."""
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    low, high = float(values.min()), float(values.max())
    ax.set_xlim(low / 1.6, high * 2.2)  # the right margin holds the last model's name


def _name_models(ax: plt.Axes, rows: pd.DataFrame, cost: str) -> None:
    """Each model's name to the right of its points; once where its ports' points nearly coincide (same FLOPs, close speed)."""
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    near_x, near_y = 0.06 * math.log10(x1 / x0), 0.04 * (y1 - y0)  # a few per cent of the axes
    renderer = ax.figure.canvas.get_renderer()
    taken: list = []  # the boxes of the names placed so far, in pixels
    for model, points in rows.groupby("model", sort=False):
        named: list[tuple[float, float]] = []
        for x, y in sorted(zip(points[cost], points["top1"]), reverse=True):  # the rightmost first: its label is clear of the rest
            if any(abs(math.log10(x / nx)) < near_x and abs(y - ny) < near_y for nx, ny in named):
                continue
            named.append((x, y))
            # Above right, below right, above left, below left: the first that covers no other name.
            for dx, dy, ha in ((7, 5, "left"), (7, -13, "left"), (-7, 5, "right"), (-7, -13, "right")):
                label = ax.annotate(model, (x, y), fontsize="small", xytext=(dx, dy), textcoords="offset points", ha=ha)
                box = label.get_window_extent(renderer)
                if not any(box.overlaps(other) for other in taken) or dx < 0 and dy < 0:
                    break
                label.remove()
            taken.append(box)


def _accuracy_vs(measured: pd.DataFrame, cost: str, xlabel: str, title: str) -> Figure | None:
    data = _accuracy_points(measured).dropna(subset=[cost])
    if not len(data):
        return None
    varying = [f for f in _ACCURACY_PANEL if data[f].nunique() > 1]
    panels = list(data.groupby(list(_ACCURACY_PANEL), sort=True, dropna=False))
    fig, axes = _grid(len(panels), width=6.4, height=4.8)
    for ax, (values, rows) in zip(axes, panels):
        rows = rows.sort_values(["framework", "model"], key=_framework_first)
        for framework, points in rows.groupby("framework", sort=False):
            color = COLORS.get(framework)
            name = LABELS.get(framework, framework)
            ax.plot(points[cost], points["top1"], linestyle="none", color=color, label=name,
                    **_ACCURACY_MARKERS.get(framework, dict(marker="^", markersize=8)))
            front = points.iloc[pareto_front(list(zip(points[cost], points["top1"])))]
            ax.step(front[cost], front["top1"], where="post", color=color, linestyle=_FRONT_STYLES.get(framework, ":"),
                    linewidth=1.3, alpha=0.8, label=f"{name} Pareto front")
        _log_axis_x(ax, rows[cost])
        low, high = float(rows["top1"].min()), float(rows["top1"].max())
        pad = max(1.0, (high - low) * 0.12)
        ax.set_ylim(max(0.0, low - pad), high + pad)
        _name_models(ax, rows, cost)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("top-1 accuracy (%)")
        ax.set_title(_panel_title(dict(zip(_ACCURACY_PANEL, values)), varying))
        ax.grid(True, which="major", alpha=0.3)
    _figure_legend(fig, axes)
    fig.suptitle(title)
    return fig


def accuracy_vs_flops(measured: pd.DataFrame) -> Figure | None:
    """Top-1 against FLOPs per image, per model and framework, with each framework's Pareto front; None without accuracy."""
    return _accuracy_vs(measured, "gflops_per_image", "GFLOPs of one forward per image (log)",
                        "Top-1 accuracy vs FLOPs per image\n(step lines: each framework's Pareto front; up and left is better)")


def accuracy_vs_latency(measured: pd.DataFrame) -> Figure | None:
    """Top-1 against time per image (1000 / img/s), per model and framework, with each framework's Pareto front; None without accuracy."""
    return _accuracy_vs(measured, "ms_per_image", "ms per image, 1000 / img/s (log)",
                        "Top-1 accuracy vs time per image\n(step lines: each framework's Pareto front; up and left is better)")


def finetune_curves(rows: Sequence[dict[str, Any]]) -> Figure:
    """Top-1 and train loss per epoch of a fine-tuning log, one line per framework."""
    data = pd.DataFrame(list(rows)).sort_values(["framework", "epoch"], key=_framework_first)
    fig, (accuracy, loss) = plt.subplots(1, 2, figsize=(10.0, 4.4), layout="constrained")
    for framework, line in data.groupby("framework", sort=False):
        style = dict(color=COLORS.get(framework), label=LABELS.get(framework, framework),
                     **_ACCURACY_MARKERS.get(framework, dict(marker="^")))
        accuracy.plot(line["epoch"], line["top1"], linestyle=_FRONT_STYLES.get(framework, ":"), **style)
        loss.plot(line["epoch"], line["train_loss"], linestyle=_FRONT_STYLES.get(framework, ":"), **style)
    epochs = sorted(data["epoch"].unique().tolist())
    for ax, ylabel, title in ((accuracy, "top-1 accuracy (%)", "Top-1 after each epoch"),
                              (loss, "train loss", "Train loss per epoch")):
        ax.xaxis.set_major_locator(FixedLocator(epochs) if len(epochs) <= 20 else MaxNLocator(integer=True))
        if len(epochs) == 1:
            ax.set_xlim(epochs[0] - 1, epochs[0] + 1)
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
    _figure_legend(fig, [accuracy, loss])
    fig.suptitle("Fine-tuning: torch vs JAX/Flax")
    return fig


def _empty(title: str, message: str) -> Figure:
    fig, ax = plt.subplots(figsize=(6, 3), layout="constrained")
    ax.text(0.5, 0.5, message, ha="center", va="center")
    ax.set_axis_off()
    ax.set_title(title)
    return fig


# A plot that returns None has nothing to show for these records and is not written.
PLOTS: dict[str, Callable[[pd.DataFrame, pd.DataFrame], Figure | None]] = {
    "latency_vs_batch": lambda measured, comparison: latency_vs_batch(measured),
    "throughput_ratio": lambda measured, comparison: throughput_ratio(comparison),
    "memory_vs_batch": lambda measured, comparison: memory_vs_batch(measured),
    "latency_vs_flops": lambda measured, comparison: latency_vs_flops(measured),
    "latency_vs_input_size": lambda measured, comparison: latency_vs_input_size(measured),
    "accuracy_vs_flops": lambda measured, comparison: accuracy_vs_flops(measured),
    "accuracy_vs_latency": lambda measured, comparison: accuracy_vs_latency(measured),
}


def render_png(records: pd.DataFrame) -> dict[str, bytes]:
    """Every plot of `records` as PNG bytes, by name; none when no record was measured."""
    measured = frames.measured(records)
    if not len(measured):
        return {}
    comparison = frames.comparison(records)
    out = {}
    for name, make in PLOTS.items():
        fig = make(measured, comparison)
        if fig is None:
            continue
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=110)
        plt.close(fig)
        out[name] = buffer.getvalue()
    return out


def write_pngs(records: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    """Write every plot to `out_dir`/<name>.png, each atomically; returns the paths."""
    pngs = render_png(records)
    if not pngs:
        sources = ", ".join(sorted(records["source"].unique()))
        raise BadInput(sources, f"nothing to plot: none of its {len(records)} records was measured (see python -m reports table)")
    paths = []
    for name, png in pngs.items():
        path = Path(out_dir) / f"{name}.png"
        atomic.write_bytes(path, png)
        paths.append(path)
    return paths
