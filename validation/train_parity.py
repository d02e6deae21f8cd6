"""Train-step parity: torch and JAX train steps from the same weights, batch and labels agree.

At every step (1 .. steps) the loss, every parameter's update (after minus before,
relative to the largest update in that tensor, so it cannot hide behind large weights)
and every BatchNorm running statistic's update must agree: float32, <= 1e-4 on updates
and statistics, <= 1e-5 relative on the loss (absolute below a loss of 1). A frozen
parameter must not move at all, in either framework. Both frameworks see the same batches
and labels; step k trains on batch k.

Each step starts both frameworks from torch's float32 parameters and statistics, while
each keeps its own optimizer state (momentum buffer, Adam moments, step count): a wrong
momentum, bias correction or decay still shows at steps 2 and 3, but float32 rounding is
not compounded through the trajectory. (From random weights a batch of two is fitted in
two or three steps at lr 0.1; free-running float32 and float64 torch steps then differ by
tens of percent, and no bound could tell a bug from chaos.)

Where float32 itself cannot resolve a tensor's update that finely, the bound of that
tensor is widened to NOISE_FACTOR x float32's own error there, measured by running the
same torch step in float64 beside it: sums of nearly cancelling gradients (a BatchNorm's
bias over a tiny batch) keep few correct digits, and an update of +-lr per element leaves
a weight of 1 only ~1e-4 of relative precision in after-minus-before. Adam also turns the
rounding noise of an analytically zero gradient (an attention key bias: softmax ignores a
shift shared by all keys) into updates of +-lr of random sign: elements whose first moment
float32 cannot resolve (MOMENT_MARGIN) are left out of the comparison and counted. The
result reports each widened bound and each left-out element. The steps checked
are the benchmark's own (`benchmarks/train_torch.py`, `benchmarks/train_jax.py`).
"""

from __future__ import annotations

import copy
import dataclasses
import functools
from typing import Any

import numpy as np

from models.registry import get_family, get_spec

UPDATE_TOLERANCE = 1e-4  # max |jax update - torch update| / max |torch update|, per tensor
LOSS_TOLERANCE = 1e-5  # |jax loss - torch loss| / max(|torch loss|, LOSS_SCALE_FLOOR)
# A loss below 1 is judged absolutely: a fitted batch's loss of 5e-4 is the difference of logits
# ~10 apart, known to ~1e-7 in float32, so relative to itself it keeps ~3 digits in any framework.
LOSS_SCALE_FLOOR = 1.0
NOISE_FACTOR = 10.0  # a bound never sits below this many times float32's own error (torch float32 vs float64)
# Adam divides each element by its own gradient scale, so an element whose gradient is rounding
# noise moves by +-lr with a random sign. An element is judged only where its float64 first
# moment exceeds MOMENT_MARGIN x the largest float32 error of that tensor's first moment.
MOMENT_MARGIN = 10.0
# float32 steps of two implementations differ by more than one implementation differs from
# float64 where the step is ill-conditioned (a BatchNorm over a few nearly equal values
# divides by their tiny spread): a second torch float32 step on the input scaled by
# (1 + INPUT_JITTER * N(0, 1)), a few ulps, samples that sensitivity for the noise floor.
INPUT_JITTER = 1e-6
FLOAT32_SAMPLES = ("torch", "jittered")


@dataclasses.dataclass
class TensorError:
    """One tensor's update error after one checked step."""

    torch_key: str
    step: int
    error: float  # max |jax update - torch update| / max |torch update|; inf: moved when it must not
    bound: float
    float32_noise: float  # the same measure between torch float32 (plain or jittered input) and float64
    kind: str  # "param", "frozen" or "statistic"
    unresolved: int = 0  # elements left out: an Adam first moment within float32's noise (see MOMENT_MARGIN)

    @property
    def passed(self) -> bool:
        """Whether the error is within its bound."""
        return self.error <= self.bound


