"""One benchmark worker per GPU under pytest-xdist: `pytest benchmarks -n 4` on a 4-GPU node.

Benchmarks never share a device, so xdist workers are for one worker per GPU only. The
controller lists the GPUs it sees (its CUDA_VISIBLE_DEVICES, else nvidia-smi's) and hands
each worker one of them; worker gwK pins itself with CUDA_VISIBLE_DEVICES before any
framework starts. pytest-benchmark switches itself off under xdist; a pinned worker
switches it back on and writes its own JSON, and the controller merges them into the run's
`--benchmark-json` and `--benchmark-save`/`--benchmark-autosave` files (the journal is
written by the controller as usual: benchmarks/run_plugin.py). With more workers than
GPUs, or none, pytest-benchmark's own behaviour stays (benchmarks run once, untimed) and
a line says so.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest

DEVICES_KEY = "visionbench_gpus"  # workerinput: the GPU each worker gets, by worker index
OUT_KEY = "visionbench_worker_json"  # workerinput: the folder each worker writes its JSON to
VISIONBENCH_JSON_KEY = "visionbench"


@dataclasses.dataclass
class Workers:
    """The controller's view: the GPUs, how many workers, and where their JSON goes."""

    gpus: list[str]
    count: int
    out: Path | None = None

    @property
    def pinned(self) -> bool:
        """Whether every worker gets its own GPU."""
        return 0 < self.count <= len(self.gpus)


_workers_key = pytest.StashKey[Workers]()
_pinned_key = pytest.StashKey[str]()  # on a worker: the GPU it is pinned to


def visible_gpus(environ: dict[str, str] | None = None) -> list[str]:
    """The GPUs this process may use, as CUDA_VISIBLE_DEVICES entries."""
    environ = os.environ if environ is None else environ
    listed = environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [d.strip() for d in listed.split(",") if d.strip() and d.strip() != "-1"]
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(l for l in out.splitlines() if l.startswith("GPU "))]


def worker_gpu(gpus: list[str], worker: str, count: int) -> str | None:
    """The GPU of xdist worker `worker` ('gw2') of `count`; None unless every worker gets its own."""
    if not 0 < count <= len(gpus) or not worker.startswith("gw"):
        return None
    return gpus[int(worker[2:])]


def _is_controller(config: pytest.Config) -> bool:
    return not hasattr(config, "workerinput") and config.getoption("dist", "no") != "no" and bool(config.getoption("tx", None))


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:
        gpu = worker_gpu(list(workerinput.get(DEVICES_KEY) or []), os.environ.get("PYTEST_XDIST_WORKER", ""),
                         int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0")))
        if gpu is not None:
            os.environ["CUDA_VISIBLE_DEVICES"] = gpu  # before torch or JAX start (conftest may start JAX)
            config.stash[_pinned_key] = gpu
    elif _is_controller(config):
        workers = Workers(visible_gpus(), len(config.getoption("tx")))
        if workers.pinned:
            workers.out = Path(tempfile.mkdtemp(prefix="visionbench-workers-"))
        config.stash[_workers_key] = workers


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    workers = node.config.stash.get(_workers_key, None)
    if workers is not None and workers.pinned:
        node.workerinput[DEVICES_KEY] = workers.gpus
        node.workerinput[OUT_KEY] = str(workers.out)


def pytest_sessionstart(session: pytest.Session) -> None:
    config = session.config
    bs = getattr(config, "_benchmarksession", None)
    if bs is None:
        return
    if _pinned_key in config.stash:
        # This worker has a GPU of its own: time for real; its JSON is written at the end (below)
        # and the controller saves the merged run.
        bs.disabled = bs.skip or (config.getoption("benchmark_disable") and not config.getoption("benchmark_enable"))
        bs.xdist_warning = False
        bs.json = None
        bs.save = bs.autosave = None
    elif _workers_key in config.stash and config.stash[_workers_key].pinned:
        bs.xdist_warning = False  # benchmarks are recorded: no "disabled" warning


@pytest.hookimpl(trylast=True, optionalhook=True)  # pytest-benchmark's hook
def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict[str, Any]) -> None:
    if _pinned_key in config.stash:
        machine_info.setdefault(VISIONBENCH_JSON_KEY, {})["cuda_visible_devices"] = config.stash[_pinned_key]


