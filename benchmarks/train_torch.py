"""torch train step: one function (forward, loss, backward, optimizer update) and its workload.

Eager by default; `--torch-compile` compiles the same step function. The model keeps
float32 master weights; half precision is `torch.autocast` (float16 adds a GradScaler).
Frozen parameters have `requires_grad=False` and are not given to the optimizer, so no
gradient is computed for them.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import time
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from benchmarks import backend_torch
from benchmarks import weights as shared_weights
from benchmarks.training import LOSS_SCALE, TrainConfig, precision_policy, train_labels
from benchmarks.workload import BuildOptions, Combination, Workload
from models.freezing import count_trainable, decays, frozen_stages, trainable_keys
from models.registry import get_spec
from models.torch_models import build_torch_model

_HALF = {"float16": torch.float16, "bfloat16": torch.bfloat16}


def is_stochastic(module: nn.Module) -> bool:
    """Dropout and stochastic depth layers: random in train mode, identity in eval."""
    return isinstance(module, nn.modules.dropout._DropoutNd) or type(module).__name__ in ("StochasticDepth", "DropPath")


def set_train_mode(model: nn.Module, stochastic: bool = False) -> nn.Module:
    """`model` in train mode (norms use and update batch statistics); dropout and stochastic depth stay off unless `stochastic`."""
    model.train()
    if not stochastic:
        for module in model.modules():
            if is_stochastic(module):
                module.eval()
    return model


def freeze(model: nn.Module, trainable: dict[str, bool]) -> nn.Module:
    """Turn gradients off for every parameter `trainable` marks False, in place."""
    for name, p in model.named_parameters():
        p.requires_grad_(trainable[name])
    return model


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """The optimizer over `model`'s trainable parameters; no weight decay on tensors of <= 1 dimension."""
    hyper = config.hyper
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if decays(p.shape)], "weight_decay": hyper["weight_decay"]},
        {"params": [p for p in params if not decays(p.shape)], "weight_decay": 0.0},
    ]
    groups = [g for g in groups if g["params"]]
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=hyper["learning_rate"], momentum=hyper["momentum"], dampening=0.0, nesterov=False)
    return torch.optim.AdamW(groups, lr=hyper["learning_rate"], betas=(hyper["b1"], hyper["b2"]), eps=hyper["eps"])


def _no_clock(phase: str) -> None:
    return None


class TrainStep:
    """One train step of `model` (float32 master weights, on its device) under `config`, computing in `dtype`."""

    def __init__(self, model: nn.Module, config: TrainConfig, dtype: str = "float32") -> None:
        self.model = model
        self.config = config
        self.device = next(model.parameters()).device
        self.optimizer = make_optimizer(model, config)
        half = _HALF.get(dtype)
        self.autocast: Callable[[], Any] = (
            functools.partial(torch.autocast, device_type=self.device.type, dtype=half) if half else contextlib.nullcontext
        )
        self.scaler = torch.amp.GradScaler(self.device.type, **LOSS_SCALE) if dtype == "float16" else None

    def restart_point(self) -> Callable[[], None]:
        """A function that brings the model, optimizer and loss scale back to their state now.

        Everything is restored in place, so a compiled step keeps its graphs: the weights and
        buffers from a host copy; the optimizer's state tensors are zeroed, which is exactly a
        fresh state for AdamW (step, both moments start at 0) and for SGD with dampening 0
        (a zero momentum buffer updated with the gradient equals the gradient).
        """
        weights = {k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()}
        scaler = self.scaler.state_dict() if self.scaler is not None else None

        def restart() -> None:
            self.model.load_state_dict(weights)
            with torch.no_grad():
                for state in self.optimizer.state.values():
                    for value in state.values():
                        if isinstance(value, torch.Tensor):
                            value.zero_()
            if scaler is not None:
                self.scaler.load_state_dict(scaler)

        return restart

    def __call__(self, x: torch.Tensor, labels: torch.Tensor, clock: Callable[[str], None] = _no_clock) -> torch.Tensor:
        """Forward, mean cross-entropy, backward, update; returns the loss (not synchronised).

        `clock(phase)` is called after each phase ('forward', 'backward', 'optimizer').
        """
        self.optimizer.zero_grad(set_to_none=True)
        with self.autocast():
            logits = self.model(x)
        loss = F.cross_entropy(logits.float(), labels)
        clock("forward")
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            clock("backward")
            self.scaler.step(self.optimizer)  # unscales; skips the update on inf/nan
            self.scaler.update()
        else:
            loss.backward()
            clock("backward")
            self.optimizer.step()
        clock("optimizer")
        return loss.detach()


