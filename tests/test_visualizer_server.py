"""The visualizer server without a browser: bad input, path safety, lazy imports, the command line, export."""

from __future__ import annotations

import http.client
import io
import json
import re
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from visualizer.app import create_app
from visualizer.testing import serve_in_thread

ROOT = Path(__file__).resolve().parents[1]
BASELINE = ROOT / "reports" / "baselines" / "cpu-smoke.json"
SECRET = "do-not-serve-this-3f9a"


@pytest.fixture
def results_dir(tmp_path) -> Path:
    """A results folder with one benchmark run in it, and a secret file beside (outside) it."""
    root = tmp_path / "results"
    (root / "machine-a").mkdir(parents=True)
    shutil.copy(BASELINE, root / "machine-a" / "0001_run.json")
    (tmp_path / "secret.json").write_text(json.dumps({"secret": SECRET}))
    (root / "leak.json").symlink_to(tmp_path / "secret.json")
    return root


@pytest.fixture
def client(results_dir):
    return create_app(results_dir).test_client()


def _png(width: int = 64, height: int = 48) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (30, 120, 200)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_starting_the_app_and_the_index_import_neither_torch_nor_jax():
    code = (
        "import sys\n"
        "from visualizer.app import create_app\n"
        "client = create_app().test_client()\n"
        "response = client.get('/')\n"
        "assert response.status_code == 200, response.status_code\n"
        "assert b'resnet50' in response.data\n"
        "heavy = sorted(m for m in ('torch', 'jax', 'flax', 'torchvision') if m in sys.modules)\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_unknown_model_is_a_404_naming_the_known_models(client):
    for url in ("/model/resnet5", "/attention/resnet5", "/api/tree/resnet5"):
        response = client.get(url)
        assert response.status_code == 404, url
        text = response.get_data(as_text=True)
        assert "unknown model &#39;resnet5&#39;" in text or "unknown model 'resnet5'" in text
        assert "resnet50" in text and "vit_b_16" in text and "vit_tiny" in text


def test_unknown_size_is_a_404_naming_the_sizes_offered(client):
    response = client.get("/model/vit_tiny?size=33")
    assert response.status_code == 404
    text = response.get_data(as_text=True)
    assert "multiple of its 8-pixel patch, got 33" in text
    assert re.search(r"<li>32</li>.*<li>64</li>", text, re.S)
    for size in ("abc", "4", "4096"):
        assert client.get(f"/model/resnet_tiny?size={size}").status_code == 404


def test_unknown_view_framework_and_page_are_404s(client):
    assert client.get("/model/vit_tiny?view=keras").status_code == 404
    assert client.get("/api/tree/vit_tiny?framework=keras").status_code == 404
    assert client.get("/attention/vit_tiny?framework=tf").status_code == 404
    response = client.get("/no/such/page")
    assert response.status_code == 404 and "resnet50" in response.get_data(as_text=True)
    bad = client.get("/model/vit_tiny?depth=deep")
    assert bad.status_code == 400 and "depth must be a whole number" in bad.get_data(as_text=True)


def test_tree_api_serves_the_measured_tree(client):
    tree = client.get("/api/tree/vit_tiny?framework=flax").get_json()
    assert tree["framework"] == "flax" and tree["total_params"] == 24_234 and tree["total_macs"] == 414_144
    side = client.get("/api/side/vit_tiny").get_json()
    assert side[0] == {"parent": None, "depth": 0, "torch": 0, "flax": 0}


@pytest.mark.parametrize("payload, message", [
    (b"GIF89a but not really", "not an image this server can read"),
    (b"plain text, certainly not a picture", "not an image this server can read"),
    (b"", "no file was uploaded"),
])
def test_upload_that_is_not_an_image_is_a_400_saying_so(client, payload, message):
    data = {"image": (io.BytesIO(payload), "upload.png" if payload else "")}
    response = client.post("/attention/vit_tiny", data=data, content_type="multipart/form-data")
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)


def test_upload_over_the_size_limit_is_a_400_saying_so(client):
    big = _png() + b"\0" * (6 * 2**20)
    response = client.post("/attention/vit_tiny", data={"image": (io.BytesIO(big), "big.png")},
                           content_type="multipart/form-data")
    assert response.status_code == 400
    assert "over the 5 MiB limit" in response.get_data(as_text=True)


def test_upload_of_an_image_redirects_to_its_attention_page(client):
    response = client.post("/attention/vit_tiny?framework=jax", data={"image": (io.BytesIO(_png()), "cat.png")},
                           content_type="multipart/form-data")
    assert response.status_code == 303
    location = response.headers["Location"]
    assert re.fullmatch(r"/attention/vit_tiny\?size=32&framework=jax&image=[0-9a-f]{64}", location)
    page = client.get(location)
    assert page.status_code == 200 and "your upload &#39;cat.png&#39;" in page.get_data(as_text=True)
    assert client.get("/attention/vit_tiny?image=" + "0" * 64).status_code == 404