def merge_worker_documents(documents: list[dict[str, Any]]) -> dict[str, Any]:
    """The workers' JSON documents as one run: their benchmarks and failures together."""
    merged = json.loads(json.dumps(documents[0]))
    merged["benchmarks"] = [b for d in documents for b in d.get("benchmarks", [])]
    header = merged.setdefault(VISIONBENCH_JSON_KEY, {})
    header["failures"] = [f for d in documents for f in (d.get(VISIONBENCH_JSON_KEY) or {}).get("failures", [])]
    header["workers"] = len(documents)
    devices = [((d.get("machine_info") or {}).get(VISIONBENCH_JSON_KEY) or {}).get("cuda_visible_devices") for d in documents]
    merged.setdefault("machine_info", {}).setdefault(VISIONBENCH_JSON_KEY, {})["cuda_visible_devices"] = ",".join(
        str(d) for d in devices if d is not None)
    merged["datetime"] = max(str(d.get("datetime", "")) for d in documents)
    return merged


def _write_worker_json(config: pytest.Config) -> None:
    """A pinned worker's run as pytest-benchmark JSON, through pytest-benchmark's own hooks (any version)."""
    from reports import atomic

    bs = config._benchmarksession
    machine_info = config.hook.pytest_benchmark_generate_machine_info(config=config)
    config.hook.pytest_benchmark_update_machine_info(config=config, machine_info=machine_info)
    commit_info = config.hook.pytest_benchmark_generate_commit_info(config=config)
    config.hook.pytest_benchmark_update_commit_info(config=config, commit_info=commit_info)
    document = config.hook.pytest_benchmark_generate_json(config=config, benchmarks=bs.benchmarks, include_data=True,
                                                          machine_info=machine_info, commit_info=commit_info)
    config.hook.pytest_benchmark_update_json(config=config, benchmarks=bs.benchmarks, output_json=document)
    path = Path(config.workerinput[OUT_KEY]) / f"{os.environ.get('PYTEST_XDIST_WORKER', 'gw')}.json"
    atomic.write_text(path, json.dumps(document, default=str))


@pytest.hookimpl(hookwrapper=True, trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int):
    yield
    if _pinned_key in session.config.stash and getattr(session.config, "_benchmarksession", None) is not None:
        _write_worker_json(session.config)
    workers = session.config.stash.get(_workers_key, None)
    if workers is None or workers.out is None:
        return
    try:
        files = sorted(workers.out.glob("gw*.json"))
        if files:
            _save_merged(session.config, merge_worker_documents([json.loads(f.read_text()) for f in files]))
    finally:
        shutil.rmtree(workers.out, ignore_errors=True)


def _save_merged(config: pytest.Config, document: dict[str, Any]) -> None:
    from benchmarks.run_plugin import state
    from reports import atomic

    run = state(config)
    if run is not None:
        document[VISIONBENCH_JSON_KEY]["run_id"] = run.run_id  # the controller's journal session
    bs = config._benchmarksession
    if hasattr(bs.json, "write"):  # older pytest-benchmark opens --benchmark-json itself
        bs.json.write(json.dumps(document, indent=2, default=str).encode())
        bs.json.close()
    elif bs.json:
        atomic.write_text(bs.json, json.dumps(document, indent=2, default=str) + "\n")
    if bs.save or bs.autosave:
        bs.storage.save(document, bs.save or bs.autosave)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    workers = config.stash.get(_workers_key, None)
    if workers is None:
        return
    if workers.pinned:
        pins = ", ".join(f"gw{i}->GPU {g}" for i, g in enumerate(workers.gpus[:workers.count]))
        terminalreporter.write_line(f"visionbench: one xdist worker per GPU ({pins}); their records are merged")
    else:
        terminalreporter.write_line(
            f"visionbench: {workers.count} xdist workers for {len(workers.gpus)} GPU(s): benchmarks are recorded under xdist "
            f"only with one worker per GPU (-n {len(workers.gpus)} or fewer); on CPU use --shard or python -m benchmarks.cluster")
