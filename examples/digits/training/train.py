"""Train the digits model and build the test set, deterministically.

Data: the 1,797 handwritten digits that scikit-learn bundles (8x8 images, 0..16 grey levels), split 60/40
with a fixed seed. Both halves are augmented with 8 noisy copies each so the test set has several
thousand samples (~6,500) and sample-based testing matters. Model: softmax regression by full-batch gradient
descent, float64, single-threaded BLAS, fixed iteration count: same inputs give the same bytes.

    python training/train.py --out OUTDIR [--degraded]

writes OUTDIR/digits.npz (the model) and OUTDIR/digits-test.npz (x: float32 N x 64, y: int64 N, id).
`--degraded` trains on 3% of the data for a few steps: the model that must fail the accuracy gate.
"""

from __future__ import annotations

import argparse
import io
import os
import zipfile

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits as sk_load

    d = sk_load()
    return d.images.astype(np.float64), d.target.astype(np.int64)


def augment(images: np.ndarray, labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The originals plus 8 noisy copies (grey levels jittered by up to +-3, 5% of pixels dropped)."""
    rng = np.random.default_rng(seed)
    flat = images.reshape(len(images), 64)
    xs, ys = [flat], [labels]
    for _ in range(8):
        noisy = flat + rng.integers(-3, 4, size=flat.shape)
        noisy[rng.random(flat.shape) < 0.05] = 0
        xs.append(np.clip(noisy, 0, 16))
        ys.append(labels)
    return np.concatenate(xs), np.concatenate(ys)


def train(x: np.ndarray, y: np.ndarray, steps: int, lr: float = 1.0, l2: float = 1e-4) -> tuple[np.ndarray, np.ndarray]:
    x = x / 16.0
    w = np.zeros((64, 10))
    b = np.zeros(10)
    onehot = np.eye(10)[y]
    for _ in range(steps):
        logits = x @ w + b
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=1, keepdims=True)
        grad = p - onehot
        w -= lr * (x.T @ grad / len(x) + l2 * w)
        b -= lr * grad.mean(axis=0)
    return w, b


def save_npz_deterministic(path: str, **arrays: np.ndarray) -> None:
    """np.savez stamps the current time into the zip; this writer does not, so equal arrays give equal bytes."""
    tmp = path + ".tmp"
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
        for name in sorted(arrays):
            buf = io.BytesIO()
            np.save(buf, arrays[name], allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            zf.writestr(info, buf.getvalue())
    os.replace(tmp, path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--degraded", action="store_true")
    ap.add_argument("--steps", type=int, default=400)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)

    images, labels = load_digits()
    order = np.random.default_rng(20240601).permutation(len(labels))
    cut = int(0.6 * len(labels))
    train_idx, test_idx = order[:cut], order[cut:]
    x_train, y_train = augment(images[train_idx], labels[train_idx], seed=1)
    x_test, y_test = augment(images[test_idx], labels[test_idx], seed=2)

    if args.degraded:
        keep = np.random.default_rng(7).permutation(len(y_train))[: len(y_train) * 3 // 100]
        w, b = train(x_train[keep], y_train[keep], steps=25)
        name = "digits-degraded.npz"
    else:
        w, b = train(x_train, y_train, steps=args.steps)
        name = "digits.npz"
    save_npz_deterministic(os.path.join(args.out, name), weights=w, bias=b)
    save_npz_deterministic(os.path.join(args.out, "digits-test.npz"), x=x_test.astype(np.float32), y=y_test,
                           id=np.arange(len(y_test), dtype=np.int64))

    x = x_test / 16.0
    acc = float(((x @ w + b).argmax(axis=1) == y_test).mean())
    print(f"{name}: test accuracy {acc:.4f} on {len(y_test)} samples (train {len(y_train)})")


if __name__ == "__main__":
    main()
