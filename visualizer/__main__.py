"""`python -m visualizer [--host H] [--port P] [--results DIR]`, or `--export DIR [--model ...]` for static pages.

Exit codes: 0 ok, 2 bad input (one line on stderr saying what and how to fix it).
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
import threading
import time
from pathlib import Path
from typing import NoReturn, Sequence

PROG = "visualizer"
EXIT_BAD_INPUT = 2


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are one line naming the fix."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{PROG}: error: {message} (see python -m visualizer --help)\n")
        sys.exit(EXIT_BAD_INPUT)


def build_parser() -> argparse.ArgumentParser:
    """The command line of `python -m visualizer`."""
    parser = _Parser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 exposes it to the network)")
    parser.add_argument("--port", type=int, default=5000, help="port to listen on (default 5000; 0 picks a free one)")
    parser.add_argument("--results", metavar="DIR", help="folder of pytest-benchmark JSON files for the Results page, e.g. .benchmarks/")
    parser.add_argument("--export", metavar="DIR", help="write the pages as self-contained HTML files into DIR and exit")
    parser.add_argument("--model", nargs="+", metavar="NAME",
                        help="with --export: models, families or shell patterns (default: resnet50 vit_b_16)")
    parser.add_argument("--input-size", type=int, metavar="N", help="with --export: square input size (default: each model's own)")
    return parser


DEFAULT_EXPORT_MODELS = ("resnet50", "vit_b_16")  # the default benchmark matrix's models


def main(argv: Sequence[str] | None = None) -> int:
    """Serve the visualizer, or export its pages; returns the exit code."""
    started = time.perf_counter()
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.results is not None and not Path(args.results).is_dir():
        parser.error(f"--results {args.results}: no such folder (give the folder of benchmark JSON files, e.g. .benchmarks/)")
    if args.export is None and (args.model or args.input_size):
        parser.error("--model and --input-size go with --export (the server offers every model and size)")
    if args.export is not None:
        return _export(parser, args)
    return _serve(parser, args, started)


def _export(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from models import UnknownModelError, select_models
    from visualizer.catalog import NotFound
    from visualizer.export import export_site

    try:
        names = select_models(args.model or list(DEFAULT_EXPORT_MODELS))
    except UnknownModelError as exc:
        parser.error(f"--model: {exc}")
    try:
        export_site(args.export, names, args.results, args.input_size, progress=lambda line: print(line, flush=True))
    except NotFound as exc:
        parser.error(f"--input-size: {exc.message}; sizes offered: {', '.join(exc.known)}")
    return 0


def _serve(parser: argparse.ArgumentParser, args: argparse.Namespace, started: float) -> int:
    from werkzeug.serving import make_server

    from visualizer.app import create_app

    try:
        server = make_server(args.host, args.port, create_app(args.results), threaded=True)
    except OSError as exc:
        parser.error(f"cannot listen on {args.host}:{args.port} ({exc.strerror or exc}); pick another with --port")
    host, port = server.server_address[:2]
    shown = f"[{host}]" if ":" in str(host) else host
    print(f"{PROG}: serving http://{shown}:{port}/ (started in {time.perf_counter() - started:.1f} s; Ctrl-C stops)",
          flush=True)
    if not _is_loopback(args.host):
        print(f"{PROG}: warning: listening on {args.host}: anyone who can reach this machine can use the pages", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print(f"{PROG}: stopped", flush=True)
    finally:
        server.server_close()
    if threading.active_count() > 1:
        # A request thread may still be computing inside torch or XLA, which would abort the
        # interpreter's shutdown: leave at once (nothing is left to write).
        sys.stderr.flush()
        os._exit(0)
    return 0


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


if __name__ == "__main__":
    sys.exit(main())
