"""`python -m benchmarks.cluster`: the benchmark matrix in shards on a Ray cluster, merged on the head.

    python -m benchmarks.cluster --address auto --out fleet/ -- --model all --batch-sizes 1 8 32
    python -m benchmarks.cluster --address local --out node/ -- --model all     # one shard per GPU of this node

Each shard (`pytest benchmarks ... --shard I/N`) is one Ray task: `num_gpus=1` on a cluster
with GPUs (Ray pins the task's CUDA_VISIBLE_DEVICES to its GPU), else `--cpus-per-shard`
CPUs. The task runs pytest in a subprocess on its node and streams each journal line,
as soon as it is written, to a collector actor on the head, which appends it to
`OUT/shards/shard-I.jsonl` there. A task whose node is lost, or whose pytest dies, is
retried by Ray (`--max-retries`); the retry gets the lines collected so far and runs
`--resume` on them, so only the unfinished combinations run again. At the end the head
merges every shard's JSON and journal into `OUT/merged.json` (reports/merge.py, keyed by
machine) and prints the table. Ray is an optional extra: `pip install -e .[cluster]`.
The code must be at the same path on every node (`--workdir`), or shipped with `--ship-code`.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

ROOT = Path(__file__).resolve().parents[1]
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 4
RETRYABLE_RETURN_CODES = (2, 3)  # pytest interrupted (e.g. SIGTERM on preemption), internal error
POLL_S = 0.2


class ShardLost(RuntimeError):
    """The shard's pytest died or was stopped before it finished: Ray retries the task."""


