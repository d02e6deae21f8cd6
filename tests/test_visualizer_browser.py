"""The visualizer in a real browser: Debian's headless Chromium, driven by Playwright's sync API.

The server runs in this process (a thread), so a test can stub `models.get_attention_maps`
before the transformer zoo provides it. Screenshots are written to $VISUALIZER_SCREENSHOTS
(default: a pytest temporary folder, printed at the end of the session).
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import re
import sys
import types
from pathlib import Path

import numpy as np
import pytest

import models
from models import get_model_info
from visualizer.app import create_app
from visualizer.testing import INSTALL_HINT, chromium, chromium_path, serve_in_thread

ROOT = Path(__file__).resolve().parents[1]
BASELINE = ROOT / "reports" / "baselines" / "cpu-smoke.json"
TIMEOUT_MS = 120_000


@pytest.fixture(scope="module")
def browser():
    if chromium_path() is None:
        if os.environ.get("CI"):
            pytest.fail(f"no Chromium on the CI machine: {INSTALL_HINT}")
        pytest.skip(f"no Chromium here: {INSTALL_HINT}")
    with chromium() as instance:
        yield instance


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory, request) -> Path:
    folder = Path(os.environ.get("VISUALIZER_SCREENSHOTS") or tmp_path_factory.mktemp("visualizer-screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        print(f"\nvisualizer screenshots: {folder}", flush=True)
    return folder


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One server for the model pages of this module (its caches shared by the tests)."""
    results = tmp_path_factory.mktemp("results")
    (results / "run.json").write_bytes(BASELINE.read_bytes())
    with serve_in_thread(create_app(results)) as base:
        yield base


PARITY_REQUESTS = "**/api/parity/**"


