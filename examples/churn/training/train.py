"""Train the churn model and build its data sets, deterministically.

Data: a synthetic tabular churn table from scikit-learn's `make_classification` (12 numeric customer features,
~30% churners, 2% of labels flipped as noise), 40,000 rows from a fixed seed, split in half: `churn-train`
(what the model learns from) and `churn-test` (what the accuracy gates sample). Model: scikit-learn's
HistGradientBoostingClassifier with a fixed seed, no early stopping and one thread, so the same data and
parameters give the same model; saved with joblib (the service loads it with the scikit-learn version pinned in
requirements.txt).

    python training/train.py --export OUTDIR          # write churn-train.npz and churn-test.npz (the data sets)
    python training/train.py --data churn-train.npz --out OUTDIR [--params train-params.json]
    python training/train.py --out OUTDIR             # both: data sets and model, as the demo and the tests do

`mlci train` runs the second form in the training image: $MLCI_DATA_CHURN_TRAIN, $MLCI_TRAIN_OUT and
$MLCI_TRAIN_PARAMS stand in for the flags. Parameters (JSON): `max_iter`, `learning_rate`, `max_leaf_nodes`.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import zipfile
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

SEED = 20240611
N_ROWS = 40_000
N_FEATURES = 12
DEFAULTS = {"max_iter": 100, "learning_rate": 0.1, "max_leaf_nodes": 31}


def make_data() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=N_ROWS, n_features=N_FEATURES, n_informative=6, n_redundant=2,
                               n_clusters_per_class=3, weights=[0.7], flip_y=0.02, class_sep=1.0, random_state=SEED)
    return x.astype(np.float32), y.astype(np.int64)


def save_npz_deterministic(path: Path, **arrays: np.ndarray) -> None:
    """np.savez stamps the current time into the zip; this writer does not, so equal arrays give equal bytes."""
    tmp = path.with_name(path.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
        for name in sorted(arrays):
            buf = io.BytesIO()
            np.save(buf, arrays[name], allow_pickle=False)
            zf.writestr(zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0)), buf.getvalue())
    os.replace(tmp, path)


def export(out: Path) -> tuple[Path, Path]:
    """churn-train.npz and churn-test.npz: inputs `x` (float32, N x 12), labels `y` (0 stays, 1 churns), `id`."""
    x, y = make_data()
    half = N_ROWS // 2
    out.mkdir(parents=True, exist_ok=True)
    paths = out / "churn-train.npz", out / "churn-test.npz"
    for path, rows in zip(paths, (slice(0, half), slice(half, N_ROWS)), strict=True):
        ids = np.arange(N_ROWS, dtype=np.int64)[rows]
        save_npz_deterministic(path, x=x[rows], y=y[rows], id=ids)
    return paths


def read_params(path: str | None) -> dict[str, float]:
    params = dict(DEFAULTS)
    if path:
        params.update(json.loads(Path(path).read_text()))
    unknown = set(params) - set(DEFAULTS)
    if unknown:
        raise SystemExit(f"unknown training parameter(s): {', '.join(sorted(unknown))}")
    return params


def train(data: Path, out: Path, params: dict[str, float]) -> Path:
    import joblib
    from sklearn.ensemble import HistGradientBoostingClassifier

    with np.load(data) as z:
        x, y = z["x"], z["y"]
    model = HistGradientBoostingClassifier(max_iter=int(params["max_iter"]), learning_rate=float(params["learning_rate"]),
                                           max_leaf_nodes=int(params["max_leaf_nodes"]), early_stopping=False,
                                           random_state=0)
    model.fit(x, y)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "churn.joblib"
    joblib.dump(model, path)
    print(f"churn.joblib: trained on {len(y)} rows with {params}; train accuracy {model.score(x, y):.4f}")
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--export", metavar="OUTDIR", help="write churn-train.npz and churn-test.npz and exit")
    ap.add_argument("--data", default=os.environ.get("MLCI_DATA_CHURN_TRAIN"))
    ap.add_argument("--out", default=os.environ.get("MLCI_TRAIN_OUT"))
    ap.add_argument("--params", default=os.environ.get("MLCI_TRAIN_PARAMS"))
    args = ap.parse_args()
    if args.export:
        for p in export(Path(args.export)):
            print(f"{p.name}: {p.stat().st_size} bytes")
        return
    if not args.out:
        ap.error("--out (or $MLCI_TRAIN_OUT) is required")
    data = Path(args.data) if args.data else export(Path(args.out))[0]
    train(data, Path(args.out), read_params(args.params))


if __name__ == "__main__":
    main()
