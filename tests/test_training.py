"""The train step's parts: freezing by family stages, weight-decay masks, BatchNorm, loss scaling, dropout."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import linen as nn

from benchmarks import train_jax, train_torch
from benchmarks.training import LOSS_SCALE, TrainConfig
from models import flax_layers
from models.freezing import BACKBONE, freeze_reason, parse_freeze, trainable_keys
from models.registry import get_spec
from models.torch_models import build_torch_model


@pytest.mark.parametrize("model, freeze, frozen_prefixes, trained_prefixes", [
    ("resnet_tiny", 1, ("conv1.", "bn1.", "layer1."), ("layer2.", "layer4.", "fc.")),
    ("resnet_tiny", 3, ("conv1.", "layer3."), ("layer4.", "fc.")),
    ("resnet_tiny", BACKBONE, ("conv1.", "layer4."), ("fc.",)),
    ("vit_tiny", 1, ("conv_proj.", "class_token", "encoder.pos_embedding", "encoder.layers.encoder_layer_0."),
     ("encoder.layers.encoder_layer_1.", "encoder.ln.", "heads.")),
    ("vit_tiny", 2, ("encoder.layers.encoder_layer_1.", "encoder.ln."), ("heads.",)),
])
def test_freeze_follows_the_family_stages(model, freeze, frozen_prefixes, trained_prefixes) -> None:
    spec = get_spec(model)
    trainable = trainable_keys(spec, build_torch_model(spec), freeze)
    for key, trains in trainable.items():
        if key.startswith(frozen_prefixes):
            assert not trains, f"{key} should be frozen by --freeze {freeze}"
        if key.startswith(trained_prefixes):
            assert trains, f"{key} should be trained with --freeze {freeze}"
    assert any(trainable.values()) and not all(trainable.values())


def test_freeze_values_and_limits() -> None:
    assert parse_freeze("2") == 2 and parse_freeze("backbone") == BACKBONE
    for bad in ("-1", "all", "1.5"):
        with pytest.raises(ValueError, match="backbone"):
            parse_freeze(bad)
    assert freeze_reason(get_spec("resnet_tiny"), 4) is None
    assert "has 4 stages" in freeze_reason(get_spec("resnet_tiny"), 5)
    assert freeze_reason(get_spec("vit_tiny"), BACKBONE) is None


def test_both_frameworks_train_and_decay_the_same_tensors() -> None:
    spec = get_spec("resnet_tiny")
    model = build_torch_model(spec)
    config = TrainConfig("sgd", freeze=2)
    torch_model, trainable = train_torch.prepare(model, spec.name, config)
    optimizer = train_torch.make_optimizer(torch_model, config)
    decayed_torch = {id(p) for g in optimizer.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    names = {id(p): n for n, p in torch_model.named_parameters()}
    _, state, torch_keys = train_jax.build_step(spec.name, model, config)
    assert {torch_keys[p] for p in state.params} == {n for n, t in trainable.items() if t}
    assert {torch_keys[p] for p in state.frozen} == {n for n, t in trainable.items() if not t}
    _, decayed, _ = train_jax.param_masks(spec.name, model, state.variables(), config)
    assert {torch_keys[p] for p, d in decayed.items() if d and p in state.params} == {names[i] for i in decayed_torch}
    assert all("bn" not in names[i] and not names[i].endswith(".bias") for i in decayed_torch)


def test_torch_batch_norm_matches_torch_in_training() -> None:
    # Normalised with the biased batch variance, running variance updated with the unbiased one.
    x = np.random.default_rng(0).standard_normal((3, 2, 2, 5)).astype(np.float32) * 2 + 1  # (N, H, W, C)
    torch_bn = torch.nn.BatchNorm2d(5).train()
    expected = torch_bn(torch.from_numpy(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).detach().numpy()
    layer = flax_layers.TorchBatchNorm(use_running_average=False)
    variables = layer.init(jax.random.PRNGKey(0), jnp.asarray(x))
    y, updated = layer.apply(variables, jnp.asarray(x), mutable=["batch_stats"])
    np.testing.assert_allclose(np.asarray(y), expected, atol=1e-5)
    np.testing.assert_allclose(np.asarray(updated["batch_stats"]["var"]), torch_bn.running_var.numpy(), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(updated["batch_stats"]["mean"]), torch_bn.running_mean.numpy(), atol=1e-7)

    def loss(x, scale, bias):  # the custom gradient against torch's own
        return jnp.sum(flax_layers.batch_normalize(x, scale, bias, 1e-5)[0] * jnp.arange(5.0))

    grads = jax.grad(loss, argnums=(0, 1, 2))(jnp.asarray(x), jnp.ones(5), jnp.zeros(5))
    tx = torch.from_numpy(x).permute(0, 3, 1, 2).requires_grad_(True)
    fresh = torch.nn.BatchNorm2d(5).train()
    (fresh(tx) * torch.arange(5.0).view(1, 5, 1, 1)).sum().backward()
    np.testing.assert_allclose(np.asarray(grads[0]), tx.grad.permute(0, 2, 3, 1).numpy(), atol=1e-5)
    np.testing.assert_allclose(np.asarray(grads[1]), fresh.weight.grad.numpy(), atol=1e-5)
    np.testing.assert_allclose(np.asarray(grads[2]), fresh.bias.grad.numpy(), atol=1e-5)


def test_loss_scale_follows_grad_scaler() -> None:
    # The same sequence of finite / non-finite steps gives the same scale as torch's GradScaler.
    param = torch.nn.Parameter(torch.ones(1))
    optimizer = torch.optim.SGD([param], lr=0.0)
    scaler = torch.amp.GradScaler("cpu", **{**LOSS_SCALE, "growth_interval": 3})
    ours = train_jax.LossScale.create()
    pattern = [True, True, True, False, True, True, True, True, False, False, True]
    for finite in pattern:
        optimizer.zero_grad()
        scaler.scale((param * (1.0 if finite else float("inf"))).sum()).backward()
        scaler.step(optimizer)
        scaler.update()
        with pytest.MonkeyPatch.context() as patch:
            patch.setitem(LOSS_SCALE, "growth_interval", 3)
            ours = ours.adjust(jnp.asarray(finite))
        assert float(ours.scale) == scaler.get_scale(), f"after {finite}"


class _Dropped(nn.Module):
    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        return nn.Dropout(0.5, deterministic=not train)(nn.Dense(4)(x))


def test_dropout_is_identity_in_train_steps_unless_asked() -> None:
    module = _Dropped()
    x = jnp.ones((2, 3))
    variables = module.init(jax.random.PRNGKey(0), x)
    with nn.intercept_methods(train_jax._dropout_off):
        on = module.apply(variables, x, train=True)
    np.testing.assert_array_equal(np.asarray(on), np.asarray(module.apply(variables, x, train=False)))
    stochastic = module.apply(variables, x, train=True, rngs={"dropout": jax.random.PRNGKey(1)})
    assert np.any(np.asarray(stochastic) == 0.0), "with dropout on, some activations are dropped"

    torch_model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Dropout(0.5), torch.nn.BatchNorm1d(4))
    train_torch.set_train_mode(torch_model)
    assert torch_model[2].training and not torch_model[1].training
    train_torch.set_train_mode(torch_model, stochastic=True)
    assert torch_model[1].training


@pytest.mark.parametrize("optimizer, dtype", [("sgd", "float32"), ("adamw", "float32"), ("adamw", "float16")])
def test_torch_restart_point_replays_the_same_steps(optimizer, dtype) -> None:
    # The harness restarts a train workload that already stepped as an interleaving partner:
    # the steps after a restart must be the very steps a fresh workload takes.
    model, _ = train_torch.prepare(build_torch_model(get_spec("resnet_tiny"), 32), "resnet_tiny", TrainConfig(optimizer))
    step = train_torch.TrainStep(model, TrainConfig(optimizer), dtype)
    restart = step.restart_point()
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((4, 3, 32, 32), dtype=np.float32))
    labels = torch.tensor([1, 2, 3, 4])
    first = [float(step(x, labels)) for _ in range(3)]
    scales = [step.scaler.get_scale()] if step.scaler is not None else []
    # the steps move the weights; float16 on CPU: the first steps overflow and back the scale off
    assert first[0] != first[2] or scales[0] < LOSS_SCALE["init_scale"]
    restart()
    if step.scaler is not None:
        assert step.scaler.get_scale() == LOSS_SCALE["init_scale"]
    assert [float(step(x, labels)) for _ in range(3)] == first
    assert scales == ([step.scaler.get_scale()] if step.scaler is not None else [])