@pytest.fixture
def page(browser):
    """A fresh page; its requests for per-layer parity are blocked unless a test calls `allow_parity`.

    A model page fetches parity as soon as it opens; tests about the tree alone would leave
    the server computing it for nothing.
    """
    context = browser.new_context(viewport={"width": 1500, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.route(PARITY_REQUESTS, lambda route: route.abort())
    yield page
    context.close()


def allow_parity(page) -> None:
    page.unroute(PARITY_REQUESTS)


def visible_rows(page) -> list[str]:
    """The label column of every visible row of the layer tree."""
    return page.eval_on_selector_all("#tree tbody tr:not(.hidden)", "rows => rows.map(r => r.dataset.torch ?? r.dataset.flax)")


def torch_row(page, path: str):
    return page.locator(f'#tree tbody tr[data-torch="{path}"]')


def test_expand_and_collapse_a_node(server, page, screenshots):
    page.goto(f"{server}/model/resnet_tiny?view=torch&depth=1")
    assert visible_rows(page) == ["", "conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool", "fc"]
    toggle = torch_row(page, "layer1").locator("button.toggle")
    assert toggle.get_attribute("aria-expanded") == "false"
    toggle.click()
    assert toggle.get_attribute("aria-expanded") == "true"
    assert torch_row(page, "layer1.0").is_visible()
    assert not torch_row(page, "layer1.0.conv1").is_visible()  # only one level opens
    torch_row(page, "layer1.0").locator("button.toggle").click()
    assert torch_row(page, "layer1.0.conv1").is_visible()
    page.screenshot(path=str(screenshots / "resnet_tiny_torch_expanded.png"), full_page=True)
    toggle.click()  # collapsing hides the whole subtree
    assert not torch_row(page, "layer1.0").is_visible() and not torch_row(page, "layer1.0.conv1").is_visible()


def test_expand_to_depth_shows_every_module(server, page):
    page.goto(f"{server}/model/vit_tiny?view=torch&depth=0")
    assert visible_rows(page) == [""]
    torch_model, _, _, _ = models.get_torch_model("vit_tiny")
    names = [n for n, _ in torch_model.named_modules()]
    options = page.eval_on_selector_all("#depth-select option", "os => os.map(o => o.value)")
    page.select_option("#depth-select", options[-1])
    assert visible_rows(page) == names
    page.select_option("#depth-select", "1")
    assert visible_rows(page) == [""] + [n for n in names if n and "." not in n]


@pytest.mark.parametrize("name", ["resnet_tiny", "vit_tiny"])
def test_shapes_and_totals_shown_are_the_models_own(server, page, name):
    import torch

    info = get_model_info(name)
    size = info["input_size"]
    torch_model, _, _, _ = models.get_torch_model(name)
    shapes = {}

    def record(module_name, _module, _inputs, output) -> None:
        shapes.setdefault(module_name, tuple(output.shape))

    hooks = [m.register_forward_hook(functools.partial(record, n))
             for n, m in torch_model.named_modules() if n and not list(m.children()) and "self_attention" not in n]
    with torch.no_grad():
        torch_model(torch.zeros(1, 3, size, size))
    for hook in hooks:
        hook.remove()
    page.goto(f"{server}/model/{name}?view=torch&depth=9")
    for module_name, shape in list(shapes.items())[:8]:
        shown = torch_row(page, module_name).locator("td.shape").inner_text()
        assert shown == "×".join(map(str, shape)), module_name
    assert page.inner_text("#totals-torch .total-params") == f"{info['params']:,}"
    assert page.inner_text("#totals-torch .total-macs") == f"{info['macs']:,}"
    assert "= registry" in page.inner_text("#totals-torch")
    page.click("#view-flax")
    assert page.inner_text("#totals-flax .total-params") == f"{info['params']:,}"
    assert page.inner_text("#totals-flax .total-macs") == f"{info['macs']:,}"
    assert page.inner_text("#tree thead") .startswith("path (Flax)")
    first_conv = next(n for n in shapes if len(shapes[n]) == 4)
    n, c, h, w = shapes[first_conv]
    flax_path = "/".join(models.porting.torch_module_to_flax_path(first_conv, models.get_family(info["family"]).torch_renames))
    shown = page.locator(f'#tree tbody tr[data-flax="{flax_path}"] td.shape').first.inner_text()
    assert shown == f"{n}×{h}×{w}×{c}"  # the Flax twin's NHWC output


def test_switch_model_and_framework(server, page, screenshots):
    allow_parity(page)
    page.goto(f"{server}/model/resnet_tiny?view=side")
    assert page.locator("#view-side").get_attribute("aria-pressed") == "true"
    row = torch_row(page, "layer1.0")
    assert row.get_attribute("data-flax") == "layer1_0"  # paired by the family's renames
    page.click("#view-torch")
    assert page.locator("#view-torch").get_attribute("aria-pressed") == "true"
    assert "view=torch" in page.url
    with page.expect_navigation():
        page.select_option("#model-select", "vit_tiny")
    assert "/model/vit_tiny" in page.url and "view=torch" in page.url
    assert page.inner_text("#title").startswith("vit_tiny")
    assert page.inner_text("#totals-torch .total-params") == f"{get_model_info('vit_tiny')['params']:,}"
    page.click("#view-side")
    page.select_option("#depth-select", page.eval_on_selector_all("#depth-select option", "os => os.at(-1).value"))
    in_proj = page.locator('#tree tbody tr[data-flax="encoder/encoder_layer_0/self_attention/in_proj"]')
    assert in_proj.get_attribute("data-torch") is None and "(no torch module)" in in_proj.inner_text()
    with page.expect_navigation():
        page.select_option("#size-select", "64")
    assert "size=64" in page.url and "64×64 input" in page.inner_text("#title")
    page.wait_for_selector("body[data-parity=ready]")
    page.screenshot(path=str(screenshots / "vit_tiny_side_by_side_64.png"), full_page=True)


def test_parity_colours_every_paired_layer(server, page):
    allow_parity(page)
    page.goto(f"{server}/model/vit_tiny?view=side&depth=9")
    page.wait_for_selector("body[data-parity=ready]")
    assert page.inner_text("#parity-status").startswith("Every paired layer within 5e-5")
    parity = page.request.get(f"{server}/api/parity/vit_tiny").json()  # cached: the figures the page got
    cell = torch_row(page, "conv_proj").locator("td.err")
    assert float(cell.inner_text()) == pytest.approx(parity["layers"]["conv_proj"]["error"], rel=0.05)
    assert "hsl(" in cell.get_attribute("style") or "rgb(" in cell.get_attribute("style")
    assert page.locator("td.err.over").count() == 0


def test_a_broken_port_shows_where_it_breaks(page, monkeypatch, screenshots):
    from models import porting

    # (O, I, kH, kW) -> (kW, kH, I, O): the right shape for square kernels, the wrong kernel.
    monkeypatch.setitem(porting.TRANSFORMS, "conv", lambda w: np.transpose(w, (3, 2, 1, 0)))
    allow_parity(page)
    with serve_in_thread(create_app()) as base:
        page.goto(f"{base}/model/vit_tiny?view=side&depth=1")
        page.wait_for_selector("body[data-parity=ready]")
        status = page.inner_text("#parity-status")
        assert "Port diverges: first layer over 5e-5 is torch conv_proj / Flax conv_proj" in status
        assert torch_row(page, "conv_proj").locator("td.err.over").count() == 1
        page.screenshot(path=str(screenshots / "vit_tiny_broken_port.png"), full_page=True)


def stub_attention_maps(name, images, layer_idx=-1, framework="torch", torch_model=None):
    """A stand-in for models.get_attention_maps: 2 layers x 2 heads over 1 + 4x4 tokens, rows summing to 1."""
    layers, heads, tokens = 2, 2, 17
    if not -layers <= layer_idx < layers:
        raise IndexError(f"layer {layer_idx} out of range")
    if models.get_spec(name).family != "vit":
        raise ValueError(f"{name} has no attention layers")
    layer = layer_idx % layers
    logits = np.zeros((len(images), heads, tokens, tokens), np.float32)
    for h in range(heads):
        logits[:, h, :, 1 + (5 * layer + 6 * h) % 16] = 4.0  # each head looks at one patch
    maps = np.exp(logits)
    return maps / maps.sum(-1, keepdims=True)


@pytest.fixture
def stubbed_attention(monkeypatch):
    monkeypatch.setattr(models, "get_attention_maps", stub_attention_maps, raising=False)
    rollout = types.ModuleType("models.attention")
    rollout.attention_rollout = lambda maps: np.mean([m.mean(1) for m in maps], axis=0)
    monkeypatch.setitem(sys.modules, "models.attention", rollout)


def test_attention_maps_per_layer_and_head(page, stubbed_attention, screenshots):
    with serve_in_thread(create_app()) as base:
        page.goto(f"{base}/attention/vit_tiny")
        assert page.locator("#summary").inner_text().startswith("Layer 1 of 2, head 0 of 2")
        assert page.locator("#heads figure").count() == 2
        for image in ("#input-image", "#overlay", "#matrix", "#rollout"):
            assert page.locator(image).evaluate("img => img.complete && img.naturalWidth > 0"), image
        with page.expect_navigation():
            page.select_option("#layer-select", "0")
        assert page.locator("#summary").inner_text().startswith("Layer 0 of 2")
        with page.expect_navigation():
            page.locator('#heads figure[data-head="1"] a').click()
        assert page.locator("#heads figure.selected").get_attribute("data-head") == "1"
        page.screenshot(path=str(screenshots / "attention_stub_vit_tiny.png"), full_page=True)
        # An upload through the form: a picture is shown, anything else is a 400 saying why.
        page.set_input_files("#upload-input", files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"not a picture"}])
        with page.expect_navigation() as navigation:
            page.click("#upload-button")
        assert navigation.value.status == 400
        assert "not an image this server can read" in page.inner_text("#problem")
        page.goto(f"{base}/attention/vit_tiny")
        page.set_input_files("#upload-input", files=[{"name": "red.png", "mimeType": "image/png", "buffer": _png()}])
        with page.expect_navigation():
            page.click("#upload-button")
        assert "your upload 'red.png'" in page.inner_text("#upload")
        assert page.locator("#heads figure").count() == 2


