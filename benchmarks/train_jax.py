"""JAX train step: one jitted function over a `TrainState`, donated, and its workload.

The state holds the trainable parameters (float32 master weights), the frozen ones,
BatchNorm statistics, the optax state and, for float16, a dynamic loss scale. Only the
trainable subtree is differentiated, so no gradient is computed for frozen parameters.
The module runs with `train=True` and `mutable=['batch_stats']`; dropout and stochastic
depth (`nn.Dropout` in our twins) are intercepted to identity unless the config turns them on.
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from models.flax_layers import stochastic_layers_off
from flax import linen as nn
from flax import struct

from benchmarks import backend_jax
from benchmarks import weights as shared_weights
from benchmarks.training import LOSS_SCALE, TrainConfig, precision_policy, train_labels
from benchmarks.workload import BuildOptions, Combination, Workload
from models.flax_models import build_flax_module, count_params, port_torch_model
from models.freezing import decay_keys, frozen_stages, trainable_keys
from models.porting import flax_paths, nchw_to_nhwc
from models.registry import ModelSpec, get_family, get_spec

_DTYPES = {"float32": jnp.float32, "float16": jnp.float16, "bfloat16": jnp.bfloat16}
SEP = "/"


class LossScale(struct.PyTreeNode):
    """Dynamic loss scale with torch.amp.GradScaler's rule (benchmarks.training.LOSS_SCALE)."""

    scale: jnp.ndarray
    good_steps: jnp.ndarray

    @classmethod
    def create(cls) -> "LossScale":
        """The initial scale, 2^16, with no finite step counted yet."""
        return cls(scale=jnp.asarray(LOSS_SCALE["init_scale"], jnp.float32), good_steps=jnp.asarray(0, jnp.int32))

    def adjust(self, finite: jnp.ndarray) -> "LossScale":
        """Halve after a non-finite gradient; double after `growth_interval` finite steps in a row."""
        good = jnp.where(finite, self.good_steps + 1, 0)
        grow = good >= LOSS_SCALE["growth_interval"]
        scale = jnp.where(finite, jnp.where(grow, self.scale * LOSS_SCALE["growth_factor"], self.scale),
                          self.scale * LOSS_SCALE["backoff_factor"])
        return LossScale(scale=scale, good_steps=jnp.where(grow, 0, good).astype(jnp.int32))


class TrainState(struct.PyTreeNode):
    """Everything one train step reads and replaces; parameters flat, keyed by their '/'-joined Flax path."""

    step: jnp.ndarray
    params: dict[str, jnp.ndarray]  # trainable, float32
    frozen: dict[str, jnp.ndarray]  # not trained, not differentiated
    batch_stats: Any
    opt_state: Any
    loss_scale: LossScale | None = None

    def variables(self) -> dict[str, Any]:
        """The Flax variables (params and batch_stats) the state holds now."""
        params = flax.traverse_util.unflatten_dict({**self.params, **self.frozen}, sep=SEP)
        return {"params": params, **({"batch_stats": self.batch_stats} if self.batch_stats else {})}


def cross_entropy(logits: jnp.ndarray, labels: jnp.ndarray) -> jnp.ndarray:
    """Mean softmax cross-entropy on integer labels, in float32, computed as torch's `F.cross_entropy`.

    log_softmax (max-shifted) then the label's entry: optax's logsumexp(logits) - logit
    subtracts two nearly equal numbers when the loss is small, and loses its digits.
    """
    log_probs = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    return -jnp.take_along_axis(log_probs, labels[:, None], axis=-1).mean()


def _momentum(decay: float) -> optax.GradientTransformation:
    # Heavy-ball momentum as torch's SGD: buf = decay * buf + g, no dampening, buf = g at step 1.
    return optax.trace(decay=decay, nesterov=False)


def make_optimizer(config: TrainConfig, decay_mask: dict[str, bool]) -> optax.GradientTransformation:
    """The optax chain doing torch's update for `config.optimizer` (see benchmarks/training.py)."""
    hyper = config.hyper
    decay = optax.add_decayed_weights(hyper["weight_decay"], mask=decay_mask)
    if config.optimizer == "sgd":
        # torch adds wd * p to the gradient before momentum.
        return optax.chain(decay, _momentum(hyper["momentum"]), optax.scale_by_learning_rate(hyper["learning_rate"]))
    # AdamW: decoupled decay, lr * wd * p added after Adam's normalisation (both use the pre-step p).
    adam = optax.scale_by_adam(b1=hyper["b1"], b2=hyper["b2"], eps=hyper["eps"], eps_root=0.0)
    return optax.chain(adam, decay, optax.scale_by_learning_rate(hyper["learning_rate"]))