def build_parser() -> argparse.ArgumentParser:
    """The launcher's command line; what follows `--` goes to pytest."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cluster", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--address", default=os.environ.get("RAY_ADDRESS", "local"),
                        help="Ray cluster: 'auto' (the one this node belongs to), host:port, ray://host:port, "
                             "or 'local' (start one here, for the GPUs of this node) (default: $RAY_ADDRESS or local)")
    parser.add_argument("--shards", type=int, default=None,
                        help="how many shards (default: one per GPU of the cluster, else one per node)")
    parser.add_argument("--cpus-per-shard", type=float, default=1.0,
                        help="CPUs each shard reserves; on CPU-only clusters give a node's cores so shards never share them")
    parser.add_argument("--cpu", action="store_true", help="run CPU tasks even where the cluster has GPUs")
    parser.add_argument("--num-cpus", type=int, default=None, help="with --address local: CPUs of the local cluster")
    parser.add_argument("--max-retries", type=int, default=3, help="retries of a shard whose node or process is lost")
    parser.add_argument("--out", default="cluster-run", help="folder on the head for shards/ and merged.json")
    parser.add_argument("--workdir", default=str(ROOT), help="the repository on every node (default: this one's path)")
    parser.add_argument("--python", default=sys.executable, help="python on every node (default: this one's path)")
    parser.add_argument("--ship-code", action="store_true", help="upload this repository to the nodes (Ray runtime_env)")
    parser.add_argument("--drill-kill", default=None, metavar="SHARD:RECORDS",
                        help="recovery drill: kill shard SHARD's first attempt once it has journaled RECORDS records")
    parser.add_argument("pytest_args", nargs=argparse.REMAINDER, help="-- then pytest options for the matrix")
    return parser


def pytest_command(python: str, pytest_args: Sequence[str], index: int, count: int, journal: Path, out: Path,
                   resume: bool) -> list[str]:
    """The pytest command line of one shard."""
    command = [python, "-m", "pytest", "benchmarks", *pytest_args, f"--shard={index}/{count}",
               f"--journal={journal}", f"--benchmark-json={out}", "-p", "no:cacheprovider"]
    if resume:
        command.append(f"--resume={journal}")
    return command


def complete_lines(data: bytes) -> bytes:
    """The whole lines of `data` (up to and including its last newline)."""
    return data[: data.rfind(b"\n") + 1]


def run_shard(spec: dict[str, Any], collector: Any) -> dict[str, Any]:
    """One shard on this node: pytest in a subprocess, journal lines streamed to the head as they are written."""
    import ray

    index, count = spec["index"], spec["count"]
    attempt = ray.get(collector.start_attempt.remote(index))
    folder = Path(tempfile.mkdtemp(prefix=f"visionbench-shard{index}-"))
    journal, out, log = folder / f"shard-{index}.jsonl", folder / f"shard-{index}.json", folder / "pytest.log"
    earlier = ray.get(collector.journal.remote(index))  # lines a lost attempt had journaled
    journal.write_bytes(earlier)
    workdir = os.getcwd() if spec["ship_code"] else spec["workdir"]
    command = pytest_command(spec["python"], spec["pytest_args"], index, count, journal, out, resume=bool(earlier))
    sent = len(earlier)
    drill = spec.get("drill") if attempt == 1 else None
    with open(log, "wb") as log_file:
        process = subprocess.Popen(command, cwd=workdir, stdout=log_file, stderr=subprocess.STDOUT)
        while True:
            done = process.poll() is not None
            data = complete_lines(journal.read_bytes()[sent:])
            if data:
                ray.get(collector.append.remote(index, data))
                sent += len(data)
            if done:
                break
            if drill is not None and drill[0] == index and _records(journal.read_bytes()) >= drill[1]:
                process.kill()  # the drill: as if the node had vanished mid-run
            time.sleep(POLL_S)
    tail = log.read_text(errors="replace").splitlines()[-40:]
    if process.returncode < 0 or process.returncode in RETRYABLE_RETURN_CODES:
        raise ShardLost(f"shard {index}/{count} attempt {attempt} on {platform.node()}: pytest ended with "
                        f"{process.returncode}: {tail[-1] if tail else 'no output'}")
    return {"index": index, "attempt": attempt, "node": platform.node(), "returncode": process.returncode,
            "json": out.read_text() if out.exists() else None, "log_tail": tail}


def _records(journal: bytes) -> int:
    return journal.count(b'"kind": "benchmark"')


class Collector:
    """On the head: receives each shard's journal lines and appends them to OUT/shards/shard-I.jsonl, fsynced."""

    def __init__(self, folder: str) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.attempts: dict[int, int] = {}

    def _path(self, index: int) -> Path:
        return self.folder / f"shard-{index}.jsonl"

    def start_attempt(self, index: int) -> int:
        """Count an attempt of shard `index`; returns its number (1 for the first)."""
        self.attempts[index] = self.attempts.get(index, 0) + 1
        return self.attempts[index]

    def append(self, index: int, data: bytes) -> None:
        """Append whole journal lines of shard `index`."""
        with open(self._path(index), "ab") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())

    def journal(self, index: int) -> bytes:
        """Every line shard `index` has journaled so far, over all its attempts."""
        path = self._path(index)
        return path.read_bytes() if path.exists() else b""


def _connect(ray: Any, args: argparse.Namespace) -> None:
    import logging

    runtime_env: dict[str, Any] = {"env_vars": {"PYTHONPATH": str(ROOT)}}
    if args.ship_code:
        runtime_env = {"working_dir": str(ROOT), "excludes": [".git", ".venv", ".benchmarks", "*.json", "*.jsonl", "out"]}
    if args.address == "local":
        ray.init(num_cpus=args.num_cpus, include_dashboard=False, logging_level=logging.WARNING,
                 runtime_env=runtime_env, log_to_driver=False)
    else:
        ray.init(address=args.address, logging_level=logging.WARNING, runtime_env=runtime_env, log_to_driver=False)


