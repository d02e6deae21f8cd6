"""The two sides of the gate: a git ref (checked out with `git worktree add`) or a Python
environment (a python executable running this working tree), each timed by a long-lived
worker process that loads its models once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Iterator, Sequence

from reports.errors import BadInput

REPO_ROOT = Path(__file__).resolve().parents[1]
WORKER = Path(__file__).with_name("gate_worker.py")
WORKING_TREE = "."  # a side spelled "." is this working tree, uncommitted changes included


@dataclasses.dataclass(frozen=True)
class SideSpec:
    """What one side runs: `python` in the checkout of `commit` (None: this working tree)."""

    label: str
    python: str
    commit: str | None

    def describe(self) -> str:
        """e.g. 'HEAD~1 (commit 1a2b3c4d5e, python /usr/bin/python3)'."""
        where = f"commit {self.commit[:10]}" if self.commit else "working tree"
        return f"{self.label} ({where}, python {self.python})"


def _git(*args: str, cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)


def parse_side(text: str, default_python: str) -> SideSpec:
    """A side from the command line: '.', a python executable, or a git ref of this repository."""
    if text == WORKING_TREE:
        return SideSpec(text, default_python, None)
    path = Path(text)
    if path.is_file():
        if not os.access(path, os.X_OK):
            raise BadInput(text, "is a file but not executable; give a python executable or a git ref")
        return SideSpec(text, str(path), None)
    result = _git("rev-parse", "--verify", "--quiet", f"{text}^{{commit}}")
    if result.returncode != 0:
        raise BadInput(text, "neither a git ref of this repository nor a python executable")
    return SideSpec(text, default_python, result.stdout.strip())


@contextlib.contextmanager
def checkout(side: SideSpec) -> Iterator[Path]:
    """The folder the side runs in: a temporary worktree of its commit, removed afterwards."""
    if side.commit is None:
        yield REPO_ROOT
        return
    folder = Path(tempfile.mkdtemp(prefix="visionbench-gate-"))
    tree = folder / side.commit[:12]
    result = _git("worktree", "add", "--detach", "--quiet", str(tree), side.commit)
    if result.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        raise BadInput(side.label, f"git worktree add failed: {result.stderr.strip().splitlines()[-1:]}")
    try:
        yield tree
    finally:
        _git("worktree", "remove", "--force", str(tree))
        shutil.rmtree(folder, ignore_errors=True)
        _git("worktree", "prune")


class WorkerError(Exception):
    """A side's worker could not start or answer; the message says which side and why."""


class Worker:
    """A running gate_worker.py for one side: ask it for a round, get per-call seconds back."""

    def __init__(self, side: SideSpec, root: Path, benchmarks: Sequence[str], threads: int, warmup: int) -> None:
        self.side = side
        self._log = tempfile.TemporaryFile(mode="w+")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
        # Run by -c so the worker's own folder (reports/, with its html.py) is not on sys.path
        # and `benchmarks` resolves to the side's checkout, the working directory.
        code = f"import runpy; runpy.run_path({str(WORKER)!r}, run_name='__main__')"
        command = [side.python, "-c", code, "--benchmarks", *benchmarks, "--threads", str(threads), "--warmup", str(warmup)]
        try:
            self._process = subprocess.Popen(command, cwd=root, env=env, stdin=subprocess.PIPE,
                                             stdout=subprocess.PIPE, stderr=self._log, text=True)
        except OSError as exc:
            raise WorkerError(f"{side.describe()}: cannot start {side.python}: {exc.strerror}") from None
        ready = self._reply()
        self.timer_resolution_s = float(ready["timer_resolution_s"])
        self.python_version = str(ready.get("python", "?"))

    def _reply(self) -> dict[str, Any]:
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            self._process.wait()
            raise WorkerError(f"{self.side.describe()}: worker exited ({self._process.returncode}): {self._last_log_line()}")
        reply = json.loads(line)
        if "error" in reply:
            raise WorkerError(f"{self.side.describe()}: {reply['error']}")
        return reply

    def _last_log_line(self) -> str:
        self._log.seek(0)
        lines = [line.strip() for line in self._log.read().splitlines() if line.strip()]
        return lines[-1] if lines else "no output"

    def time_round(self, calls: int, min_round_s: float = 0.0) -> dict[str, list[float]]:
        """At least `calls` timed calls of each benchmark (more if they take under `min_round_s`), seconds per call."""
        assert self._process.stdin is not None
        try:
            self._process.stdin.write(json.dumps({"calls": calls, "min_round_s": min_round_s}) + "\n")
            self._process.stdin.flush()
        except BrokenPipeError:
            raise WorkerError(f"{self.side.describe()}: worker died: {self._last_log_line()}") from None
        return self._reply()["samples_s"]

    def close(self) -> None:
        """Stop the worker (closing its stdin ends it) and drop its log."""
        if self._process.stdin is not None:
            with contextlib.suppress(OSError):
                self._process.stdin.close()
        try:
            self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._log.close()