@dataclasses.dataclass
class TrainParityResult:
    """How far a JAX train step is from torch's: loss, parameter updates, BatchNorm statistics."""

    model: str
    optimizer: str
    freeze: Any
    steps: int
    batch_size: int
    passed: bool
    loss_rel: float  # worst relative loss difference over the checked steps
    param_max_rel: float  # worst parameter update error (frozen ones included: inf if one moved)
    stat_max_rel: float  # worst BatchNorm running-statistic update error (0 without BatchNorm)
    first_diverging_param: str | None  # torch key of the first tensor (state_dict order) out of bound
    first_diverging_step: int | None
    losses_torch: list[float]
    losses_jax: list[float]
    loss_bound: float
    trainable_params: int
    tensors: list[TensorError] = dataclasses.field(default_factory=list)
    failures: list[str] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)  # conditions that make float32 steps ill-conditioned

    @property
    def widened(self) -> list[TensorError]:
        """Tensors whose bound float32's own noise widened beyond the nominal tolerance."""
        return [t for t in self.tensors if t.bound > UPDATE_TOLERANCE]

    def as_record(self) -> dict[str, Any]:
        """The parity block of a JAX train record."""
        return {
            "status": "passed" if self.passed else "failed",
            "check": "train_step",
            "optimizer": self.optimizer,
            "freeze": self.freeze,
            "steps": self.steps,
            "batch_size": self.batch_size,
            "loss_rel": self.loss_rel,
            "param_max_rel": self.param_max_rel,
            "stat_max_rel": self.stat_max_rel,
            "first_diverging_param": self.first_diverging_param,
            "widened_bounds": {t.torch_key: t.bound for t in self.widened if t.step == self.steps},
            "unresolved_elements": sum(t.unresolved for t in self.tensors if t.step == self.steps),
            "failures": list(self.failures),
            "notes": list(self.notes),
        }

    def message(self) -> str:
        """One human line: the verdict and, on failure, the first tensor that diverged."""
        head = (f"{self.model} ({self.optimizer}, freeze {self.freeze}, {self.steps} steps): train parity "
                f"{'passed' if self.passed else 'FAILED'}: loss rel {self.loss_rel:.2g}, worst update "
                f"{self.param_max_rel:.2g}, worst statistic {self.stat_max_rel:.2g}")
        unresolved = sum(t.unresolved for t in self.tensors)
        notes = (f"; {len(self.widened)} bound(s) widened to float32's noise" if self.widened else "") + (
            f"; {unresolved} element-step(s) left out (Adam moment within float32 noise)" if unresolved else "")
        if self.passed:
            return head + notes
        text = f"{head}; {'; '.join(self.failures)}"
        if self.first_diverging_param is not None:
            text += f"; first diverging parameter: {self.first_diverging_param} (step {self.first_diverging_step})"
        return text + "".join(f"; note: {n}" for n in self.notes)


def _rel(actual: np.ndarray, expected: np.ndarray) -> float:
    scale = float(np.abs(expected).max()) if expected.size else 0.0
    diff = float(np.abs(actual - expected).max()) if expected.size else 0.0
    if not np.all(np.isfinite(actual)):
        return float("inf")
    if scale == 0.0:
        return 0.0 if diff == 0.0 else float("inf")
    return diff / scale


def _torch_state(model: Any) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().double().numpy().copy() for k, v in model.state_dict().items() if v.is_floating_point()}


def _jax_state(state: Any, flax_path_of: dict[str, tuple[str, ...]], transforms: dict[str, Any]) -> dict[str, np.ndarray]:
    """The JAX state's tensors under their torch keys, in torch layout."""
    from models.porting import _flatten

    flat = _flatten(state.variables())
    out = {}
    for key, path in flax_path_of.items():
        out[key] = transforms[key](np.asarray(flat[path], np.float64))
    return out


def _to_torch_layout(transform: Any, shape: tuple[int, ...]) -> Any:
    """The inverse of a porting transform for a torch tensor of `shape` (transforms permute or reshape)."""
    probe = np.arange(int(np.prod(shape)), dtype=np.float64).reshape(shape)
    moved = transform(probe)
    order = np.argsort(moved.reshape(-1))  # where each torch element went

    def back(a: np.ndarray) -> np.ndarray:
        return a.reshape(-1)[order].reshape(shape) if a.size else a.reshape(shape)

    return back


