"""JAX/Flax back end: native Flax models holding the torch weights, compiled ahead of time."""

from __future__ import annotations

import os
import time
from typing import Any, Callable

import flax
import jax
import jax.numpy as jnp
import jaxlib

from benchmarks import weights as shared_weights
from benchmarks.compile_cache import cache_entries, jax_cache_dir
from benchmarks.workload import BuildOptions, Combination, Workload, cpu_name
from reports.vocabulary import reads_whole_split
from models.flax_models import build_flax_module, count_params, init_variables, port_torch_model
from models.porting import nchw_to_nhwc
from models.registry import get_spec

_DTYPES = {"float32": jnp.float32, "float16": jnp.float16, "bfloat16": jnp.bfloat16}
_MiB = 2**20


def versions() -> dict[str, str]:
    """Versions of the JAX stack and the backend platform."""
    return {
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "flax": flax.__version__,
        "jax_backend": jax.default_backend(),
    }


def _devices(device: str) -> list[Any]:
    platform = "gpu" if device == "cuda" else "cpu"
    try:
        return jax.devices(platform)
    except RuntimeError:
        return []


def device_available(device: str) -> bool:
    """Whether JAX has a backend for `device`."""
    return bool(_devices(device))


def device_name(device: str) -> str:
    """The device's name as JAX reports it."""
    if device == "cpu":
        return cpu_name()
    return _devices(device)[0].device_kind


# Configuration -> (XLA compiler options for this program, devices it runs on). JAX always
# compiles the whole program (jit) and lays images out NHWC, so torch's eager / compile /
# channels_last distinctions have no JAX twin; "eager" is plain jit. Flags for the whole
# process go through --xla-flags (XLA_FLAGS), recorded in the machine info.
CONFIGS: dict[str, tuple[dict[str, Any], tuple[str, ...]]] = {
    "eager": ({}, ("cpu", "cuda")),
    # Measure every candidate cuDNN/cuBLAS algorithm and keep the fastest (level 4: with correctness checks).
    "xla-autotune": ({"xla_gpu_autotune_level": 4}, ("cuda",)),
}


def unsupported_reason(combo: Combination) -> str | None:
    """Why JAX cannot run `combo`, or None."""
    if combo.config not in CONFIGS:
        return f"configuration {combo.config!r} is not a JAX one (JAX runs: {', '.join(CONFIGS)}; it always jit-compiles, NHWC)"
    if combo.device not in CONFIGS[combo.config][1]:
        return f"configuration {combo.config!r} needs {' or '.join(CONFIGS[combo.config][1])}, not {combo.device}"
    if not device_available(combo.device):
        hint = " (install jax[cuda12] or jax[cuda13])" if combo.device == "cuda" else ""
        return f"jax {jax.__version__} has no {combo.device} backend here{hint}"
    return None


def is_out_of_memory(error: BaseException) -> bool:
    """Whether `error` is XLA running out of device memory."""
    text = str(error)
    return "RESOURCE_EXHAUSTED" in text or "Out of memory" in text


def flax_variables(combo: Combination, options: BuildOptions, module, input_shape_nhwc) -> tuple[Any, str]:
    """The torch reference weights, ported; without torch installed, a seeded jit init."""
    spec = get_spec(combo.model)
    try:
        import torch  # noqa: F401
    except ImportError:
        return init_variables(module, input_shape_nhwc, jax.random.PRNGKey(options.seed)), f"flax-init(seed={options.seed})"
    reference, label = shared_weights.reference_torch_model(spec, options, combo.input_size)
    return port_torch_model(spec, module, reference, input_shape_nhwc), label


def _xla_flops(stage: Any) -> int | None:
    """FLOPs by XLA's cost analysis of a lowered or compiled program.

    Of the lowered program (before backend passes) it counts every convolution and dot; of
    the compiled one on GPU it misses those that became cuDNN/cuBLAS custom calls (an
    H200 run reported 5.4e7 for ResNet-50, whose forward is 8e9), so the record's `flops`
    comes from the lowered program and the compiled figure is kept only beside it.
    """
    try:
        analysis = stage.cost_analysis()
    except Exception:  # a backend without cost analysis
        return None
    if isinstance(analysis, (list, tuple)):  # older jax returns one dict per device
        analysis = analysis[0] if analysis else None
    if not analysis or "flops" not in analysis:
        return None
    return int(analysis["flops"])


