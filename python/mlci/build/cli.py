"""`mlci build`: the service image (or, with --runtime, the mlci runtime image)."""

from __future__ import annotations

import argparse
import os

from ..config.loader import load_config
from ..paths import out_dir


def config_path(value: str | None) -> str:
    return value or os.environ.get("MLCI_CONFIG") or "ml-ci.yaml"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("build", help="build the service image (BuildKit), label it, write build.json")
    p.add_argument("-c", "--config", default=None, help="ml-ci.yaml (default $MLCI_CONFIG or ./ml-ci.yaml)")
    p.add_argument("--out", default=None, help="output directory (default $MLCI_OUT, else <repo>/.mlci)")
    p.add_argument("--base", default=None, help="base image (default $MLCI_BASE_IMAGE, else image.base)")
    p.add_argument("--no-cache", action="store_true", help="rebuild every layer")
    p.add_argument("--push", action=argparse.BooleanOptionalAction, default=None,
                   help="push the tags (default image.push)")
    p.add_argument("--runtime", action="store_true",
                   help="build the mlci runtime image (docker/Dockerfile) instead, tag mlci:<version>")
    p.add_argument("--tag", default=None, help="with --runtime: the tag (default mlci:<version>)")
    p.add_argument("--model-spec", metavar="DIR", default=None,
                   help="(inside an image build) write to DIR what `mlci models pull` reads: ml-ci.yaml reduced, "
                   "the dependency file(s), DVC's remotes (from --from CONTEXT; without it, reduce DIR/ml-ci.yaml "
                   "in place)")
    p.add_argument("--from", dest="model_spec_from", metavar="CONTEXT", default=None,
                   help="with --model-spec: the build context to take them from")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.model_spec:
        from pathlib import Path

        from .modelspec import extract, reduce_in_place

        if args.model_spec_from:
            for name in extract(Path(args.model_spec_from), Path(args.model_spec)):
                print(f"model spec: {name}")
        else:
            reduce_in_place(Path(args.model_spec))
        return 0
    if args.runtime:
        from .runtime import build_runtime

        base = args.base or os.environ.get("MLCI_BASE_IMAGE") or "python:3.11-slim"
        print(build_runtime(base, args.tag))
        return 0
    from .image import build

    cfg = load_config(config_path(args.config))
    out = out_dir(args.out, cfg.root)
    build(cfg, out, base=args.base, no_cache=args.no_cache, push_images=args.push)
    return 0
