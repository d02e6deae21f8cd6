"""Every registered model, as data. A new model is one `register(ModelSpec(...))` here.

`params` and `macs` are torchvision's published figures for the real models (weights
metadata `num_params` and `_ops`, GFLOPS there meaning multiply-adds); for the tiny
test-only variants they are what the builders produce. tests/test_model_counts.py
re-counts every one of them from the built models in both frameworks.
"""

from models.registry import ModelSpec, register

# ResNet: torchvision's v1.5 ResNet (stride on the 3x3 conv of the bottleneck).
register(
    ModelSpec(
        name="resnet50",
        family="resnet",
        config={"block": "bottleneck", "layers": (3, 4, 6, 3)},
        input_size=224,
        params=25_557_032,
        macs=4_089_184_256,
        torchvision_weights="ResNet50_Weights.IMAGENET1K_V1",
    )
)
register(
    ModelSpec(
        name="resnet_tiny",
        family="resnet",
        config={"block": "bottleneck", "layers": (1, 1, 1, 1)},
        input_size=32,
        num_classes=10,
        params=8_036_426,
        macs=29_954_048,
        test_only=True,
    )
)

# ViT: torchvision's VisionTransformer (class token first, then position embedding).
register(
    ModelSpec(
        name="vit_b_16",
        family="vit",
        config={"patch_size": 16, "num_layers": 12, "num_heads": 12, "hidden_dim": 768, "mlp_dim": 3072},
        input_size=224,
        params=86_567_656,
        macs=17_563_828_224,
        torchvision_weights="ViT_B_16_Weights.IMAGENET1K_V1",
    )
)
register(
    ModelSpec(
        name="vit_tiny",
        family="vit",
        config={"patch_size": 8, "num_layers": 2, "num_heads": 2, "hidden_dim": 32, "mlp_dim": 64},
        input_size=32,
        num_classes=10,
        params=24_234,
        macs=414_144,
        test_only=True,
    )
)
