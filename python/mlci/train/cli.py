"""`mlci train [-c CONFIG] [--force] [--out DIR] [--trigger WHY]` (and `mlci train-io`, used inside Jobs)."""

from __future__ import annotations

import argparse

from ..config.loader import load_config
from ..paths import out_dir
from ..progress import Progress
from . import transfer


def _run(args: argparse.Namespace) -> int:
    from .run import train

    cfg = load_config(args.config)
    out = out_dir(args.out, cfg.root)
    return train(cfg, out=out, force=args.force, trigger_name=args.trigger, progress=Progress(0, "train"))


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model in its image, evaluate it against the current one, "
                                     "publish it only on PASS",
                       description="Build the training image, pull the pinned inputs, run the training command "
                                   "(local Docker or a Kubernetes Job; a run cache skips repeated runs), evaluate "
                                   "with train.evaluate against the current model, and on PASS upload the model, "
                                   "update the lock, write the training record, commit + tag it. Exit 0 published "
                                   "or nothing to do, 1 rejected/failed, 2 bad input, 3 inconclusive.")
    p.add_argument("-c", "--config", default=None, help="ml-ci.yaml (default $MLCI_CONFIG or ./ml-ci.yaml)")
    p.add_argument("--force", action="store_true", help="retrain even when the run cache has this run")
    p.add_argument("--out", default=None, help="output directory (default $MLCI_OUT or <repo>/.mlci)")
    p.add_argument("--trigger", default=None, help="why this run happened (timer, user, drift, ...) for the record")
    p.set_defaults(func=_run)
    transfer.register(sub)
