"""The visualizer's page data: layer trees measured from the models, their pairing, parity colours, bad input.

Fast: tiny models, and tracing (no compute) for the real models' Flax trees.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch

import models
from models import get_model_info, porting
from visualizer import attention, catalog, compute
from visualizer.catalog import NotFound
from visualizer.flax_tree import flax_tree
from visualizer.pairing import pair_trees
from visualizer.parity import layer_parity
from visualizer.results import relative_files, results_file
from visualizer.torch_tree import torch_tree

TINY = ["resnet_tiny", "vit_tiny"]


@pytest.fixture(scope="module")
def trees() -> dict:
    """Both frameworks' trees of each tiny model, built once."""
    return {name: (torch_tree(name, 32), flax_tree(name, 32)) for name in TINY}


def _node(tree, path):
    return next(n for n in tree.nodes if n.path == path)


@pytest.mark.parametrize("name", TINY)
def test_torch_tree_totals_equal_the_registry(name, trees):
    tree, _ = trees[name]
    info = get_model_info(name)
    assert tree.total_params == info["params"]
    assert tree.total_macs == info["macs"]
    assert tree.nodes[0].shape == [[1, info["num_classes"]]]
    # A parent holds its children: their parameters and MACs are part of its own.
    for i, node in enumerate(tree.nodes):
        children = [c for c in tree.nodes if c.parent == i]
        assert node.params >= sum(c.params for c in children)
        assert node.macs >= sum(c.macs for c in children)


@pytest.mark.parametrize("name", TINY + ["resnet50", "vit_b_16"])
def test_flax_tree_totals_equal_the_registry(name):
    info = get_model_info(name)
    tree = flax_tree(name, info["input_size"])
    assert tree.total_params == info["params"]
    assert tree.total_macs == info["macs"]
    assert tree.input_shape == [1, info["input_size"], info["input_size"], 3]
    assert tree.nodes[0].shape == [[1, info["num_classes"]]]
    assert [n.depth for n in tree.nodes][0] == 0
    for node in tree.nodes[1:]:  # pre-order: a parent comes before its children
        assert node.parent is not None and node.parent < tree.nodes.index(node)
        assert tree.nodes[node.parent].depth == node.depth - 1


def test_torch_shapes_are_the_models_own():
    model, _, _, _ = models.get_torch_model("resnet_tiny")
    tree = torch_tree("resnet_tiny", 48)  # another size: shapes follow it
    x = torch.zeros(1, 3, 48, 48)
    with torch.no_grad():
        stem = model.conv1(x)
        pooled = model.maxpool(model.relu(model.bn1(stem)))
        layer1 = model.layer1(pooled)
    assert _node(tree, "conv1").shape == [list(stem.shape)]
    assert _node(tree, "maxpool").shape == [list(pooled.shape)]
    assert _node(tree, "layer1").shape == [list(layer1.shape)]
    assert _node(tree, "layer1.0.conv1").params == sum(p.numel() for p in model.layer1[0].conv1.parameters())
    assert _node(tree, "conv1").output_bytes == stem.numel() * 4
    # A module that is never called (nn.MultiheadAttention reads out_proj's weights directly) has no shape.
    vit = torch_tree("vit_tiny", 32)
    assert _node(vit, "encoder.layers.encoder_layer_0.self_attention.out_proj").shape is None


def test_torch_activation_total_counts_an_in_place_relu_once(trees):
    tree, _ = trees["resnet_tiny"]
    leaves = [n for n in tree.nodes if n.leaf]
    relu_bytes = sum(n.output_bytes for n in leaves if n.type == "ReLU")
    assert relu_bytes > 0
    assert tree.total_activation_bytes == sum(n.output_bytes for n in leaves) - relu_bytes


@pytest.mark.parametrize("name", TINY)
def test_flax_shapes_and_macs_match_torch_layer_by_layer(name, trees):
    torch_t, flax_t = trees[name]
    rows = pair_trees(torch_t, flax_t, models.get_family(models.get_spec(name).family).torch_renames)
    compared = 0
    for row in rows:
        if row["torch"] is None or row["flax"] is None:
            continue
        t, f = torch_t.nodes[row["torch"]], flax_t.nodes[row["flax"]]
        assert t.params == f.params, (t.path, f.path)
        if t.shape is None:
            continue
        assert t.macs == f.macs, (t.path, f.path)
        shape = t.shape[0]
        assert f.shape[0] == ([shape[0], *shape[2:], shape[1]] if len(shape) == 4 else shape), (t.path, f.path)
        compared += 1
    assert compared >= 10


