"""Serves `mlci` CLI calls to the Groovy harness from one long-lived process.

The real CLI (`mlci.cli.main`, same argv parsing and code) answers every request; only the interpreter start
and the imports (seconds on a loaded machine) are paid once instead of per call. One JSON request per line on
stdin: {"argv": [...], "cwd": "...", "env": {...}}; one JSON answer per line: {"status", "stdout", "stderr"}.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys

from mlci.cli import main


def serve() -> None:
    real_stdout = sys.stdout
    for line in sys.stdin:
        req = json.loads(line)
        out, err = io.StringIO(), io.StringIO()
        saved_env, saved_cwd = dict(os.environ), os.getcwd()
        for name in ("BRANCH_NAME", "MLCI_CONFIG", "CHANGE_TARGET"):
            os.environ.pop(name, None)
        os.environ.update(req.get("env") or {})
        try:
            os.chdir(req.get("cwd") or saved_cwd)
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                try:
                    status = main(req["argv"])
                except SystemExit as exc:  # argparse errors
                    status = exc.code if isinstance(exc.code, int) else 2
        finally:
            os.chdir(saved_cwd)
            os.environ.clear()
            os.environ.update(saved_env)
        real_stdout.write(json.dumps({"status": status, "stdout": out.getvalue(), "stderr": err.getvalue()}) + "\n")
        real_stdout.flush()


if __name__ == "__main__":
    serve()