def _load_torch_state(state: Any, arrays: dict[str, np.ndarray], flax_path_of: dict[str, tuple[str, ...]],
                      forward: dict[str, Any]) -> Any:
    """`state` with its parameters and BatchNorm statistics replaced by torch's `arrays` (its optimizer state kept)."""
    import flax
    import jax.numpy as jnp

    from models.porting import _flatten, _unflatten

    flat = _flatten(state.variables())
    for key, path in flax_path_of.items():
        flat[path] = jnp.asarray(forward[key](arrays[key]), jnp.float32)
    variables = _unflatten(flat)
    params = flax.traverse_util.flatten_dict(variables["params"], sep="/")
    return state.replace(params={p: params[p] for p in state.params}, frozen={p: params[p] for p in state.frozen},
                         batch_stats=variables.get("batch_stats", {}))


def _adam_moments(train_step: Any) -> dict[str, np.ndarray]:
    """torch key -> the first moment of a normalising optimizer (AdamW's exp_avg); empty for SGD."""
    out = {}
    for name, p in train_step.model.named_parameters():
        moment = train_step.optimizer.state.get(p, {}).get("exp_avg")
        if moment is not None:
            out[name] = moment.detach().cpu().double().numpy()
    return out


def _resolved(key: str, moments: dict[str, dict[str, np.ndarray]]) -> np.ndarray | None:
    """Elements of `key` whose Adam first moment float32 resolves (None: every element, e.g. SGD)."""
    if key not in moments.get("float64", {}) or key not in moments.get("torch", {}):
        return None
    exact = moments["float64"][key]
    noise = max((float(np.abs(moments[s][key] - exact).max()) for s in FLOAT32_SAMPLES if key in moments.get(s, {})),
                default=0.0) if exact.size else 0.0
    return np.abs(exact) > MOMENT_MARGIN * noise


def _rel_on(actual: np.ndarray, expected: np.ndarray, keep: np.ndarray | None) -> float:
    """`_rel` on the kept elements, still relative to the largest update of the whole tensor."""
    if keep is None:
        return _rel(actual, expected)
    scale = float(np.abs(expected).max()) if expected.size else 0.0
    if not np.all(np.isfinite(actual)):
        return float("inf")
    diff = float(np.abs(actual - expected)[keep].max()) if keep.any() else 0.0
    if scale == 0.0:
        return 0.0 if diff == 0.0 else float("inf")
    return diff / scale


def _tensor_errors(step: int, before: dict[str, np.ndarray], after: dict[str, dict[str, np.ndarray]],
                   flax_path_of: dict[str, Any], parameters: set[str], trainable: dict[str, bool],
                   noise_floor: bool, moments: dict[str, dict[str, np.ndarray]]) -> list[TensorError]:
    """Every tensor's update error in one step, in torch's state_dict order."""
    out = []
    for key in flax_path_of:
        update = {label: values[key] - before[key] for label, values in after.items()}
        kind = "statistic" if key not in parameters else ("param" if trainable[key] else "frozen")
        if kind == "frozen":
            moved = max(float(np.abs(update["jax"]).max()), float(np.abs(update["torch"]).max()))
            out.append(TensorError(key, step, 0.0 if moved == 0.0 else float("inf"), 0.0, 0.0, kind))
            continue
        keep = _resolved(key, moments) if noise_floor else None
        noise = max(_rel_on(update[s], update["float64"], keep) for s in FLOAT32_SAMPLES) if noise_floor else 0.0
        out.append(TensorError(key, step, _rel_on(update["jax"], update["torch"], keep),
                               max(UPDATE_TOLERANCE, NOISE_FACTOR * noise), noise, kind,
                               0 if keep is None else int(keep.size - keep.sum())))
    return out


SMALL_NORM_GROUP = 8  # a BatchNorm over fewer values per channel makes a float32 step ill-conditioned