def _xla_memory(compiled: Any) -> dict[str, float]:
    """The executable's own buffer sizes, from XLA's buffer assignment (exact, per program)."""
    try:
        analysis = compiled.memory_analysis()
    except Exception:  # not every backend implements it
        return {}
    if analysis is None:
        return {}
    return {
        "xla_argument_mb": analysis.argument_size_in_bytes / _MiB,
        "xla_output_mb": analysis.output_size_in_bytes / _MiB,
        "xla_temp_mb": analysis.temp_size_in_bytes / _MiB,
    }


def memory_reader(device: Any, compiled: Any) -> Callable[[], dict[str, float]]:
    """The record's memory figures: the compiled program's buffers, and the device's peak where it keeps one."""
    program_memory = _xla_memory(compiled)

    def memory() -> dict[str, float]:
        stats = device.memory_stats() or {}
        if "peak_bytes_in_use" not in stats:
            return dict(program_memory)
        return {**program_memory, "jax_device_peak_mb": stats["peak_bytes_in_use"] / _MiB}

    return memory


def data_backend() -> Any:
    """This framework's dataset runs (benchmarks/data_jax.py: `Trainer`, `feed`, `LAYOUT`), imported on first use."""
    from benchmarks import data_jax

    return data_jax


def build_workload(combo: Combination, options: BuildOptions) -> Workload:
    """`combo` as a JAX workload: ported weights, AOT-compiled, placed on the device; one step of its mode per call."""
    if reads_whole_split(combo):
        from benchmarks.data_jax import build_data_workload

        return build_data_workload(combo, options)
    if combo.mode == "train":
        from benchmarks.train_jax import build_train_workload

        return build_train_workload(combo, options)
    spec = get_spec(combo.model)
    dtype = _DTYPES[combo.dtype]
    device = _devices(combo.device)[0]
    module = build_flax_module(spec, dtype=dtype, input_size=combo.input_size)
    images = nchw_to_nhwc(shared_weights.input_batch(spec, combo.batch_size, options.seed, combo.input_size,
                                                options.data if combo.data is not None else None))  # (N, H, W, C)
    variables, weights_label = flax_variables(combo, options, module, images.shape)
    params = count_params(variables)
    # Both frameworks hold weights and inputs in the benchmarked dtype.
    variables = jax.device_put(jax.tree_util.tree_map(lambda a: a.astype(dtype), variables), device)
    x = jax.device_put(jnp.asarray(images, dtype), device)

    forward = jax.jit(module.apply)
    # The precision is fixed when the program is traced: TF32 only when asked, as in torch.
    cache = jax_cache_dir()
    entries_before = cache_entries(cache)
    with jax.default_matmul_precision("tensorfloat32" if options.tf32 else "highest"):
        start = time.perf_counter()
        compiler_options = CONFIGS[combo.config][0]
        lowered = forward.lower(variables, x)
        lower_ms = (time.perf_counter() - start) * 1e3  # tracing the Flax module: never cached
        compiled = lowered.compile(compiler_options or None)
        compile_ms = (time.perf_counter() - start) * 1e3
        start = time.perf_counter()
        forward.lower(variables, x).compile(compiler_options or None)
        compile_warm_ms = (time.perf_counter() - start) * 1e3

    def run() -> Any:
        return jax.block_until_ready(compiled(variables, x))

    memory = memory_reader(device, compiled)
    # Warm: this process found its program in the persistent cache (nothing new was written).
    cache_state = None if cache is None else ("warm" if cache_entries(cache) == entries_before else "cold")

    return Workload(
        combo=combo,
        run=run,
        device_name=device_name(combo.device),
        input_shape=tuple(x.shape),
        params=params,
        flops=_xla_flops(lowered),
        flops_source="xla.cost_analysis(lowered)",
        threads=len(os.sched_getaffinity(0)),
        compile_ms=compile_ms,
        compile_warm_ms=compile_warm_ms,
        weights=weights_label,
        memory=memory,
        extra={"jax_platform": device.platform, "tf32": options.tf32, "flops_compiled": _xla_flops(compiled),
               "xla_compiler_options": {k: str(v) for k, v in CONFIGS[combo.config][0].items()},
               "xla_flags": os.environ.get("XLA_FLAGS", ""), "compile_cache": cache_state,
               "lower_ms": lower_ms, "xla_compile_ms": compile_ms - lower_ms},
    )
