"""The short throughput table printed at the end of a benchmark run."""

from __future__ import annotations

from typing import Any, Sequence

SUMMARY_FIELDS = (
    "model", "framework", "device", "batch_size", "dtype", "mode",
    "latency_p50_ms", "throughput_ips", "compile_ms", "parity", "valid", "ratio_torch_over_jax", "ratio_ci95",
)


def _parity_label(parity: Any) -> str:
    if not isinstance(parity, dict):
        return ""
    status = parity.get("status", "")
    if "max_abs" in parity and parity.get("max_abs") is not None:
        return f"{status} ({parity['max_abs']:.1e})"
    if parity.get("param_max_rel") is not None:  # a train step: the worst parameter update error
        return f"{status} (upd {parity['param_max_rel']:.1e})"
    return status


def format_run_summary(rows: Sequence[dict[str, Any]]) -> str:
    """One line per record: p50 latency, img/s, compile time, parity, validity."""
    import pandas as pd

    from reports.table import ratio_label

    frame = pd.DataFrame(list(rows), columns=list(SUMMARY_FIELDS))
    frame["parity"] = frame["parity"].map(_parity_label)
    frame["torch/JAX"] = [
        ratio_label(r, *(ci if isinstance(ci, list) else (float("nan"), float("nan")))) if r is not None and r == r else "-"
        for r, ci in zip(frame["ratio_torch_over_jax"], frame["ratio_ci95"])
    ]
    frame = frame.drop(columns=["ratio_torch_over_jax", "ratio_ci95"])
    frame["valid"] = frame["valid"].map({True: "yes", False: "NO"})
    frame = frame.rename(columns={"latency_p50_ms": "p50 ms", "throughput_ips": "img/s", "compile_ms": "compile ms", "batch_size": "bs"})
    return frame.to_string(index=False, float_format=lambda v: f"{v:,.1f}", na_rep="-")