@pytest.mark.parametrize("name", TINY)
def test_side_by_side_rows_hold_every_node_of_both_trees_once(name, trees):
    torch_t, flax_t = trees[name]
    rows = pair_trees(torch_t, flax_t, models.get_family(models.get_spec(name).family).torch_renames)
    assert sorted(r["torch"] for r in rows if r["torch"] is not None) == list(range(len(torch_t.nodes)))
    assert sorted(r["flax"] for r in rows if r["flax"] is not None) == list(range(len(flax_t.nodes)))
    for i, row in enumerate(rows[1:], start=1):
        assert row["parent"] < i and rows[row["parent"]]["depth"] == row["depth"] - 1
    # Every torch layer with weights that runs has its Flax twin on the same row.
    for row in rows:
        if row["torch"] is not None:
            node = torch_t.nodes[row["torch"]]
            if node.leaf and node.params and node.shape is not None:
                assert row["flax"] is not None, node.path


def test_flax_module_without_torch_twin_sits_under_its_parents_row(trees):
    torch_t, flax_t = trees["vit_tiny"]
    rows = pair_trees(torch_t, flax_t, models.get_family("vit").torch_renames)
    in_proj = next(r for r in rows if r["flax"] is not None and flax_t.nodes[r["flax"]].path.endswith("self_attention/in_proj"))
    assert in_proj["torch"] is None
    parent = rows[in_proj["parent"]]
    assert torch_t.nodes[parent["torch"]].path == "encoder.layers.encoder_layer_0.self_attention"
    assert flax_t.nodes[parent["flax"]].path == "encoder/encoder_layer_0/self_attention"


def test_parity_of_a_correct_port_is_within_the_threshold():
    parity = layer_parity("vit_tiny", 32)
    assert parity["first_diverging"] is None
    assert parity["max_error"] < parity["threshold"]
    assert parity["layers"]["conv_proj"]["flax"] == "conv_proj"
    assert parity["layers"][""]["flax"] == ""  # the logits


def test_parity_of_a_broken_port_names_the_layer_where_it_breaks(monkeypatch):
    # (O, I, kH, kW) -> (kW, kH, I, O): right shape for square kernels, wrong kernel.
    monkeypatch.setitem(porting.TRANSFORMS, "conv", lambda w: np.transpose(w, (3, 2, 1, 0)))
    parity = layer_parity("vit_tiny", 32)
    assert parity["first_diverging"]["torch"] == "conv_proj"
    assert parity["layers"]["conv_proj"]["error"] > parity["threshold"]


def test_unknown_model_and_size_name_the_known_ones():
    with pytest.raises(NotFound) as unknown:
        catalog.resolve_model("resnet5")
    assert "resnet50" in unknown.value.known and "vit_tiny" in unknown.value.known
    with pytest.raises(NotFound) as bad:
        catalog.resolve_size("vit_tiny", "33")
    assert "multiple of its 8-pixel patch" in bad.value.message
    assert "32" in bad.value.known and "33" not in bad.value.known
    for size in ("abc", "8", "100000"):
        with pytest.raises(NotFound):
            catalog.resolve_size("resnet50", size)
    assert catalog.resolve_size("resnet50", None) == 224
    assert catalog.resolve_size("resnet50", "160") == 160
    assert all(s % 16 == 0 for s in catalog.sizes_for("vit_b_16"))


