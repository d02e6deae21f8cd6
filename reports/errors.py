"""Exit codes of `python -m reports` and the one error that means bad input."""

from __future__ import annotations

import os

EXIT_OK = 0
EXIT_MISMATCH = 1  # diff: a deterministic figure changed; gate: a regression
EXIT_INVALID = 2  # gate: the measurement cannot be trusted
EXIT_BAD_INPUT = 3


class BadInput(Exception):
    """An input the reports cannot use: names the file (or argument) and the problem."""

    def __init__(self, source: str | os.PathLike[str], problem: str) -> None:
        super().__init__(f"{os.fspath(source)}: {problem}")
        self.source = os.fspath(source)
        self.problem = problem