def _dropout_off(next_fun: Callable, args: tuple, kwargs: dict, context: Any) -> Any:
    # Dropout and stochastic depth (nn.Dropout with broadcast_dims) become identity.
    if isinstance(context.module, nn.Dropout) and context.method_name == "__call__":
        return args[0]
    return next_fun(*args, **kwargs)


def param_masks(model_name: str, torch_model: Any, variables: Any, config: TrainConfig) -> tuple[dict[str, bool], dict[str, bool], dict[str, str]]:
    """(trainable, decayed, torch key) per flat Flax parameter path, decided on `torch_model`'s keys."""
    spec = get_spec(model_name)
    trainable = trainable_keys(spec, torch_model, config.freeze)
    decayed = decay_keys(torch_model)
    paths = flax_paths(torch_model.state_dict(), variables, get_family(spec.family))
    flat = {SEP.join(path[1:]): key for key, path in paths.items() if path[0] == "params" and key in trainable}
    expected = set(flax.traverse_util.flatten_dict(variables["params"], sep=SEP))
    if set(flat) != expected:
        missing = sorted(expected - set(flat))[:3]
        raise ValueError(f"{model_name}: Flax parameters with no torch parameter to decide their training: {missing}")
    return ({p: trainable[k] for p, k in flat.items()}, {p: decayed[k] for p, k in flat.items()}, flat)


def init_state(variables: Any, trainable: dict[str, bool], tx: optax.GradientTransformation, loss_scaling: bool) -> TrainState:
    """The first state: float32 parameters split into trainable and frozen, the optimizer state of the trainable."""
    flat = {p: jnp.asarray(a, jnp.float32) for p, a in flax.traverse_util.flatten_dict(variables["params"], sep=SEP).items()}
    params = {p: a for p, a in flat.items() if trainable[p]}
    return TrainState(
        step=jnp.asarray(0, jnp.int32),
        params=params,
        frozen={p: a for p, a in flat.items() if not trainable[p]},
        batch_stats=jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float32), variables.get("batch_stats", {})),
        opt_state=tx.init(params),
        loss_scale=LossScale.create() if loss_scaling else None,
    )


def make_train_step(module: nn.Module, tx: optax.GradientTransformation, config: TrainConfig,
                    dropout_key: jax.Array | None = None) -> Callable[[TrainState, jnp.ndarray, jnp.ndarray], tuple[TrainState, jnp.ndarray]]:
    """`step(state, images_nhwc, labels) -> (state, loss)`: forward (train=True), mean cross-entropy, backward, update.

    The module computes in its own dtype (half precision: its layers cast the float32
    parameters where used); the input is cast to it here; the loss is float32.
    """

    def loss_fn(params: dict[str, jnp.ndarray], state: TrainState, x: jnp.ndarray, labels: jnp.ndarray) -> tuple[jnp.ndarray, Any]:
        variables = state.replace(params=params).variables()
        x = x.astype(module.dtype)
        if config.stochastic:
            rngs = {"dropout": jax.random.fold_in(dropout_key, state.step)}
            logits, mutated = module.apply(variables, x, train=True, mutable=["batch_stats"], rngs=rngs)
        else:
            with nn.intercept_methods(_dropout_off), stochastic_layers_off():
                logits, mutated = module.apply(variables, x, train=True, mutable=["batch_stats"])
        loss = cross_entropy(logits, labels)
        scaled = loss * state.loss_scale.scale if state.loss_scale is not None else loss
        return scaled, (loss, mutated.get("batch_stats", state.batch_stats))

    def step(state: TrainState, x: jnp.ndarray, labels: jnp.ndarray) -> tuple[TrainState, jnp.ndarray]:
        grads, (loss, batch_stats) = jax.grad(loss_fn, has_aux=True)(state.params, state, x, labels)
        if state.loss_scale is None:
            updates, opt_state = tx.update(grads, state.opt_state, state.params)
            params = optax.apply_updates(state.params, updates)
            loss_scale = None
        else:  # as GradScaler: unscale, skip the update when any gradient is inf/nan, adjust the scale
            inv_scale = 1.0 / state.loss_scale.scale
            grads = jax.tree_util.tree_map(lambda g: g * inv_scale, grads)
            finite = jnp.all(jnp.asarray([jnp.all(jnp.isfinite(g)) for g in jax.tree_util.tree_leaves(grads)]))
            updates, new_opt_state = tx.update(grads, state.opt_state, state.params)
            new_params = optax.apply_updates(state.params, updates)
            keep = lambda new, old: jnp.where(finite, new, old)  # noqa: E731
            params = jax.tree_util.tree_map(keep, new_params, state.params)
            opt_state = jax.tree_util.tree_map(keep, new_opt_state, state.opt_state)
            loss_scale = state.loss_scale.adjust(finite)
        new_state = state.replace(step=state.step + 1, params=params, batch_stats=batch_stats, opt_state=opt_state,
                                  loss_scale=loss_scale)
        return new_state, loss

    return step


