"""`python -m reports table|plot|html|merge|baseline|diff|gate|finetune`: see each subcommand's --help.

Exit codes: 0 ok, 1 mismatch or regression, 2 gate measurement invalid, 3 bad input
(one line on stderr: `reports: error: <file>: <problem>`).
"""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn, Sequence

from reports import atomic
from reports.errors import EXIT_BAD_INPUT, EXIT_OK, BadInput

PROG = "reports"


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors are bad input: one line, exit 3 (2 is the gate's INVALID)."""

    def error(self, message: str) -> NoReturn:
        command = "python -m " + self.prog.replace(PROG, "reports", 1)
        sys.stderr.write(f"{PROG}: error: {message} (see {command} --help)\n")
        sys.exit(EXIT_BAD_INPUT)


def _inputs(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="FILE_OR_DIR",
                        help="pytest-benchmark JSON files, or folders of them such as .benchmarks/")


def build_parser() -> argparse.ArgumentParser:
    """The command line of `python -m reports`."""
    from reports.table import FORMATS

    parser = _Parser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    table = sub.add_parser("table", help="torch and JAX side by side, with their throughput ratio")
    _inputs(table)
    table.add_argument("--format", choices=FORMATS, default="markdown",
                       help="markdown: side by side; csv: one row per record; json: both (default: markdown)")
    table.add_argument("--out", metavar="FILE", help="write here (atomically) instead of stdout")
    table.add_argument("--across-machines", action="store_true",
                       help="put figures of different machines in one row (newest wins); by default each machine has its own rows")

    plot = sub.add_parser("plot", help="PNG plots: latency and memory vs batch, torch/JAX ratio, latency vs FLOPs, "
                                       "top-1 vs FLOPs and vs time per image (records with accuracy)")
    _inputs(plot)
    plot.add_argument("--out", metavar="DIR", required=True, help="folder for the PNG files")

    page = sub.add_parser("html", help="one self-contained HTML page with the tables and plots")
    _inputs(page)
    page.add_argument("--out", metavar="FILE", required=True, help="the HTML file to write")

    merge = sub.add_parser("merge", help="runs of many shards, journals and machines in one file, keyed by machine")
    _inputs(merge)
    merge.add_argument("--out", metavar="FILE", required=True, help="the merged JSON file to write (atomically)")
    merge.add_argument("--newest", action="store_true",
                       help="where one machine has a combination in two runs, keep the newer (default: refuse)")

    baseline = sub.add_parser("baseline", help="store a run, slimmed, as a baseline for diff")
    baseline.add_argument("run", metavar="RUN_JSON", help="a pytest-benchmark JSON file of the smoke matrix")
    baseline.add_argument("--out", metavar="FILE", required=True, help="e.g. reports/baselines/cpu-smoke.json")

    diff = sub.add_parser("diff", help="gate deterministic figures against a stored baseline; timings shown only")
    diff.add_argument("baseline", metavar="BASELINE", help="baseline file or folder, e.g. reports/baselines/cpu-smoke.json")
    diff.add_argument("current", metavar="CURRENT", help="the run to check: a pytest-benchmark JSON file or folder")

    finetune = sub.add_parser("finetune", help="a fine-tuning log: top-1 and train loss per epoch (PNG), and its table")
    finetune.add_argument("log", metavar="LOG_JSONL", help="JSON lines, one per framework and epoch, as fine-tuning writes them")
    finetune.add_argument("--out", metavar="DIR", required=True, help="folder for finetune_curve.png")

    from reports.gate import add_gate_arguments

    gate = sub.add_parser("gate", help="paired A/B timing of two git refs or Python environments on this machine",
                          formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_gate_arguments(gate)
    return parser


def _emit(text: str, out: str | None) -> None:
    if out is None:
        sys.stdout.write(text)
    else:
        atomic.write_text(out, text)


def run(args: argparse.Namespace) -> int:
    """Carry out the parsed subcommand; returns the exit code."""
    if args.command in ("table", "plot", "html"):
        from reports.load import load_runs

        runs = load_runs(args.paths)
        if args.command == "table":
            from reports.table import render

            _emit(render(runs, args.format, args.across_machines), args.out)
        elif args.command == "plot":
            from reports.frame import records_frame
            from reports.plots import write_pngs

            for path in write_pngs(records_frame(runs), args.out):
                print(path)
        else:
            from reports.html import render_html

            atomic.write_text(args.out, render_html(runs))
            print(args.out)
        return EXIT_OK
    if args.command == "merge":
        from reports.merge import merge_files

        print(merge_files(args.paths, args.out, args.newest))
        return EXIT_OK
    if args.command == "baseline":
        from reports.baseline import write_baseline

        count = write_baseline(args.run, args.out)
        print(f"{args.out}: baseline of {count} records from {args.run}")
        return EXIT_OK
    if args.command == "diff":
        from reports import diff

        baseline, current = diff.load_side(args.baseline), diff.load_side(args.current)
        rows = diff.compare(baseline, current)
        sys.stdout.write(diff.render(rows, baseline, current))
        return diff.exit_code(rows)
    if args.command == "finetune":
        from reports import finetune

        rows = finetune.read_log(args.log)  # refuses bad input before anything is written
        path = finetune.write_curves(rows, args.out)
        sys.stdout.write(finetune.render_markdown(rows))
        print(path)
        return EXIT_OK
    from reports.gate import run_gate

    return run_gate(args)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse `argv`, run, and turn bad input into one line on stderr and exit code 3."""
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except BadInput as exc:
        sys.stderr.write(f"{PROG}: error: {exc}\n")
    except OSError as exc:
        where = exc.filename if exc.filename is not None else "output"
        sys.stderr.write(f"{PROG}: error: {where}: {exc.strerror or exc}\n")
    return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