def _parse_drill(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    try:
        shard, records = (int(part) for part in text.split(":"))
    except ValueError:
        raise SystemExit(f"benchmarks.cluster: error: --drill-kill: expected SHARD:RECORDS such as 1:2, got {text!r}") from None
    return shard, records


def main(argv: Sequence[str] | None = None) -> int:
    """Submit the shards, wait for them, merge on the head; returns the exit code."""
    args = build_parser().parse_args(argv)
    pytest_args = [a for a in args.pytest_args if a != "--"] if args.pytest_args[:1] == ["--"] else list(args.pytest_args)
    bad = [a for a in pytest_args if a.split("=")[0] in ("--shard", "--journal", "--resume", "--benchmark-json", "-n")]
    if bad:
        sys.stderr.write(f"benchmarks.cluster: error: {bad[0]} is set by the launcher for each shard; leave it out\n")
        return EXIT_USAGE
    drill = _parse_drill(args.drill_kill)
    try:
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
    except ImportError:
        sys.stderr.write("benchmarks.cluster: error: Ray is not installed; pip install -e .[cluster]\n")
        return EXIT_USAGE

    started = time.perf_counter()
    _connect(ray, args)
    try:
        resources = ray.cluster_resources()
        gpus = 0 if args.cpu else int(resources.get("GPU", 0))
        nodes = len([n for n in ray.nodes() if n.get("Alive")])
        count = args.shards or (gpus if gpus else nodes)
        if count < 1:
            sys.stderr.write("benchmarks.cluster: error: --shards must be >= 1\n")
            return EXIT_USAGE
        out = Path(args.out)
        shard_dir = out / "shards"
        head = ray.get_runtime_context().get_node_id()
        collector = ray.remote(num_cpus=0)(Collector).options(
            scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=head, soft=False)).remote(str(shard_dir.resolve()))
        task = ray.remote(run_shard).options(num_gpus=1 if gpus else 0, num_cpus=0 if gpus else args.cpus_per_shard,
                                            max_retries=args.max_retries, retry_exceptions=[ShardLost])
        kind = f"{count} shard(s), one GPU each" if gpus else f"{count} CPU shard(s), {args.cpus_per_shard:g} CPU(s) each"
        print(f"cluster: {nodes} node(s), {kind}; journals stream to {shard_dir}", file=sys.stderr)
        specs = [{"index": i, "count": count, "pytest_args": pytest_args, "python": args.python, "workdir": args.workdir,
                  "ship_code": args.ship_code, "drill": drill} for i in range(1, count + 1)]
        pending = {task.remote(spec, collector): spec["index"] for spec in specs}
        failed = 0
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            index = pending.pop(ready[0])
            try:
                result = ray.get(ready[0])
            except Exception as exc:  # retries exhausted: what it journaled is still merged
                failed += 1
                print(f"cluster: shard {index}/{count} failed after its retries: {str(exc).splitlines()[-1]}", file=sys.stderr)
                continue
            if result["json"] is not None:
                (shard_dir / f"shard-{index}.json").write_text(result["json"])
            if result["returncode"] == EXIT_USAGE:
                sys.stderr.write(f"benchmarks.cluster: error: pytest refused the options: {result['log_tail'][-1]}\n")
                return EXIT_USAGE
            print(f"cluster: shard {index}/{count} done on {result['node']} (attempt {result['attempt']}, "
                  f"pytest exit {result['returncode']})", file=sys.stderr)
    finally:
        ray.shutdown()
    return _merge(out, shard_dir, started, failed)


def _merge(out: Path, shard_dir: Path, started: float, failed: int) -> int:
    from reports.errors import BadInput
    from reports.load import load_runs
    from reports.merge import merge_files
    from reports.table import render

    merged = out / "merged.json"
    try:
        summary = merge_files([shard_dir], merged)
        table = render(load_runs([merged]), "markdown")
    except BadInput as exc:
        sys.stderr.write(f"benchmarks.cluster: error: {exc}\n")
        return EXIT_FAILED
    sys.stdout.write(table)
    print(f"cluster: {summary}; wall time {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return EXIT_FAILED if failed else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
