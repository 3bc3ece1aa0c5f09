"""`mlci test unit|acceptance|accuracy`: the in-image stages (the Jenkins steps call exactly these)."""

from __future__ import annotations

import argparse

from ..build.cli import config_path
from ..config.loader import load_config
from ..paths import out_dir


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("-c", "--config", default=None, help="ml-ci.yaml (default $MLCI_CONFIG or ./ml-ci.yaml)")
    p.add_argument("--out", default=None, help="output directory (default $MLCI_OUT, else <repo>/.mlci)")
    p.add_argument("--image", default=None, help="image to test (default $MLCI_IMAGE, else <out>/build.json)")
    p.add_argument("--print-docker-run", action="store_true",
                   help="print the equivalent plain `docker run` command line(s) and exit without running")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("test", help="run unit / acceptance / accuracy tests inside the built image")
    cmds = p.add_subparsers(dest="test_cmd", required=True)
    unit = cmds.add_parser("unit", help="tests.unit.command in the image; JUnit to <out>/junit/unit.xml")
    _common(unit)
    unit.set_defaults(func=_unit)
    acc = cmds.add_parser("acceptance", help="service container + tests from a second container on a private "
                                             "network; JUnit to <out>/junit/acceptance.xml")
    _common(acc)
    acc.set_defaults(func=_acceptance)
    accu = cmds.add_parser("accuracy", help="`mlci accuracy run --suite NAME` in the image; results in "
                                            "<out>/accuracy/<suite>/ (exit 0 pass, 1 fail, 3 inconclusive)")
    _common(accu)
    accu.add_argument("--suite", required=True, help="suite under accuracy.suites")
    accu.add_argument("-n", "--workers", default=None, help="pytest-xdist workers: auto or N")
    accu.add_argument("--seed", type=int, default=None, help="sample seed (default: from the commit)")
    accu.add_argument("--shard", default=None, help="K/N: run shard K of N")
    accu.add_argument("--force", action="store_true",
                      help="run even when a stored PASS matches this model, dataset and inference code")
    accu.set_defaults(func=_accuracy)


def _load(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    cfg = load_config(config_path(args.config))
    return cfg, out_dir(args.out, cfg.root)


def _unit(args: argparse.Namespace) -> int:
    from .unit import run_unit

    cfg, out = _load(args)
    run_unit(cfg, out, image=args.image, print_only=args.print_docker_run)
    return 0


def _acceptance(args: argparse.Namespace) -> int:
    from .acceptance import run_acceptance

    cfg, out = _load(args)
    run_acceptance(cfg, out, image=args.image, print_only=args.print_docker_run)
    return 0


def _accuracy(args: argparse.Namespace) -> int:
    from .accuracy import run_accuracy

    cfg, out = _load(args)
    return run_accuracy(cfg, out, args.suite, image=args.image, workers=args.workers, seed=args.seed,
                        shard=args.shard, force=args.force, print_only=args.print_docker_run)
