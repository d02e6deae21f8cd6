"""JAX on a dataset: train epochs and evaluation passes (benchmarks/data_runs.py runs the loop).

The weights are the torch starting weights ported; the steps are compiled ahead of time for
the pipeline's fixed batch shape (train drops the last partial batch, eval pads it), so no
call recompiles. Batches are placed on the device ahead of use (`device_prefetch`).
Checkpoints are `.npz` files: one array per variable, named by its '/'-joined Flax path
under its collection (`params/layer1_0/conv1/kernel`, `batch_stats/...`).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Iterable, Iterator

import flax
import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import backend_jax
from benchmarks.data_runs import DataRun, data_spec, dataset, reference_for_data
from benchmarks.train_jax import build_step
from benchmarks.training import precision_policy
from benchmarks.workload import BuildOptions, Combination, Workload
from models.flax_models import build_flax_module, count_params, port_torch_model
from models.freezing import frozen_stages
from models.registry import get_spec

_DTYPES = {"float32": jnp.float32, "float16": jnp.float16, "bfloat16": jnp.bfloat16}
LAYOUT = "NHWC"
CHECKPOINT_SUFFIX = ".npz"


def feed(device: str) -> Any:
    """The pipeline's numpy batches placed on `device` ('cpu', 'cuda') ahead of use."""
    from benchmarks.pipeline import device_prefetch

    target = backend_jax._devices(device)[0]

    def batches_on_device(batches: Iterable[Any]) -> Iterator[tuple[Any, Any]]:
        for x, labels, batch in device_prefetch(batches, target):
            yield (x, labels), batch

    return batches_on_device


def _shapes(combo: Combination, size: int) -> tuple[Any, Any]:
    return (jax.ShapeDtypeStruct((combo.batch_size, size, size, 3), jnp.float32),
            jax.ShapeDtypeStruct((combo.batch_size,), jnp.int32))


def _precision(options: BuildOptions) -> Any:
    return jax.default_matmul_precision("tensorfloat32" if options.tf32 else "highest")


def save_variables(variables: Any, path: Path) -> Path:
    """`variables` as an .npz of '/'-joined paths (the module docstring's format)."""
    path = path.with_suffix(CHECKPOINT_SUFFIX)
    flat = flax.traverse_util.flatten_dict(jax.device_get(variables), sep="/")
    np.savez(path, **{name: np.asarray(value) for name, value in flat.items()})
    return path


def load_variables(path: Path) -> dict[str, Any]:
    """The variables an .npz checkpoint holds, nested as Flax expects."""
    with np.load(path) as data:
        return flax.traverse_util.unflatten_dict({name: data[name] for name in data.files}, sep="/")


class Trainer:
    """`combo`'s Flax twin from the run's starting weights, ported: a donating train step and an evaluation of its current weights."""

    def __init__(self, combo: Combination, options: BuildOptions) -> None:
        assert options.data is not None
        base = get_spec(combo.model)
        info = dataset(options.data.source)
        spec = data_spec(base, info.num_classes)
        self.combo = combo
        self.size = combo.input_size or base.input_size
        self.device = backend_jax._devices(combo.device)[0]
        reference, self.weights_label, self.head = reference_for_data(combo.model, info.num_classes, options.pretrained,
                                                                      options.weights, options.seed, self.size)
        x_shape, label_shape = _shapes(combo, self.size)
        with _precision(options):
            start = time.perf_counter()
            step, state, _ = build_step(combo.model, reference, options.train, combo.dtype, self.size, options.seed,
                                        spec=spec)
            self.initial = jax.device_get(state)  # on the host: the step donates the device buffers
            self.state = jax.device_put(state, self.device)
            self.lowered = step.lower(self.state, x_shape, label_shape)
            self.program = self.lowered.compile()
            self.compile_ms = (time.perf_counter() - start) * 1e3
            self.module = build_flax_module(spec, dtype=_DTYPES[combo.dtype], input_size=self.size)
            module = self.module
            self.forward = jax.jit(lambda variables, x: module.apply(variables, x.astype(module.dtype)).astype(jnp.float32))
        self.params = count_params(self.state.variables())
        self.extra = {**options.train.record(), "frozen_stages": frozen_stages(base, options.train.freeze),
                      "trainable_params": int(sum(np.prod(a.shape) for a in self.initial.params.values()))}

    def train_step(self, inputs: tuple[Any, Any]) -> Any:
        """One step on a batch; returns the loss once the device is done."""
        self.state, loss = self.program(self.state, *inputs)
        return jax.block_until_ready(loss)

    def evaluate(self, inputs: tuple[Any, Any]) -> Any:
        """Logits of the current weights (train=False: running norm statistics), as a host array."""
        return np.asarray(self.forward(self.state.variables(), inputs[0]))

    def restart(self) -> None:
        """Back to the starting weights and a fresh optimizer state."""
        self.state = jax.device_put(self.initial, self.device)

    def save(self, path: Path) -> Path:
        """The current weights (params and batch_stats), float32."""
        return save_variables(self.state.variables(), path)


