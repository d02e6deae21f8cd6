"""A wrong train step fails train parity, and the report names the first parameter that diverged.

Each bug is planted in the JAX step with pytest's monkeypatch, on random weights
(validation.compare_train_step's own), with torch's step as the reference.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
import pytest

from benchmarks import train_jax
from models import flax_layers
from validation.train_parity import compare_train_step


def _decay_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    # Weight decay on BatchNorm scales and biases (and every other 1-D tensor).
    monkeypatch.setattr(train_jax, "decay_keys", lambda model: {n: True for n, _ in model.named_parameters()})


def _biased_running_variance(monkeypatch: pytest.MonkeyPatch) -> None:
    # Flax's own BatchNorm: the running variance takes the biased batch variance.
    monkeypatch.setattr(flax_layers, "unbiased", lambda var, n: var)


class _DampenedState(NamedTuple):
    trace: Any
    count: jnp.ndarray


def _dampened_momentum(decay: float, dampening: float = 0.1) -> optax.GradientTransformation:
    # torch's SGD with dampening: buf = g at step 1, then decay * buf + (1 - dampening) * g.
    def init(params: Any) -> _DampenedState:
        return _DampenedState(jax.tree_util.tree_map(jnp.zeros_like, params), jnp.zeros([], jnp.int32))

    def update(updates: Any, state: _DampenedState, params: Any = None) -> tuple[Any, _DampenedState]:
        first = state.count == 0
        trace = jax.tree_util.tree_map(lambda g, t: jnp.where(first, g, decay * t + (1 - dampening) * g), updates, state.trace)
        return trace, _DampenedState(trace, state.count + 1)

    return optax.GradientTransformation(init, update)


def _dampening(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(train_jax, "_momentum", _dampened_momentum)


def _frozen_still_trained(monkeypatch: pytest.MonkeyPatch) -> None:
    # JAX trains every parameter while torch freezes the first stage.
    real = train_jax.trainable_keys
    monkeypatch.setattr(train_jax, "trainable_keys", lambda spec, model, freeze: {k: True for k in real(spec, model, freeze)})


# bug -> (model, optimizer, freeze, how to plant it, first diverging torch key, its step)
BUGS = {
    "weight_decay_on_batchnorm": ("resnet_tiny", "adamw", 0, _decay_everything, "bn1.weight", 1),
    "weight_decay_on_layernorm_and_biases": ("vit_tiny", "sgd", 0, _decay_everything, "encoder.layers.encoder_layer_0.ln_1.weight", 1),
    "biased_running_variance": ("resnet_tiny", "sgd", 0, _biased_running_variance, "bn1.running_var", 1),
    "momentum_dampening": ("vit_tiny", "sgd", 0, _dampening, "class_token", 2),
    "frozen_layer_still_updated": ("resnet_tiny", "sgd", 1, _frozen_still_trained, "conv1.weight", 1),
}


@pytest.mark.parametrize("bug", list(BUGS))
def test_wrong_train_step_fails_parity_and_names_the_first_wrong_parameter(bug: str, monkeypatch) -> None:
    model, optimizer, freeze, plant, key, step = BUGS[bug]
    plant(monkeypatch)
    result = compare_train_step(model, optimizer, steps=3, batch_size=8, freeze=freeze)
    assert not result.passed, f"{bug} passed train parity: {result.message()}"
    assert (result.first_diverging_param, result.first_diverging_step) == (key, step), result.message()
    assert f"first diverging parameter: {key} (step {step})" in result.message()
