"""A wrong Swin port fails parity, and the report names the torch layer where it went wrong.

Each bug is one plausible mistake in reproducing torchvision's Swin (v1 and v2), planted with
monkeypatch into `models.flax_swin`'s module-level steps, on random weights made trained-like
(sharp attention, O(1) position biases, v2 logit scales on both sides of the clamp at log(100):
tests/swin_weights.py); on plain random weights a transposed bias index sits at the float32 bound.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
import pytest

from models import flax_swin
from tests.swin_weights import trained_like_torch_model
from validation.suite import check, forget_compiled, port

V1, V2 = "swin_tiny_test", "swin_v2_tiny_test"
BATCH_SIZES = (1, 5)


@pytest.fixture(scope="module")
def torch_models() -> dict[str, object]:
    """One trained-like random torch model per tiny variant (tests/swin_weights.py)."""
    return {name: trained_like_torch_model(name) for name in (V1, V2)}


def _replace(attribute: str, value) -> callable:
    def plant(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
        monkeypatch.setattr(flax_swin, attribute, value)
        forget_compiled()  # the correct module's compilations must not be reused,
        request.addfinalizer(forget_compiled)  # nor this one's by later tests

    return plant


_RELATIVE_POSITION_INDEX = flax_swin.relative_position_index


def _transposed_index(window: int) -> np.ndarray:
    n = window * window
    return _RELATIVE_POSITION_INDEX(window).reshape(n, n).T.reshape(-1)  # key minus query


def _shift_the_other_way(x: jnp.ndarray, shifts: tuple[int, int]) -> jnp.ndarray:
    return jnp.roll(x, (-shifts[0], -shifts[1]), axis=(1, 2))  # rolls down/right first, back up/left after


# bug id -> (model, how to plant it, first diverging torch layer)
BUGS = {
    "mask_off": (V1, _replace("shifted_window_mask", lambda h, w, win, sh, sw: np.zeros(
        ((h // win) * (w // win), win * win, win * win), np.float32)), "features.1.1.attn"),
    "shift_sign_flipped": (V1, _replace("cyclic_shift", _shift_the_other_way), "features.1.1.attn"),
    "relative_position_index_transposed": (V1, _replace("relative_position_index", _transposed_index),
                                           "features.1.0.attn"),
    "relative_position_index_transposed_v2": (V2, _replace("relative_position_index", _transposed_index),
                                              "features.1.0.attn"),
    "patch_merging_concat_order_swapped": (V1, _replace("MERGE_OFFSETS", ((0, 0), (0, 1), (1, 0), (1, 1))),
                                           "features.2.norm"),
    "patch_merging_concat_order_swapped_v2": (V2, _replace("MERGE_OFFSETS", ((0, 0), (0, 1), (1, 0), (1, 1))),
                                              "features.2.reduction"),
    "logit_scale_not_clamped": (V2, _replace("LOGIT_SCALE_MAX", math.inf), "features.1.0.attn"),
    "cpb_without_16_sigmoid": (V2, _replace("continuous_position_bias", lambda b: b), "features.1.0.attn"),
    "key_bias_not_zeroed": (V2, _replace("key_bias_zeroed", lambda b: b), "features.1.0.attn"),
}


@pytest.mark.parametrize("model", [V1, V2])
def test_correct_swin_port_passes_at_each_batch_size(model: str, torch_models) -> None:
    # The control: the same models and batches pass when nothing is broken (v2 with clamped scales).
    if model == V2:
        scales = [p for n, p in torch_models[V2].named_parameters() if n.endswith("logit_scale")]
        assert max(float(s.detach().max()) for s in scales) > math.log(100) > min(float(s.detach().min()) for s in scales)
    pair = port(model, torch_models[model])
    for batch in BATCH_SIZES:
        result = check(pair, "float32", "cpu", batch=batch)
        assert result.passed, result.message()


@pytest.mark.parametrize("bug", list(BUGS))
def test_wrong_swin_port_fails_parity_and_names_the_first_wrong_layer(bug: str, torch_models, monkeypatch,
                                                                        request) -> None:
    model, plant, layer = BUGS[bug]
    plant(monkeypatch, request)
    pair = port(model, torch_models[model])
    for batch in BATCH_SIZES:
        result = check(pair, "float32", "cpu", batch=batch)
        assert not result.passed, f"{bug} passed float32 parity at batch {batch}: {result.message()}"
        assert result.first_diverging_layer == layer, result.message()
        assert f"first diverging layer: {layer}" in result.message()

