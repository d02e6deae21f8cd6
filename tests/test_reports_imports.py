"""reports/ reads JSON only: importing any of its modules never imports torch or jax."""

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import reports

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "jax", "jaxlib", "flax", "torchvision")


def test_no_reports_module_imports_torch_or_jax():
    modules = sorted(f"reports.{m.name}" for m in pkgutil.iter_modules(reports.__path__))
    assert {"reports.__main__", "reports.gate", "reports.gate_worker", "reports.plots"} <= set(modules)
    code = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "from reports.__main__ import build_parser\n"
        "build_parser()\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []
