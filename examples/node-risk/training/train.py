"""Train the credit-risk model and build its test set, deterministically (runs on the host, not in the image).

Data: a synthetic tabular credit-risk table from scikit-learn's `make_classification`: six named numeric
applicant features and three risk classes (`low`, `medium`, `high`), 30,000 rows from a fixed seed, split in
half. Model: a multinomial logistic regression on standardised features. The Node.js service does the inference
itself, so the model file is plain JSON (feature order, means, scales, coefficients, intercepts, classes):
`risk.json`, pinned in models.lock like any other model file and pulled from S3 into the image.

    python training/train.py --out OUTDIR    # risk-train.npz, risk-test.npz (one array per feature) and risk.json
"""

from __future__ import annotations

import argparse
import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np

SEED = 20261201
N_ROWS = 30_000
FEATURES = ("income", "debt_ratio", "age", "late_payments", "utilization", "tenure")
CLASSES = ("low", "medium", "high")


def make_data() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=N_ROWS, n_features=len(FEATURES), n_informative=4, n_redundant=1,
                               n_classes=len(CLASSES), n_clusters_per_class=1, class_sep=1.6, flip_y=0.01,
                               random_state=SEED)
    scale = np.array([20_000, 0.1, 10, 1, 0.15, 3])  # plausible units per feature
    offset = np.array([55_000, 0.35, 42, 2, 0.4, 8])
    return (x * scale + offset).round(4), np.asarray(CLASSES)[y]


def save_npz_deterministic(path: Path, **arrays: np.ndarray) -> None:
    """np.savez stamps the current time into the zip; this writer does not, so equal arrays give equal bytes."""
    tmp = path.with_name(path.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
        for name in sorted(arrays):
            buf = io.BytesIO()
            np.save(buf, arrays[name], allow_pickle=False)
            zf.writestr(zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0)), buf.getvalue())
    os.replace(tmp, path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    out = Path(ap.parse_args().out)
    out.mkdir(parents=True, exist_ok=True)
    x, y = make_data()
    half = N_ROWS // 2
    ids = np.array([f"app-{i:05d}" for i in range(N_ROWS)])
    for name, rows in (("risk-train", slice(0, half)), ("risk-test", slice(half, N_ROWS))):
        save_npz_deterministic(out / f"{name}.npz", y=y[rows], id=ids[rows],
                               **{f: x[rows, j] for j, f in enumerate(FEATURES)})

    from sklearn.linear_model import LogisticRegression

    mean, std = x[:half].mean(axis=0), x[:half].std(axis=0)
    model = LogisticRegression(max_iter=1000).fit((x[:half] - mean) / std, y[:half])
    doc = {"features": list(FEATURES), "classes": [str(c) for c in model.classes_],
           "mean": mean.round(8).tolist(), "scale": std.round(8).tolist(),
           "coef": model.coef_.round(8).tolist(), "intercept": model.intercept_.round(8).tolist()}
    (out / "risk.json").write_text(json.dumps(doc, indent=1) + "\n")
    test_acc = model.score((x[half:] - mean) / std, y[half:])
    print(f"risk.json: multinomial logistic regression, test accuracy {test_acc:.4f}")


if __name__ == "__main__":
    main()
