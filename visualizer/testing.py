"""Helpers for testing the visualizer: a server in a thread, and Debian's headless Chromium driven by Playwright.

Playwright's own browser download is never used (it cannot work without network): the
tests launch the `chromium` that apt installs, through Playwright's sync API.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
from typing import Any, Iterator

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
INSTALL_HINT = "install Debian's chromium (apt-get install -y chromium) or set VISUALIZER_CHROMIUM to a Chromium binary"


def chromium_path() -> str | None:
    """The Chromium binary to test with: $VISUALIZER_CHROMIUM, else chromium on PATH (Debian: /usr/bin/chromium)."""
    explicit = os.environ.get("VISUALIZER_CHROMIUM")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    return shutil.which("chromium") or shutil.which("chromium-browser")


@contextlib.contextmanager
def serve_in_thread(app: Any, host: str = "127.0.0.1") -> Iterator[str]:
    """Serve `app` on a free port of `host` while the block runs; yields its base URL."""
    from werkzeug.serving import make_server

    server = make_server(host, 0, app, threaded=True)
    # Join request threads on close: a computation still running in a daemon thread when the
    # interpreter exits would abort the process from inside XLA or torch.
    server.daemon_threads = False
    server.block_on_close = True
    thread = threading.Thread(target=server.serve_forever, name="visualizer-test-server", daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium browser (Playwright sync API); raises RuntimeError with the fix when none is installed."""
    from playwright.sync_api import sync_playwright

    path = chromium_path()
    if path is None:
        raise RuntimeError(f"no Chromium found: {INSTALL_HINT}")
    playwright = sync_playwright().start()
    try:
        browser = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()
    finally:
        playwright.stop()
