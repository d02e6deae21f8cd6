"""The model-zoo doc's `models.torch_zoo`: the torch half of `models`, under the documented path."""

from models import get_model_info, get_torch_model, list_models

__all__ = ["get_model_info", "get_torch_model", "list_models"]