def test_cache_makes_each_value_once_under_concurrent_requests():
    cache = compute.Cache()
    made = []

    def make():
        made.append(1)
        time.sleep(0.05)
        return len(made)

    threads = [threading.Thread(target=cache.get, args=("key", make)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert made == [1] and cache.get("key", make) == 1
    bounded = compute.Cache(max_entries=2)
    for key in "abc":
        bounded.get(key, lambda: key)
    assert "a" not in bounded and "c" in bounded


def test_results_file_stays_inside_the_results_folder(tmp_path):
    root = tmp_path / "results"
    (root / "sub").mkdir(parents=True)
    (root / "run.json").write_text("{}")
    (root / "sub" / "other.json").write_text("{}")
    secret = tmp_path / "secret.json"
    secret.write_text("{}")
    (root / "link.json").symlink_to(secret)
    assert results_file(root, "run.json") == (root / "run.json").resolve()
    assert results_file(root, "sub/other.json") == (root / "sub" / "other.json").resolve()
    for bad in ("../secret.json", "sub/../../secret.json", str(secret), "/etc/passwd", "link.json", "missing.json", "",
                "sub", "."):
        with pytest.raises(NotFound) as refused:
            results_file(root, bad)
        assert "run.json" in refused.value.known
    assert [str(p) for p in relative_files(root)] == ["run.json", "sub/other.json"]


def test_uploads_that_are_not_usable_images_are_refused_with_the_reason():
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 10, 10)).save(buffer, format="PNG")
    png = buffer.getvalue()
    assert attention.decode_image(png).size == (40, 30)
    cases = {
        b"": "empty",
        b"hello, not an image" * 10: "not an image",
        png[: len(png) // 2]: "could not be decoded",
        b"\0" * (attention.MAX_UPLOAD_BYTES + 1): "over the 5 MiB limit",
    }
    for data, message in cases.items():
        with pytest.raises(attention.BadUpload, match=message):
            attention.decode_image(data)


def test_token_grid_finds_special_tokens_and_the_patch_grid():
    assert attention.token_grid(17) == (1, 4)  # class token + 4x4
    assert attention.token_grid(197) == (1, 14)
    assert attention.token_grid(198) == (2, 14)  # class and distillation tokens
    assert attention.token_grid(49) == (0, 7)  # one Swin window
    matrix = np.zeros((17, 17), np.float32)
    matrix[0, 1 + 5] = 1.0  # the class token looks at patch (1, 1)
    grid = attention.query_map(matrix)
    assert grid.shape == (4, 4) and grid[1, 1] == 1.0 and grid.sum() == 1.0


def _maps_stub(layers: int, broken: int | None = None):
    def get_attention_maps(name, images, layer_idx=-1, framework="torch", torch_model=None):
        if not -layers <= layer_idx < layers:
            raise IndexError(layer_idx)
        if layer_idx == broken:
            raise ValueError("a bug in a middle layer")
        maps = np.full((len(images), 2, 5, 5), 0.2, np.float32)
        maps[:, :, 0, 0] += layer_idx % layers  # each layer tells itself apart
        return maps

    return get_attention_maps


def test_attention_layers_are_counted_and_a_failing_middle_layer_is_an_error(monkeypatch):
    images = np.zeros((1, 8, 8, 3), np.float32)
    monkeypatch.setattr(models, "get_attention_maps", _maps_stub(3), raising=False)
    layers, reason = attention.all_layers("vit_tiny", images, "torch", None)
    assert reason == "" and len(layers) == 3 and [m[0, 0, 0, 0] for m in layers] == pytest.approx([0.2, 1.2, 2.2])
    monkeypatch.setattr(models, "get_attention_maps", _maps_stub(3, broken=1))
    with pytest.raises(RuntimeError, match="layer_idx=1.*a bug in a middle layer"):
        attention.all_layers("vit_tiny", images, "torch", None)

    def no_attention(name, images, layer_idx=-1, framework="torch", torch_model=None):
        raise ValueError(f"{name} has no attention layers")

    monkeypatch.setattr(models, "get_attention_maps", no_attention)
    assert attention.all_layers("resnet_tiny", images, "torch", None) == (None, "ValueError: resnet_tiny has no attention layers")
    monkeypatch.delattr(models, "get_attention_maps")
    layers, reason = attention.all_layers("vit_tiny", images, "torch", None)
    assert layers is None and "no models.get_attention_maps" in reason


def test_torch_tree_falls_back_to_a_real_image_when_the_meta_device_cannot_run(monkeypatch):
    from visualizer import torch_tree as module

    traced = module.traced_forward
    devices = []

    def meta_fails(name, input_size, device):
        devices.append(device)
        if device == "meta":
            raise NotImplementedError("this model reads a value")
        return traced(name, input_size, device)

    monkeypatch.setattr(module, "traced_forward", meta_fails)
    tree = module.torch_tree("vit_tiny", 32)
    assert devices == ["meta", "cpu"]
    assert tree.total_macs == get_model_info("vit_tiny")["macs"] and tree.total_params == get_model_info("vit_tiny")["params"]
