"""The `mlci` command line. Each concern registers its own subcommands; this module only dispatches.

Every input comes by flag or environment and every output goes under one directory, so Jenkins (running mlci
from the runtime image with the workspace mounted at the same path) and a laptop share one code path.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from . import __version__
from .errors import EXIT_USAGE, StageFailed, UserError

# (module with a `register(subparsers)` function). Listed here so `mlci --help` shows every command.
COMMAND_MODULES = (
    "mlci.config.cli",
    "mlci.artifacts.cli",
    "mlci.accuracy.cli",
    "mlci.build.cli",
    "mlci.stages.cli",
    "mlci.pipeline.cli",
    "mlci.report.cli",
    "mlci.deploy.cli",
    "mlci.train.cli",
    "mlci.drift.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlci", description="CI/CD for machine-learning services.")
    parser.add_argument("--version", action="version", version=f"mlci {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and (name == exc.name or name.startswith(exc.name + ".")):  # concern not built yet
                continue
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"mlci: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except StageFailed as exc:
        print(f"mlci: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("mlci: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
