"""The `mlci` command line. Each concern registers its own subcommands; this module only dispatches.

Every input comes by flag or environment and every output goes under one directory, so Jenkins (running mlci
from the runtime image with the workspace mounted at the same path) and a laptop share one code path.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys

from . import __version__
from .errors import EXIT_USAGE, StageFailed, UserError

# Top-level command -> the module whose `register(subparsers)` adds it. Only the module for the command being
# run is imported (numpy/scipy/boto3 cost seconds on a loaded agent); --help imports them all.
COMMANDS = {
    "config": "mlci.config.cli",
    "models": "mlci.artifacts.cli",
    "data": "mlci.artifacts.cli",
    "cache": "mlci.artifacts.cli",
    "accuracy": "mlci.accuracy.cli",
    "build": "mlci.build.cli",
    "test": "mlci.stages.cli",
    "pipeline": "mlci.pipeline.cli",
    "report": "mlci.report.cli",
    "deploy": "mlci.deploy.cli",
    "train": "mlci.train.cli",
    "train-io": "mlci.train.cli",
    "drift": "mlci.drift.cli",
}


def _wanted_modules(argv: list[str]) -> list[str]:
    first = next((a for a in argv if not a.startswith("-")), None)
    if first in COMMANDS:
        return [COMMANDS[first]]
    return list(dict.fromkeys(COMMANDS.values()))


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlci", description="CI/CD for machine-learning services.")
    parser.add_argument("--version", action="version", version=f"mlci {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _wanted_modules(sys.argv[1:] if argv is None else argv):
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and (name == exc.name or name.startswith(exc.name + ".")):  # concern not built yet
                continue
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        _apply_umask(os.environ.get("MLCI_UMASK"))
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"mlci: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except StageFailed as exc:
        print(f"mlci: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("mlci: interrupted", file=sys.stderr)
        if argv is None:  # the program itself: every finally has run, so leave now (see _leave)
            _leave(130)
        return 130
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def _apply_umask(value: str | None) -> None:
    """$MLCI_UMASK (octal): the caller's umask for a container's mlci, whose processes start with 0022, so files
    written into a mounted directory get the modes the caller's own programs would give them."""
    if not value:
        return
    try:
        mask = int(value, 8)
    except ValueError:
        mask = -1
    if not 0 <= mask <= 0o777:
        raise UserError(f"MLCI_UMASK={value!r} is not an octal umask", where="environment",
                        hint="e.g. MLCI_UMASK=0022, or leave it unset")
    os.umask(mask)


def _leave(code: int) -> None:
    """Exit without the interpreter's teardown: after Ctrl-C, daemon transfer threads may sit on silent sockets
    and tearing down boto3's loaded data alone can take a second; the user asked to stop now."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