def prepare(reference: nn.Module, model_name: str, config: TrainConfig, device: str = "cpu") -> tuple[nn.Module, dict[str, bool]]:
    """A float32 copy of `reference` on `device`, in train mode, frozen as `config` says; and the trainable map."""
    model = copy.deepcopy(reference).to(device=device, dtype=torch.float32)
    trainable = trainable_keys(get_spec(model_name), model, config.freeze)
    return set_train_mode(freeze(model, trainable), config.stochastic), trainable


@functools.lru_cache(maxsize=None)
def train_flops_per_image(model_name: str, input_size: int, config: TrainConfig) -> int:
    """FLOPs of one image's forward + backward in train mode (2 per multiply-add), by FlopCounterMode.

    Counted on a batch of 2 (BatchNorm needs more than one value per channel) and halved;
    the optimizer's element-wise update is not a matmul or convolution and is not counted.
    """
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    model, _ = prepare(build_torch_model(get_spec(model_name), input_size), model_name, config)
    x = torch.zeros(2, 3, input_size, input_size)
    labels = torch.zeros(2, dtype=torch.long)
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        F.cross_entropy(model(x), labels).backward()
    return int(counter.get_total_flops()) // 2


class PhaseClock:
    """Wall time of each phase of one step, the device synchronised at every mark."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.times_ms: dict[str, float] = {}
        self._last = time.perf_counter()

    def __call__(self, phase: str) -> None:
        backend_torch._sync(self.device)
        now = time.perf_counter()
        self.times_ms[phase] = (now - self._last) * 1e3
        self._last = now


def build_train_workload(combo: Combination, options: BuildOptions) -> Workload:
    """`combo` (mode 'train') as a torch workload: the run's reference weights, one train step per call."""
    spec = get_spec(combo.model)
    config = options.train
    size = combo.input_size or spec.input_size
    torch.set_num_threads(options.threads)
    torch.backends.cuda.matmul.allow_tf32 = options.tf32
    torch.backends.cudnn.allow_tf32 = options.tf32
    reference, weights_label = shared_weights.reference_torch_model(spec, options, combo.input_size)
    model, trainable = prepare(reference, combo.model, config, combo.device)
    step = TrainStep(model, config, combo.dtype)
    images = shared_weights.input_batch(spec, combo.batch_size, options.seed, combo.input_size)  # (N, C, H, W)
    x = torch.from_numpy(images).to(combo.device)  # float32: autocast casts where it computes in half
    labels = torch.from_numpy(train_labels(spec.num_classes, combo.batch_size, options.seed)).to(combo.device)

    restart = step.restart_point()
    run_step: Callable[..., torch.Tensor] = step
    compile_ms = None
    if options.torch_compile:
        run_step = torch.compile(step)
        start = time.perf_counter()
        run_step(x, labels)
        backend_torch._sync(combo.device)
        compile_ms = (time.perf_counter() - start) * 1e3
        restart()  # the compiling step is not one of the run's steps (JAX compiles without stepping)

    losses: list[torch.Tensor] = []
    phases: list[dict[str, float]] = []
    timing = {"started": False}

    def run() -> torch.Tensor:
        if timing["started"] or options.torch_compile:
            loss = run_step(x, labels)
            backend_torch._sync(combo.device)
        else:  # untimed calls (first, warm-up) measure the forward / backward / optimizer split
            clock = PhaseClock(combo.device)
            loss = step(x, labels, clock)
            phases.append(clock.times_ms)
        losses.append(loss)
        return loss

    def start_timing() -> None:
        # The runner resets the memory peaks right before the timed calls: from here on the
        # step runs unbroken, and the losses logged are the timed steps'.
        timing["started"] = True
        losses.clear()
        backend_torch.reset_memory(combo.device)

    def timed_extra() -> dict[str, Any]:
        out: dict[str, Any] = {"train_losses": [float(loss) for loss in losses]}
        if phases:
            out.update({f"step_{phase}_ms": ms for phase, ms in phases[-1].items()})
            out["step_split_source"] = "last untimed eager step, synchronised between phases"
        else:
            out["step_split_source"] = "not measured: torch.compile runs the step as compiled graphs"
        return out

    return Workload(
        combo=combo,
        run=run,
        device_name=backend_torch.device_name(combo.device),
        input_shape=tuple(x.shape),
        params=sum(p.numel() for p in model.parameters()),
        flops=train_flops_per_image(combo.model, size, config) * combo.batch_size,
        flops_source="torch.utils.flop_counter (forward + backward)",
        threads=torch.get_num_threads(),
        compile_ms=compile_ms,
        weights=weights_label,
        reset_memory=start_timing,
        memory=functools.partial(backend_torch.memory, combo.device),
        timed_extra=timed_extra,
        restart=restart,
        extra={
            "torch_compile": options.torch_compile,
            "tf32": options.tf32,
            **config.record(),
            "frozen_stages": frozen_stages(spec, config.freeze),
            "trainable_params": count_trainable(model, trainable),
            "precision_policy": precision_policy("torch", combo.dtype),
        },
    )
