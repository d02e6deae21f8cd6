"""Dense peak FLOP/s of known accelerators, for model FLOPs utilisation (MFU).

MFU = achieved FLOP/s (the record's FLOPs of one call / its median latency) over the
device's dense peak for the dtype. Peaks are the vendors' published dense (no sparsity)
tensor-core figures; float32 means true FP32 (CUDA cores), and "float32_tf32" the TF32
tensor-core peak used when --tf32 is on. CPUs have no entry: their peak depends on the
cores, clock and vector units the process gets, so records on a CPU carry no MFU.

Sources (dense figures, i.e. half the "with sparsity" numbers on the datasheets):
- NVIDIA H100 SXM5 datasheet: FP32 67 TFLOPS, TF32 494.7, BF16/FP16 989.4.
- NVIDIA H100 PCIe datasheet: FP32 51 TFLOPS, TF32 378, BF16/FP16 756.
- NVIDIA H200 SXM datasheet: same compute as H100 SXM (FP32 67, TF32 494.7, BF16/FP16 989.4).
- NVIDIA A100 SXM datasheet: FP32 19.5 TFLOPS, TF32 156, BF16/FP16 312.
"""

from __future__ import annotations

TERA = 1e12

# Device-name substring (as torch.cuda.get_device_name / JAX device_kind report it) -> peaks.
PEAK_TFLOPS: dict[str, dict[str, float]] = {
    "H100 PCIe": {"float32": 51.0, "float32_tf32": 378.0, "bfloat16": 756.0, "float16": 756.0},
    "H100": {"float32": 67.0, "float32_tf32": 494.7, "bfloat16": 989.4, "float16": 989.4},
    "H200": {"float32": 67.0, "float32_tf32": 494.7, "bfloat16": 989.4, "float16": 989.4},
    "A100": {"float32": 19.5, "float32_tf32": 156.0, "bfloat16": 312.0, "float16": 312.0},
}


def peak_flops(device_name: str, dtype: str, tf32: bool = False) -> float | None:
    """The dense peak FLOP/s of `device_name` in `dtype`, or None for an unknown device (CPUs)."""
    key = "float32_tf32" if dtype == "float32" and tf32 else dtype
    for fragment, peaks in PEAK_TFLOPS.items():  # most specific names first
        if fragment in device_name and key in peaks:
            return peaks[key] * TERA
    return None


def utilisation(flops_per_call: float | None, latency_s: float | None, device_name: str, dtype: str,
                tf32: bool = False) -> dict[str, float | None]:
    """Achieved FLOP/s of a call and its share of the device's peak (None where unknown)."""
    if not flops_per_call or not latency_s:
        return {"achieved_tflops": None, "mfu": None}
    achieved = flops_per_call / latency_s
    peak = peak_flops(device_name, dtype, tf32)
    return {"achieved_tflops": achieved / TERA, "mfu": None if peak is None else achieved / peak}