def test_attention_page_says_when_a_model_has_none(page, stubbed_attention, monkeypatch):
    with serve_in_thread(create_app()) as base:
        page.goto(f"{base}/attention/resnet_tiny")
        assert "not available for this model" in page.inner_text("#not-available")
        assert "resnet_tiny has no attention layers" in page.inner_text("#reason")
    monkeypatch.delattr(models, "get_attention_maps")
    with serve_in_thread(create_app()) as base:
        page.goto(f"{base}/attention/vit_tiny")
        assert "no models.get_attention_maps" in page.inner_text("#reason")


@pytest.mark.skipif(not hasattr(models, "get_attention_maps"), reason="models.get_attention_maps is not in this checkout yet")
def test_attention_maps_from_the_real_api(page, screenshots):
    with serve_in_thread(create_app()) as base:
        page.goto(f"{base}/attention/vit_tiny")
        heads = models.get_spec("vit_tiny").config["num_heads"]
        assert page.locator("#heads figure").count() == heads
        assert page.locator("#matrix").evaluate("img => img.naturalWidth > 0")
        page.screenshot(path=str(screenshots / "attention_vit_tiny.png"), full_page=True)


def test_bad_input_pages(server, page):
    response = page.goto(f"{server}/model/resnet5")
    assert response.status == 404
    assert page.inner_text("#problem") == "unknown model 'resnet5'"
    known = page.eval_on_selector_all("#known a", "links => links.map(a => a.textContent)")
    assert "resnet50" in known and "vit_b_16" in known
    with page.expect_navigation():
        page.click("#known a:text-is('vit_tiny')")
    assert page.inner_text("#title").startswith("vit_tiny")
    response = page.goto(f"{server}/model/vit_tiny?size=30")
    assert response.status == 404 and "multiple of its 8-pixel patch" in page.inner_text("#problem")
    assert page.goto(f"{server}/results/raw/..%2f..%2fetc%2fpasswd").status == 404