def build_step(model_name: str, torch_model: Any, config: TrainConfig, dtype: str = "float32",
               input_size: int | None = None, seed: int = 0,
               spec: ModelSpec | None = None) -> tuple[Callable, TrainState, dict[str, str]]:
    """(jitted donating step, initial state, flat Flax path -> torch key) for `torch_model`'s weights ported.

    `spec` overrides the registry's (a dataset run's head has the dataset's classes).
    """
    spec = spec or get_spec(model_name)
    size = input_size or spec.input_size
    module = build_flax_module(spec, dtype=_DTYPES[dtype], input_size=size)
    variables = port_torch_model(spec, module, torch_model, (1, size, size, 3))
    trainable, decayed, torch_keys = param_masks(model_name, torch_model, variables, config)
    tx = make_optimizer(config, {p: decayed[p] for p in trainable if trainable[p]})
    state = init_state(variables, trainable, tx, loss_scaling=dtype == "float16")
    key = jax.random.PRNGKey(seed) if config.stochastic else None
    return jax.jit(make_train_step(module, tx, config, key), donate_argnums=0), state, torch_keys


def build_train_workload(combo: Combination, options: BuildOptions) -> Workload:
    """`combo` (mode 'train') as a JAX workload: the run's reference weights ported, the step AOT-compiled."""
    spec = get_spec(combo.model)
    config = options.train
    device = backend_jax._devices(combo.device)[0]
    reference, weights_label = shared_weights.reference_torch_model(spec, options, combo.input_size)
    step, state, _ = build_step(combo.model, reference, config, combo.dtype, combo.input_size, options.seed)
    params = count_params(state.variables())
    trainable_params = int(sum(np.prod(a.shape) for a in state.params.values()))
    initial = jax.device_get(state)  # on the host: the step donates the device buffers
    state = jax.device_put(state, device)
    images = nchw_to_nhwc(shared_weights.input_batch(spec, combo.batch_size, options.seed, combo.input_size))  # (N, H, W, C)
    x = jax.device_put(jnp.asarray(images, jnp.float32), device)
    labels = jax.device_put(jnp.asarray(train_labels(spec.num_classes, combo.batch_size, options.seed), jnp.int32), device)

    with jax.default_matmul_precision("tensorfloat32" if options.tf32 else "highest"):
        start = time.perf_counter()
        lowered = step.lower(state, x, labels)
        compiled = lowered.compile()
        compile_ms = (time.perf_counter() - start) * 1e3
        start = time.perf_counter()
        step.lower(state, x, labels).compile()
        compile_warm_ms = (time.perf_counter() - start) * 1e3

    holder = {"state": state}
    losses: list[Any] = []

    def run() -> Any:
        new_state, loss = compiled(holder["state"], x, labels)  # the old state's buffers are donated
        holder["state"] = new_state
        jax.block_until_ready((new_state, loss))
        losses.append(loss)
        return loss

    def start_timing() -> None:
        losses.clear()  # the runner calls this right before the timed calls

    def restart() -> None:
        holder["state"] = jax.device_put(initial, device)

    memory = backend_jax.memory_reader(device, compiled)

    return Workload(
        combo=combo,
        run=run,
        device_name=backend_jax.device_name(combo.device),
        input_shape=tuple(x.shape),
        params=params,
        flops=backend_jax._xla_flops(lowered),
        flops_source="xla.cost_analysis(lowered train step)",
        threads=len(os.sched_getaffinity(0)),
        compile_ms=compile_ms,
        compile_warm_ms=compile_warm_ms,
        weights=weights_label,
        reset_memory=start_timing,
        restart=restart,
        memory=memory,
        timed_extra=lambda: {"train_losses": [float(loss) for loss in losses],
                             "step_split_source": "not available: the step is one fused XLA program"},
        extra={
            "jax_platform": device.platform,
            "tf32": options.tf32,
            "flops_compiled": backend_jax._xla_flops(compiled),
            **config.record(),
            "frozen_stages": frozen_stages(spec, config.freeze),
            "trainable_params": trainable_params,
            "precision_policy": precision_policy("jax", combo.dtype),
        },
    )
