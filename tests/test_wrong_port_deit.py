"""A wrong DeiT port fails parity, and the report names the torch layer where it went wrong.

The tests/test_wrong_port.py pattern on the distilled tiny variant (both prefix tokens,
both heads): each bug is a plausible mistake in porting timm's DeiT, planted with
monkeypatch into porting or the Flax twin's token assembly, head or attention scale,
on random weights everywhere. `pos_drop` (timm's rate-0 dropout) is the module whose
output is the assembled, position-embedded tokens, so token bugs are named there.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from tests.planted import zero_a_ported_leaf

from models import flax_deit
from validation.suite import check, forget_compiled, port, random_torch_model

MODEL = "deit_test_distilled"
BATCH_SIZES = (1, 5)


@pytest.fixture(scope="module")
def torch_model() -> object:
    """The module's one random-weight distilled tiny DeiT."""
    return random_torch_model(MODEL)


def _forget_compilations(request: pytest.FixtureRequest) -> None:
    forget_compiled()  # the correct module's compilations must not be reused,
    request.addfinalizer(forget_compiled)  # nor the broken one's by later tests


def _drop_distillation_token(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    zero_a_ported_leaf(monkeypatch, "dist_token")


def _order_tokens_dist_cls(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    assemble = flax_deit.assemble_tokens
    monkeypatch.setattr(flax_deit, "assemble_tokens", lambda prefix, patches, pos: assemble(prefix[::-1], patches, pos))
    _forget_compilations(request)


def _add_position_embedding_before_concat(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    # DeiT III's order (timm's no_embed_class): patches get their embeddings, the prefix tokens none.
    def before_concat(prefix, patches, pos):
        n, _, d = patches.shape
        patches = patches + pos[:, len(prefix):]
        return jnp.concatenate([jnp.broadcast_to(t, (n, 1, d)) for t in prefix] + [patches], axis=1)

    monkeypatch.setattr(flax_deit, "assemble_tokens", before_concat)
    _forget_compilations(request)


def _class_head_only(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    monkeypatch.setattr(flax_deit, "combine_heads", lambda logits, logits_dist: logits)
    _forget_compilations(request)


def _attention_scale_one_over_head_dim(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    monkeypatch.setattr(flax_deit, "attention_scale", lambda head_dim: 1.0 / head_dim)
    _forget_compilations(request)


# bug id -> (how to plant it, first diverging torch layer, caught in bfloat16 too)
# On timm's random init (qkv std 0.02) attention is near-uniform, so token and scale bugs
# move the logits by 2-8% of their scale: past float32's bound, within half precision's
# cosine >= 0.99 (measured in bfloat16: cosine 0.9990-0.9996). Only float32 is asked to see them.
BUGS = {
    "distillation_token_dropped": (_drop_distillation_token, "pos_drop", False),
    "tokens_ordered_dist_cls": (_order_tokens_dist_cls, "pos_drop", False),
    "position_embedding_before_concat": (_add_position_embedding_before_concat, "pos_drop", False),
    "eval_output_class_head_only": (_class_head_only, "(output)", True),
    "attention_scale_wrong": (_attention_scale_one_over_head_dim, "blocks.0.attn.proj", False),
}


def test_correct_port_passes_at_each_batch_size(torch_model) -> None:
    # The control: the same model, batches and tolerances pass when nothing is broken.
    pair = port(MODEL, torch_model)
    for batch in BATCH_SIZES:
        for dtype in ("float32", "bfloat16"):
            result = check(pair, dtype, "cpu", batch=batch)
            assert result.passed, result.message()
            assert result.first_diverging_layer is None


@pytest.mark.parametrize("bug", list(BUGS))
def test_wrong_deit_port_fails_parity_and_names_the_first_wrong_layer(bug: str, torch_model, monkeypatch, request) -> None:
    plant, layer, caught_in_half = BUGS[bug]
    plant(monkeypatch, request)
    pair = port(MODEL, torch_model)
    for batch in BATCH_SIZES:
        result = check(pair, "float32", "cpu", batch=batch)
        assert not result.passed, f"{bug} passed float32 parity at batch {batch}: {result.message()}"
        assert result.first_diverging_layer == layer, result.message()
        assert f"first diverging layer: {layer}" in result.message()
    if caught_in_half:
        result = check(pair, "bfloat16", "cpu", batch=max(BATCH_SIZES))
        assert not result.passed, f"{bug} passed bfloat16 parity: {result.message()}"
        assert result.first_diverging_layer == layer, result.message()
