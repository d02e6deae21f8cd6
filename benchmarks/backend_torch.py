"""PyTorch back end: torchvision models as workloads, synchronised on CUDA."""

from __future__ import annotations

import copy
import gc
import functools
import time
from typing import Any

import torch
import torchvision

from benchmarks import weights as shared_weights
from benchmarks.workload import BuildOptions, Combination, Workload, cpu_name
from reports.vocabulary import reads_whole_split
from models.registry import get_spec
from models.torch_models import build_torch_model

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
_MiB = 2**20


def versions() -> dict[str, str]:
    """Versions of the torch stack, and CUDA/cuDNN where present."""
    out = {"torch": torch.__version__, "torchvision": torchvision.__version__}
    if torch.cuda.is_available():
        out["cuda"] = str(torch.version.cuda)
        out["cudnn"] = str(torch.backends.cudnn.version())
    return out


def device_available(device: str) -> bool:
    """Whether torch can run on `device`."""
    return device == "cpu" or (device == "cuda" and torch.cuda.is_available())


def device_name(device: str) -> str:
    """The device's marketing name, e.g. 'NVIDIA H100 80GB HBM3'."""
    if device == "cuda":
        return torch.cuda.get_device_name(0)
    return cpu_name()


# Configuration -> (torch.compile mode or None for eager, channels_last, devices it runs on).
# "compile" is torch.compile's default mode; "compile-max" autotunes kernels (max-autotune);
# "cudagraphs" replays CUDA graphs (reduce-overhead), which exist only on CUDA.
CONFIGS: dict[str, tuple[str | None, bool, tuple[str, ...]]] = {
    "eager": (None, False, ("cpu", "cuda")),
    "channels_last": (None, True, ("cpu", "cuda")),
    "compile": ("default", False, ("cpu", "cuda")),
    "compile-max": ("max-autotune", False, ("cpu", "cuda")),
    "cudagraphs": ("reduce-overhead", False, ("cuda",)),
    "channels_last-compile": ("default", True, ("cpu", "cuda")),
    "channels_last-cudagraphs": ("reduce-overhead", True, ("cuda",)),
}


def unsupported_reason(combo: Combination) -> str | None:
    """Why torch cannot run `combo` (the model's size limits are checked by the matrix), or None."""
    if combo.config not in CONFIGS:
        return f"configuration {combo.config!r} is not a torch one (torch runs: {', '.join(CONFIGS)})"
    if combo.device not in CONFIGS[combo.config][2]:
        return f"configuration {combo.config!r} needs {' or '.join(CONFIGS[combo.config][2])}, not {combo.device}"
    if not device_available(combo.device):
        return f"torch {torch.__version__} has no {combo.device} device here"
    if combo.device == "cuda" and combo.dtype == "bfloat16" and not torch.cuda.is_bf16_supported():
        return f"{torch.cuda.get_device_name(0)} does not support bfloat16"
    return None


def is_out_of_memory(error: BaseException) -> bool:
    """Whether `error` is an allocator running out of memory."""
    return isinstance(error, torch.cuda.OutOfMemoryError) or "out of memory" in str(error).lower()


@functools.lru_cache(maxsize=None)
def flops_per_image(model_name: str, input_size: int | None = None) -> int:
    """FLOPs of one image's forward pass, 2 per multiply-add, by torch's FlopCounterMode.

    Counted with autograd on and attention on the math backend: the fused inference
    fast paths (native MHA, CPU flash attention) are invisible to the counter.
    """
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    spec = get_spec(model_name)
    size = input_size or spec.input_size
    model = build_torch_model(spec, size)
    x = torch.zeros(1, 3, size, size)
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        model(x)
    return int(counter.get_total_flops())


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def reset_memory(device: str) -> None:
    """Start the allocator's peaks afresh (CUDA), the cache earlier workloads left returned first."""
    if device == "cuda":
        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def memory(device: str) -> dict[str, float]:
    """The CUDA allocator's allocated and reserved peaks since `reset_memory`, in MiB (CPU: none)."""
    if device != "cuda":
        return {}
    return {
        "torch_cuda_allocated_peak_mb": torch.cuda.max_memory_allocated() / _MiB,
        "torch_cuda_reserved_peak_mb": torch.cuda.max_memory_reserved() / _MiB,
    }


def data_backend() -> Any:
    """This framework's dataset runs (benchmarks/data_torch.py: `Trainer`, `feed`, `LAYOUT`), imported on first use."""
    from benchmarks import data_torch

    return data_torch


def build_workload(combo: Combination, options: BuildOptions) -> Workload:
    """`combo` as a torch workload: the shared reference weights, cast and placed; one step of its mode per call."""
    if reads_whole_split(combo):
        from benchmarks.data_torch import build_data_workload

        return build_data_workload(combo, options)
    if combo.mode == "train":
        from benchmarks.train_torch import build_train_workload

        return build_train_workload(combo, options)
    spec = get_spec(combo.model)
    torch.set_num_threads(options.threads)
    # torch allows TF32 in cuDNN convolutions but not in matmuls by default; JAX allows it
    # in both. One explicit setting for both frameworks keeps float32 comparable.
    torch.backends.cuda.matmul.allow_tf32 = options.tf32
    torch.backends.cudnn.allow_tf32 = options.tf32
    reference, weights_label = shared_weights.reference_torch_model(spec, options, combo.input_size)
    model = copy.deepcopy(reference).to(device=combo.device, dtype=_DTYPES[combo.dtype]).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    images = shared_weights.input_batch(spec, combo.batch_size, options.seed, combo.input_size,
                                                options.data if combo.data is not None else None)  # (N, C, H, W)
    x = torch.from_numpy(images).to(device=combo.device, dtype=_DTYPES[combo.dtype])
    compile_mode, channels_last, _ = CONFIGS[combo.config]
    if options.torch_compile and compile_mode is None:  # --torch-compile: the eager configs, compiled
        compile_mode = "default"
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)

    forward = model
    compile_ms = None
    if compile_mode is not None:
        forward = torch.compile(model, mode=None if compile_mode == "default" else compile_mode)
        start = time.perf_counter()
        with torch.inference_mode():
            forward(x)
        _sync(combo.device)
        compile_ms = (time.perf_counter() - start) * 1e3

    def run() -> torch.Tensor:
        with torch.inference_mode():
            out = forward(x)
        _sync(combo.device)
        return out

    return Workload(
        combo=combo,
        run=run,
        device_name=device_name(combo.device),
        input_shape=tuple(x.shape),
        params=sum(p.numel() for p in model.parameters()),
        flops=flops_per_image(combo.model, combo.input_size or spec.input_size) * combo.batch_size,
        flops_source="torch.utils.flop_counter",
        threads=torch.get_num_threads(),
        compile_ms=compile_ms,
        weights=weights_label,
        reset_memory=functools.partial(reset_memory, combo.device),
        memory=functools.partial(memory, combo.device),
        extra={"torch_compile": compile_mode or False, "channels_last": channels_last, "tf32": options.tf32},
    )
