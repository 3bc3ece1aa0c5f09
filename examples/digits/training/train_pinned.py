"""Train the digits model from a dataset pinned by digest (what `mlci train` runs in the training image).

train.py reads scikit-learn's bundled copy of the digits; a training run in the pipeline must instead name the
exact bytes it learnt from, so here the same images come from an .npz pulled and verified through mlci's
artifacts (train.inputs -> $MLCI_DATA_DIGITS_TRAIN). The training image then needs numpy only. The split,
augmentation and model are train.py's, unchanged; the parameters file ($MLCI_TRAIN_PARAMS) sets `steps`.

    python training/train_pinned.py --data digits-train.npz --out OUTDIR [--params params.yaml] [--degraded]
    python training/train_pinned.py --export digits-train.npz   # write the dataset (host, needs scikit-learn)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import train  # noqa: E402


def read_steps(params: str | None) -> int:
    """`steps` from a JSON (or flat `key: value` YAML) params file; train.py's default without one."""
    if not params:
        return 400
    text = Path(params).read_text()
    try:
        values = json.loads(text)
    except ValueError:
        values = dict(line.split(":", 1) for line in text.splitlines() if ":" in line and not line.startswith("#"))
    return int(str(values.get("steps", 400)).strip())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=os.environ.get("MLCI_DATA_DIGITS_TRAIN"))
    ap.add_argument("--out", default=os.environ.get("MLCI_TRAIN_OUT"))
    ap.add_argument("--params", default=os.environ.get("MLCI_TRAIN_PARAMS"))
    ap.add_argument("--degraded", action="store_true")
    ap.add_argument("--export", metavar="NPZ", help="write the training dataset from scikit-learn and exit")
    args = ap.parse_args()
    if args.export:
        Path(args.export).parent.mkdir(parents=True, exist_ok=True)
        images, labels = train.load_digits()
        # the serving schema: `x` (64 pixel values per request, as the service receives and logs them) and `y`,
        # like the test set, so a drift reference computed from this data matches production logs column by column
        train.save_npz_deterministic(args.export, x=images.reshape(len(images), 64), y=labels)
        return
    if not args.data or not args.out:
        ap.error("--data and --out (or $MLCI_DATA_DIGITS_TRAIN and $MLCI_TRAIN_OUT) are required")
    with np.load(args.data) as z:
        images, labels = z["x"].astype(np.float64).reshape(-1, 8, 8), z["y"].astype(np.int64)
    train.load_digits = lambda: (images, labels)  # the pinned bytes instead of scikit-learn's copy
    sys.argv = [sys.argv[0], "--out", args.out, "--steps", str(read_steps(args.params))]
    if args.degraded:
        sys.argv.append("--degraded")
    train.main()


if __name__ == "__main__":
    main()
