"""MFU arithmetic and the peak table lookups."""

import pytest

from reports.peaks import peak_flops, utilisation


def test_known_gpus_resolve_to_their_dense_peaks():
    assert peak_flops("NVIDIA H100 80GB HBM3", "bfloat16") == pytest.approx(989.4e12)
    assert peak_flops("NVIDIA H100 PCIe", "bfloat16") == pytest.approx(756e12)  # not the SXM figure
    assert peak_flops("NVIDIA H200", "float32") == pytest.approx(67e12)
    assert peak_flops("NVIDIA H200", "float32", tf32=True) == pytest.approx(494.7e12)
    assert peak_flops("AMD EPYC 7B13", "float32") is None


def test_mfu_is_achieved_over_peak():
    # 8.18e9 FLOPs (ResNet-50 bs1) in 1 ms on an H100 in bf16: 8.18 TFLOP/s, 0.83% of 989.4.
    out = utilisation(8.18e9, 1e-3, "NVIDIA H100 80GB HBM3", "bfloat16")
    assert out["achieved_tflops"] == pytest.approx(8.18)
    assert out["mfu"] == pytest.approx(8.18 / 989.4)
    cpu = utilisation(8.18e9, 1e-1, "AMD EPYC", "float32")
    assert cpu["achieved_tflops"] == pytest.approx(0.0818) and cpu["mfu"] is None
    assert utilisation(None, 1e-3, "NVIDIA H100", "bfloat16") == {"achieved_tflops": None, "mfu": None}