def test_results_page(server, page):
    page.goto(f"{server}/results")
    assert page.locator("#runs tbody tr").count() == 1
    assert "resnet_tiny" in page.inner_text("#comparison")
    assert page.locator("img.plot").count() == 4
    assert page.locator("img.plot").first.evaluate("img => img.naturalWidth > 0")


def test_exported_model_page_works_from_a_file_with_the_network_off(page, tmp_path, screenshots):
    from visualizer.export import export_site

    export_site(tmp_path, ["vit_tiny"])
    page.route(re.compile(r"^(?!file:).*"), lambda route: route.abort())  # nothing but the file itself
    page.goto((tmp_path / "model-vit_tiny.html").as_uri())  # parity is embedded, not fetched
    assert page.inner_text("#totals-torch .total-params") == f"{get_model_info('vit_tiny')['params']:,}"
    assert page.inner_text("#parity-status").startswith("Every paired layer within")
    page.click("#view-flax")
    assert page.inner_text("#totals-flax .total-macs") == f"{get_model_info('vit_tiny')['macs']:,}"


@pytest.mark.slow
def test_resnet50_page_totals_equal_the_registry(server, page, screenshots):
    # The tree is under test here, not parity's minute: the page fixture blocks it.
    page.goto(f"{server}/model/resnet50?view=side")
    info = get_model_info("resnet50")
    for framework in ("torch", "flax"):
        assert page.inner_text(f"#totals-{framework} .total-params") == f"{info['params']:,}" == "25,557,032"
        assert page.inner_text(f"#totals-{framework} .total-macs") == f"{info['macs']:,}"
    assert torch_row(page, "layer4.2").locator("td.shape").first.inner_text() == "1×2048×7×7"
    page.screenshot(path=str(screenshots / "resnet50_side_by_side.png"))


def _png() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (80, 60), (220, 40, 40)).save(buffer, format="PNG")
    return buffer.getvalue()