def _evaluator(combo: Combination, options: BuildOptions) -> tuple[Any, Any, str, str, float, int]:
    """(compiled forward, host-logits function, weights label, head, compile ms, params) of an evaluation pass."""
    base = get_spec(combo.model)
    info = dataset(options.data.source)
    spec = data_spec(base, info.num_classes)
    size = combo.input_size or base.input_size
    device = backend_jax._devices(combo.device)[0]
    reference, label, head = reference_for_data(combo.model, info.num_classes, options.pretrained, options.weights,
                                                options.seed, size)
    dtype = _DTYPES[combo.dtype]
    module = build_flax_module(spec, dtype=dtype, input_size=size)
    variables = port_torch_model(spec, module, reference, (1, size, size, 3))
    params = count_params(variables)
    variables = jax.device_put(jax.tree_util.tree_map(lambda a: a.astype(dtype), variables), device)
    with _precision(options):
        start = time.perf_counter()
        lowered = jax.jit(lambda v, x: module.apply(v, x.astype(dtype)).astype(jnp.float32)).lower(
            variables, _shapes(combo, size)[0])
        program = lowered.compile()
        compile_ms = (time.perf_counter() - start) * 1e3

    def forward(inputs: tuple[Any, Any]) -> Any:
        return np.asarray(program(variables, inputs[0]))  # the copy to the host synchronises

    return (lowered, program), forward, label, head, compile_ms, params


def _no_restart() -> None:
    return None  # evaluation changes no weights


def build_data_workload(combo: Combination, options: BuildOptions) -> Workload:
    """`combo` over its dataset: one train epoch or one evaluation pass per call, the shared starting weights ported."""
    size = combo.input_size or get_spec(combo.model).input_size
    device = backend_jax._devices(combo.device)[0]
    if combo.mode == "train":
        trainer = Trainer(combo, options)
        lowered, program = trainer.lowered, trainer.program
        compute, restart, label, head = trainer.train_step, trainer.restart, trainer.weights_label, trainer.head
        compile_ms, params, extra = trainer.compile_ms, trainer.params, trainer.extra
    else:
        (lowered, program), compute, label, head, compile_ms, params = _evaluator(combo, options)
        restart, extra = _no_restart, {}
    run = DataRun(combo, options, LAYOUT, feed(combo.device), compute, restart)
    images = run.images_per_call
    flops_per_batch = backend_jax._xla_flops(lowered)
    memory = backend_jax.memory_reader(device, program)

    return Workload(
        combo=combo,
        run=run.run,
        device_name=backend_jax.device_name(combo.device),
        input_shape=(combo.batch_size, size, size, 3),
        params=params,
        flops=flops_per_batch * images // combo.batch_size if flops_per_batch else None,
        flops_source="xla.cost_analysis(lowered step) per batch x batches per call",
        threads=len(os.sched_getaffinity(0)),
        compile_ms=compile_ms,
        weights=label,
        reset_memory=run.start_timing,
        memory=memory,
        timed_extra=run.timed_extra,
        restart=run.restart,
        images_per_call=images,
        extra={"jax_platform": device.platform, "tf32": options.tf32, "head": head,
               "precision_policy": precision_policy("jax", combo.dtype), **extra},
    )
