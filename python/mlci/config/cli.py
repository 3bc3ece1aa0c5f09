"""`mlci config check|show|docs`."""

from __future__ import annotations

import argparse
import json

from .docs import reference_table, reference_text
from .loader import dump_yaml, load_config, redact


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("config", help="validate and show ml-ci.yaml")
    cmds = p.add_subparsers(dest="config_cmd", required=True)
    check = cmds.add_parser("check", help="validate; exit 2 listing every error")
    check.add_argument("-c", "--config", help="path to ml-ci.yaml (default ./ml-ci.yaml or $MLCI_CONFIG)")
    check.set_defaults(func=cmd_check)
    show = cmds.add_parser("show", help="print the resolved config with defaults (secrets redacted)")
    show.add_argument("-c", "--config")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=cmd_show)
    docs = cmds.add_parser("docs", help="print the reference generated from the schema")
    docs.add_argument("--prefix", default="", help="only keys under this path, e.g. accuracy")
    docs.add_argument("--format", choices=("markdown", "text"), default="markdown")
    docs.set_defaults(func=cmd_docs)


def cmd_check(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    print(f"{cfg.path}: ok (service '{cfg['service']}')")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    data = redact(cfg.data)
    if args.json:
        print(json.dumps(data, indent=2, sort_keys=True))
    else:
        print(dump_yaml(data), end="")
    return 0


def cmd_docs(args: argparse.Namespace) -> int:
    print(reference_table(args.prefix) if args.format == "markdown" else reference_text(args.prefix), end="")
    return 0
