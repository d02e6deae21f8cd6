"""What a train step does, in framework-neutral terms: optimizer, hyper-parameters, freezing, labels.

Both back ends (`benchmarks/train_torch.py`, `benchmarks/train_jax.py`) build their one
train step from a `TrainConfig`, so a torch/JAX step does the same arithmetic:
softmax cross-entropy on integer labels (mean over the batch), backward, one optimizer
update, BatchNorm running statistics updated; dropout and stochastic depth off unless
`stochastic` (then each framework draws its own masks and the steps differ).

Optimizers and the update each one applies, identical in both frameworks
(p: parameter, g: gradient of the mean loss, t: step number from 1):
- sgd: g' = g + wd * p (decayed tensors only), buf = momentum * buf + g' (buf = g' at
  t = 1; no dampening, not Nesterov), p -= lr * buf. torch.optim.SGD; optax
  add_decayed_weights -> trace -> scale(-lr).
- adamw: m = b1 m + (1 - b1) g, v = b2 v + (1 - b2) g^2,
  p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps) + lr * wd * p (decoupled decay
  on the pre-step p, decayed tensors only). torch.optim.AdamW; optax scale_by_adam(eps_root=0)
  -> add_decayed_weights -> scale(-lr). torch computes the denominator as
  sqrt(v) / sqrt(1 - b2^t) + eps, optax as sqrt(v / (1 - b2^t)) + eps: equal but rounded differently.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from models.freezing import BACKBONE, Freeze

OPTIMIZERS = ("sgd", "adamw")
# Dynamic loss scaling of float16 steps, as torch.amp.GradScaler's defaults: start at 2^16,
# halve and skip the update on a non-finite gradient, double after 2000 finite steps in a row.
LOSS_SCALE = {"init_scale": 2.0**16, "growth_factor": 2.0, "backoff_factor": 0.5, "growth_interval": 2000}
# Hyper-parameters per optimizer: the usual ImageNet settings (ResNet SGD; ViT/DeiT AdamW).
HYPER_PARAMETERS: dict[str, dict[str, float]] = {
    "sgd": {"learning_rate": 0.1, "weight_decay": 1e-4, "momentum": 0.9},
    "adamw": {"learning_rate": 1e-3, "weight_decay": 0.05, "b1": 0.9, "b2": 0.999, "eps": 1e-8},
}


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """One train step's settings: optimizer, frozen stages, stochastic layers."""

    optimizer: str = "sgd"
    freeze: Freeze = 0
    stochastic: bool = False  # dropout / stochastic depth on (each framework draws its own masks)

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; choose from {', '.join(OPTIMIZERS)}")

    @property
    def hyper(self) -> dict[str, float]:
        """The optimizer's hyper-parameters."""
        return HYPER_PARAMETERS[self.optimizer]

    def record(self) -> dict[str, Any]:
        """The fields a train record carries about the step's settings."""
        return {
            "optimizer": self.optimizer,
            **{k: v for k, v in self.hyper.items()},
            "freeze": self.freeze,
            "stochastic_layers": "on" if self.stochastic else "off",
        }


def train_labels(num_classes: int, batch_size: int, seed: int) -> np.ndarray:
    """The integer class labels of the train batch, (N,), the same in both frameworks."""
    return np.random.default_rng(seed + 1).integers(0, num_classes, batch_size).astype(np.int64)


def precision_policy(framework: str, dtype: str) -> str:
    """What a train step of `framework` in `dtype` computes in, in words (recorded)."""
    if dtype == "float32":
        return "float32"
    scaling = {"float16": ", dynamic loss scaling (init 2^16, x2 every 2000 finite steps, x0.5 and skip on inf/nan)",
               "bfloat16": ""}[dtype]
    if framework == "torch":
        return f"torch.autocast({dtype}) forward, float32 master weights and optimizer, loss in float32{scaling}"
    return (f"Flax module dtype {dtype} (params cast to {dtype} where used, inputs cast in the step), float32 master "
            f"weights and optimizer, norm statistics and loss in float32{scaling}")


__all__ = ["BACKBONE", "HYPER_PARAMETERS", "LOSS_SCALE", "OPTIMIZERS", "TrainConfig", "precision_policy", "train_labels"]