TRAVERSALS = [
    "/results/raw/../secret.json",
    "/results/raw/%2e%2e/secret.json",
    "/results/raw/..%2fsecret.json",
    "/results/raw/%2e%2e%2fsecret.json",
    "/results/raw/machine-a/../../secret.json",
    "/results/raw//etc/passwd",
    "/results/raw/%2fetc%2fpasswd",
    "/results/raw/leak.json",
    "/results/run/../secret.json",
    "/results/run/leak.json",
    "/results/run/%2e%2e/secret.json",
    "/results/../secret.json",
]


def test_no_request_reads_a_file_outside_the_results_folder(results_dir):
    # Raw paths over a real socket: nothing on the way normalises the '..'.
    with serve_in_thread(create_app(results_dir)) as base:
        host, port = base.removeprefix("http://").split(":")

        def get(path: str) -> tuple[int, str, str]:
            connection = http.client.HTTPConnection(host, int(port), timeout=30)
            connection.request("GET", path)
            response = connection.getresponse()
            body = response.read().decode("utf-8", "replace")
            connection.close()
            return response.status, body, response.getheader("Location") or ""

        for path in TRAVERSALS:
            status, body, location = get(path)
            if status == 308:  # the router merges '//' and redirects, still under /results/raw/
                location = location.removeprefix(base)
                assert location.startswith("/results/raw/") and ".." not in location, (path, location)
                status, body, _ = get(location)
            assert status in (400, 404), (path, status)
            assert SECRET not in body and "root:" not in body, path
        inside = urllib.request.urlopen(base + "/results/raw/machine-a/0001_run.json", timeout=30).read()
    assert inside == (results_dir / "machine-a" / "0001_run.json").read_bytes()


def test_results_page_shows_the_reports_tables_and_plots(client):
    page = client.get("/results").get_data(as_text=True)
    assert "machine-a/0001_run.json" in page
    assert "leak.json" not in page  # a link leading outside the folder is not listed
    assert "resnet_tiny" in page and "<table" in page
    assert page.count('class="plot"') == 4  # the four plots of python -m reports plot
    one = client.get("/results/run/machine-a/0001_run.json")
    assert one.status_code == 200 and "resnet_tiny" in one.get_data(as_text=True)


def test_results_page_says_how_to_give_a_folder_and_what_is_wrong_with_one(tmp_path):
    assert "--results" in create_app().test_client().get("/results").get_data(as_text=True)
    (tmp_path / "broken.json").write_text("{ not json")
    page = create_app(tmp_path).test_client().get("/results").get_data(as_text=True)
    assert "reports: error: broken.json: not valid JSON" in page
    assert str(tmp_path) not in page  # server paths are not shown


def _run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "visualizer", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def test_command_line_bad_input_is_one_line_and_exit_2(tmp_path):
    cases = [
        (["--results", str(tmp_path / "missing")], "no such folder"),
        (["--model", "resnet50"], "go with --export"),
        (["--export", str(tmp_path / "out"), "--model", "resnet5"], "unknown model 'resnet5'"),
        (["--export", str(tmp_path / "out"), "--model", "vit_tiny", "--input-size", "33"], "multiple of its 8-pixel patch"),
    ]
    for args, message in cases:
        out = _run_cli(*args)
        assert out.returncode == 2, (args, out.stderr)
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("visualizer: error:") and message in lines[0], out.stderr


def test_server_binds_loopback_by_default_and_serves_its_first_page():
    process = subprocess.Popen([sys.executable, "-m", "visualizer", "--port", "0"], cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        match = re.search(r"serving http://127\.0\.0\.1:(\d+)/", line)
        assert match, line
        page = urllib.request.urlopen(f"http://127.0.0.1:{match.group(1)}/", timeout=60).read().decode()
        assert "resnet50" in page
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_export_writes_self_contained_pages(tmp_path, results_dir):
    from visualizer.export import export_site

    written = export_site(tmp_path / "site", ["vit_tiny"], results_dir)
    names = sorted(p.name for p in written)
    assert names == ["attention-vit_tiny.html", "index.html", "model-vit_tiny.html", "results.html"]
    for path in written:
        text = path.read_text()
        # Nothing is fetched from elsewhere: no external or server-absolute URLs in src/href.
        assert not re.search(r'(src|href)="(https?:|//|/)', text), path.name
        assert "fetch(" not in text or "parity_url\":null" in text
    model = (tmp_path / "site" / "model-vit_tiny.html").read_text()
    assert '"parity":{' in model and '"first_diverging":null' in model
    index = (tmp_path / "site" / "index.html").read_text()
    assert 'href="model-vit_tiny.html"' in index and 'href="model-resnet50.html"' not in index
    assert 'href="attention-vit_tiny.html"' in index
    attention = (tmp_path / "site" / "attention-vit_tiny.html").read_text()
    assert "data:image/png;base64," in attention  # the maps are inlined, not fetched
