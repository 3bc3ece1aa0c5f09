"""`mlci pipeline plan|run`: plan.py decides (branch policy), run.py executes stages on a laptop or agent."""

from __future__ import annotations

import argparse
import importlib


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pipeline", help="plan or run the pipeline (same stages as Jenkins)")
    cmds = p.add_subparsers(dest="pipeline_cmd", required=True)
    for name in ("plan", "run"):
        try:
            module = importlib.import_module(f"{__package__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"{__package__}.{name}":
                continue
            raise
        module.register(cmds)
