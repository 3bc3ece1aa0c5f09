"""The digits test set kept the ways teams keep data: a tabular Parquet table and a folder of images + labels.

All three carry the same samples in the same row order with the same labels, so the sample order, the sample
and the predictions -- hence the verdict -- must be identical to the .npz run's. The images are binary PGM files
(8x8, grey levels 0..16 scaled by 15: exact both ways), read by `pgm_predict.py`, a predict function written
the way a team would for files: it gets local paths.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

PGM_PREDICT = '''"""Digits from PGM image files (a folder dataset, read: path) or from pixel arrays (npz, Parquet)."""
import numpy as np

from digits_service import inference


def load():
    return inference.load()


def _pixels(path):
    with open(path, "rb") as fh:
        data = fh.read()
    magic, width, height, maxval, body = data.split(maxsplit=4)
    assert magic == b"P5" and int(width) * int(height) == 64, path
    return np.frombuffer(body[:64], dtype=np.uint8) / 15.0


def predict(batch, model=None):
    if isinstance(batch, list) and batch and isinstance(batch[0], str):
        batch = np.stack([_pixels(p) for p in batch])
    return inference.predict(batch, model)
'''


def subset_npz(src: Path, dst: Path, n: int) -> Path:
    """The first n rows of the digits test set (x, y, id), uncompressed."""
    with np.load(src) as z:
        np.savez(dst, x=z["x"][:n], y=z["y"][:n], id=z["id"][:n])
    return dst


def tabular_parquet(npz: Path, dst: Path) -> Path:
    """64 pixel columns p00..p63, the label `digit`, an id `sid` and a free-text `note` (not an input)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    with np.load(npz) as z:
        x, y, ids = z["x"], z["y"], z["id"]
    cols = {f"p{i:02d}": pa.array(x[:, i]) for i in range(64)}
    cols.update(note=[f"scan {i}" for i in range(len(y))], digit=pa.array(y), sid=[f"s{int(i):05d}" for i in ids])
    pq.write_table(pa.table(cols), dst, row_group_size=1000)
    return dst


def image_folder(npz: Path, root: Path) -> Path:
    """One PGM file per sample under <digit>/ sub-folders, and labels.csv (file,label,id) in row order."""
    with np.load(npz) as z:
        x, y, ids = z["x"], z["y"], z["id"]
    rows = ["file,label,id"]
    for i in range(len(y)):
        rel = f"{int(y[i])}/img{int(ids[i]):05d}.pgm"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"P5 8 8 255\n" + (np.rint(x[i]) * 15).astype(np.uint8).tobytes())
        rows.append(f"{rel},{int(y[i])},{int(ids[i])}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root


def same_outcomes(a: dict, b: dict) -> None:
    """Two accuracy records drew the same sample, used as many samples, got the same predictions and verdict."""
    assert a["verdict"] == b["verdict"] and a["seed"] == b["seed"]
    assert a["sample"]["used"] == b["sample"]["used"] and a["sample"]["drawn"] == b["sample"]["drawn"]
    for key in ("positions", "labels", "predictions"):
        assert a["outcomes"][key] == b["outcomes"][key], key
    assert a["metrics"]["accuracy"] == b["metrics"]["accuracy"]
    assert [g["estimate"] for g in a["gates"]] == [g["estimate"] for g in b["gates"]]