def _small_batch_norms(model: Any, x: Any) -> list[str]:
    """Notes on the BatchNorms that normalise fewer than SMALL_NORM_GROUP values per channel on input `x`."""
    import torch
    from torch import nn

    sizes: dict[str, int] = {}

    def record(name: str, module: Any, args: tuple, output: Any) -> None:
        sizes.setdefault(name, args[0].numel() // args[0].shape[1])  # values per channel: N * H * W

    hooks = [m.register_forward_hook(functools.partial(record, name))
             for name, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    try:
        with torch.no_grad():
            model.eval()(x)
    finally:
        for hook in hooks:
            hook.remove()
    small = {name: n for name, n in sizes.items() if n < SMALL_NORM_GROUP}
    if not small:
        return []
    name, n = min(small.items(), key=lambda item: item[1])
    return [f"{len(small)} BatchNorm(s) normalise fewer than {SMALL_NORM_GROUP} values per channel ({name}: {n}); "
            "there the gradient is mostly float32 rounding, in either framework: use a larger batch or input"]


def compare_train_step(
    name: str,
    optimizer: str = "sgd",
    steps: int = 3,
    batch_size: int = 2,
    freeze: Any = 0,
    torch_model: Any = None,
    seed: int = 0,
    device: str = "cpu",
    noise_floor: bool = True,
    input_size: int | None = None,
) -> TrainParityResult:
    """Run `steps` torch and JAX train steps (float32) from the same weights, batches and labels; compare them.

    Without `torch_model` the weights are random everywhere (validation.suite's fitted
    random model, drawn from `seed`); with it, that model's weights (copied, not changed).
    `freeze`: stages to freeze, or 'backbone'. `noise_floor` measures float32's own error
    with a float64 torch step and a jittered float32 one (see the module docstring); off,
    every bound is the nominal one.
    """
    import jax
    import jax.numpy as jnp
    import torch

    from benchmarks import train_jax, train_torch
    from benchmarks.training import TrainConfig, train_labels
    from models.freezing import parse_freeze
    from models.porting import flax_paths, leaf_transform
    from models.torch_models import make_torch_preprocess
    from validation.compare import parity_images
    from validation.precision import float32_precision
    from validation.suite import random_torch_model

    spec = get_spec(name)
    family = get_family(spec.family)
    config = TrainConfig(optimizer=optimizer, freeze=parse_freeze(freeze))
    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps and batch_size must be >= 1, got steps={steps}, batch_size={batch_size}")
    if torch_model is None:
        torch.manual_seed(seed)  # the few tensors randomize_weights keeps come from the builder's init
        torch_model = random_torch_model(name, seed)
    reference = copy.deepcopy(torch_model).float().cpu()
    size = input_size or spec.input_size
    preprocess = make_torch_preprocess(spec)
    # Step k trains on batch k (images and labels drawn from seed + k - 1), the same in every run:
    # one batch seen three times is fitted after a step or two (loss ~1e-4 from random weights),
    # and the gradient of a fitted batch is mostly rounding.
    batches = [(preprocess(parity_images(batch_size, size, size, seed + k)), train_labels(spec.num_classes, batch_size, seed + k))
               for k in range(steps)]  # ((N, C, H, W), (N,))
    jitter_rng = np.random.default_rng(seed + 10_000)

    notes = _small_batch_norms(copy.deepcopy(reference), batches[0][0])
    runs: dict[str, Any] = {}
    with float32_precision("highest"):  # TF32 off on a GPU, in both
        model, trainable = train_torch.prepare(reference, name, config, device)
        runs["torch"] = (model, train_torch.TrainStep(model, config), lambda x: x)
        if noise_floor:
            model64, _ = train_torch.prepare(reference, name, config, device)
            model64 = model64.double()
            runs["float64"] = (model64, train_torch.TrainStep(model64, config), lambda x: x.double())
            jittered, _ = train_torch.prepare(reference, name, config, device)
            runs["jittered"] = (jittered, train_torch.TrainStep(jittered, config), lambda x: x * (
                1 + INPUT_JITTER * torch.from_numpy(jitter_rng.standard_normal(x.shape).astype(np.float32))))
        jax_step, state, _ = train_jax.build_step(name, reference, config, "float32", size, seed)
        jax_device = jax.devices("gpu" if device == "cuda" else "cpu")[0]
        state = jax.device_put(state, jax_device)

        state_dict = reference.state_dict()
        variables = state.variables()
        path_of = {k: p for k, p in flax_paths(state_dict, variables, family).items() if state_dict[k].is_floating_point()}
        back = {k: _to_torch_layout(leaf_transform(k, state_dict[k].ndim, variables, family), tuple(state_dict[k].shape))
                for k in path_of}

        forward = {k: leaf_transform(k, state_dict[k].ndim, variables, family) for k in path_of}
        parameters = {n for n, _ in reference.named_parameters()}
        tensors: list[TensorError] = []
        losses: dict[str, list[float]] = {k: [] for k in (*runs, "jax")}
        for step in range(1, steps + 1):
            before = _torch_state(model)
            if step > 1:  # every step starts from torch's float32 state; optimizer states stay each run's own
                state = jax.device_put(_load_torch_state(state, before, path_of, forward), jax_device)
                if noise_floor:
                    runs["float64"][0].load_state_dict(model.state_dict())
                    runs["jittered"][0].load_state_dict(model.state_dict())
            x_torch, labels = batches[step - 1]
            y_torch = torch.from_numpy(labels).to(device)
            for label, (_, fn, prepare_input) in runs.items():
                losses[label].append(float(fn(prepare_input(x_torch).to(device), y_torch)))
            x_jax = jax.device_put(jnp.asarray(x_torch.permute(0, 2, 3, 1).numpy()), jax_device)  # (N, C, H, W) -> (N, H, W, C)
            state, loss = jax_step(state, x_jax, jax.device_put(jnp.asarray(labels, jnp.int32), jax_device))
            losses["jax"].append(float(loss))
            after = {label: _torch_state(runs[label][0]) for label in runs}
            after["jax"] = _jax_state(state, path_of, back)
            moments = {label: _adam_moments(runs[label][1]) for label in runs}
            tensors += _tensor_errors(step, before, after, path_of, parameters, trainable, noise_floor, moments)
    checked = list(range(1, steps + 1))

    loss_rel, loss_bound, failures = 0.0, LOSS_TOLERANCE, []
    for step in checked:
        expected = losses["torch"][step - 1]
        rel = abs(losses["jax"][step - 1] - expected) / max(abs(expected), LOSS_SCALE_FLOOR)
        exact = losses["float64"][step - 1] if noise_floor else expected
        noise = max(abs(losses[s][step - 1] - exact) for s in FLOAT32_SAMPLES) / max(abs(exact), LOSS_SCALE_FLOOR) if noise_floor else 0.0
        bound = max(LOSS_TOLERANCE, NOISE_FACTOR * noise)
        loss_rel, loss_bound = max(loss_rel, rel), max(loss_bound, bound)
        if not rel <= bound:
            failures.append(f"loss after step {step}: relative difference {rel:.3g} > {bound:.3g}")
    bad = [t for t in tensors if not t.passed]
    for t in bad[:5]:
        what = "moved although frozen" if t.kind == "frozen" else f"update error {t.error:.3g} > {t.bound:.3g}"
        failures.append(f"{t.torch_key} (step {t.step}): {what}")
    if len(bad) > 5:
        failures.append(f"... and {len(bad) - 5} more tensors")
    first = next((t for step in checked for t in tensors if t.step == step and not t.passed), None)
    params = [t.error for t in tensors if t.kind != "statistic"]
    stats = [t.error for t in tensors if t.kind == "statistic"]
    return TrainParityResult(
        model=name, optimizer=optimizer, freeze=config.freeze, steps=steps, batch_size=batch_size,
        passed=not failures, loss_rel=loss_rel, param_max_rel=max(params, default=0.0),
        stat_max_rel=max(stats, default=0.0),
        first_diverging_param=first.torch_key if first else None, first_diverging_step=first.step if first else None,
        losses_torch=losses["torch"], losses_jax=losses["jax"], loss_bound=loss_bound,
        trainable_params=sum(p.numel() for n, p in reference.named_parameters() if trainable[n]),
        tensors=tensors, failures=failures, notes=notes,
    )

