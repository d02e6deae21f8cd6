"""The zoo's families: importing this package registers every family and its variants.

A new family is one file here (its record: variants, torch builder, port rules,
calibration hook, layouts), its Flax twin in `models/flax_<family>.py`, and one line below.
"""

from importlib import import_module

FAMILY_MODULES = (
    "resnet",
    "vit",
    "efficientnet",
    "convnext",
    "deit",
    "swin",
)

for _name in FAMILY_MODULES:
    import_module(f"models.families.{_name}")
