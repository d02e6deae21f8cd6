"""Which machine a run's figures belong to: its key, a short label, and a full description.

Two runs are on "the same machine" when everything that changes their figures is equal:
GPU model, GPU count and driver, CPU and the cores the run could use, Python and the
framework versions, the commit, and the run's configuration (TF32, torch.compile, ...).
The host name is not part of it, so shards from identical nodes of a fleet form one
machine, and one host after a driver upgrade is two. Reports never put two machines'
figures in one cell or ratio unless asked (`reports table --across-machines`).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Iterable, Mapping

VISIONBENCH_JSON_KEY = "visionbench"
KEY_FIELDS = ("gpu_name", "gpu_count", "gpu_driver", "cpu", "cores", "python", "frameworks", "commit", "config")


def _text(value: Any, default: str = "unknown") -> str:
    return str(value) if value not in (None, "") else default


def framework_versions(machine_info: Mapping[str, Any]) -> dict[str, str]:
    """Every version the run's machine info lists under `<framework>_versions`, by package."""
    info = machine_info.get(VISIONBENCH_JSON_KEY) or {}
    out: dict[str, str] = {}
    for name, versions in sorted(info.items()):
        if name.endswith("_versions") and isinstance(versions, dict):
            out.update({str(k): str(v) for k, v in versions.items()})
    return dict(sorted(out.items()))


def machine_key(machine_info: Mapping[str, Any] | None, commit_info: Mapping[str, Any] | None,
                header: Mapping[str, Any] | None) -> dict[str, Any]:
    """The key of the machine a pytest-benchmark document (or journal session) ran on."""
    machine_info = machine_info or {}
    commit_info = commit_info or {}
    info = machine_info.get(VISIONBENCH_JSON_KEY) or {}
    cpu = (machine_info.get("cpu") or {}).get("brand_raw") or machine_info.get("cpu_brand") or machine_info.get("processor")
    commit = _text(commit_info.get("id"))
    if commit_info.get("dirty"):
        commit += "+dirty"
    try:
        gpu_count = int(info.get("gpu_count") or 0)
    except (TypeError, ValueError):
        gpu_count = 0
    return {
        "gpu_name": _text(info.get("gpu_name"), "none"),
        "gpu_count": gpu_count,
        "gpu_driver": _text(info.get("gpu_driver"), "none"),
        "cpu": _text(cpu),
        "cores": info.get("cpu_affinity"),
        "python": machine_info.get("python_version"),
        "frameworks": framework_versions(machine_info),
        "commit": commit,
        "config": dict(sorted(((header or {}).get("config") or {}).items())),
    }


def machine_id(key: Mapping[str, Any]) -> str:
    """A short, stable id of a machine key (10 hex digits)."""
    return hashlib.sha1(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:10]


def short_label(key: Mapping[str, Any]) -> str:
    """The hardware and commit: '2x NVIDIA H100 80GB HBM3 @1a2b3c4' or 'AMD EPYC (2 cores) @1a2b3c4'."""
    if key.get("gpu_count"):
        hardware = f"{key['gpu_count']}x {key['gpu_name']}"
    else:
        cores = f" ({key['cores']} cores)" if key.get("cores") else ""
        hardware = f"{key.get('cpu', 'unknown')}{cores}"
    return f"{hardware} @{str(key.get('commit', 'unknown'))[:7]}"


def describe(key: Mapping[str, Any]) -> str:
    """Every field of the key, for a legend: what makes this machine this machine."""
    parts = []
    if key.get("gpu_count"):
        parts.append(f"GPU {key['gpu_count']}x {key['gpu_name']} (driver {key['gpu_driver']})")
    else:
        parts.append("no GPU")
    parts.append(f"CPU {key.get('cpu')}" + (f", {key['cores']} cores" if key.get("cores") else ""))
    if key.get("python"):
        parts.append(f"Python {key['python']}")
    versions = key.get("frameworks") or {}
    if versions:
        parts.append(", ".join(f"{name} {version}" for name, version in versions.items()))
    parts.append(f"commit {key.get('commit')}")
    config = key.get("config") or {}
    if config:
        parts.append("config " + ", ".join(f"{name}={value}" for name, value in config.items()))
    return "; ".join(parts)


def unique_labels(keys: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """{machine id: label}: the short label, with the id added where two machines would share one."""
    by_id = {machine_id(key): key for key in keys}
    labels = {mid: short_label(key) for mid, key in by_id.items()}
    counts: dict[str, int] = {}
    for label in labels.values():
        counts[label] = counts.get(label, 0) + 1
    return {mid: label if counts[label] == 1 else f"{label} [{mid[:6]}]" for mid, label in labels.items()}
