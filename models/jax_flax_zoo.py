"""The model-zoo doc's `models.jax_flax_zoo`: the Flax half of `models`, under the documented path."""

from models import get_flax_model, get_model_info, list_models

__all__ = ["get_flax_model", "get_model_info", "list_models"]
