"""Synthetic production traffic for the drift tests: a known distribution, optionally shifted."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from mlci.config.schema import SCHEMA

CHANNELS = ["web", "app", "store"]


def drift_cfg(**overrides: Any) -> dict[str, Any]:
    cfg = SCHEMA.fields["drift"].default_value()
    cfg.update(overrides)
    return cfg


def columns(n: int, rng: np.random.Generator, *, shift: float = 0.0, new_category: float = 0.0) -> dict[str, list]:
    """age (normal; `shift` moves its mean by that many SDs), income (lognormal, 2% missing), visits (Poisson),
    channel (3 categories; `new_category` of rows become 'kiosk'), prediction (class label 0/1)."""
    age = rng.normal(40 + shift * 12, 12, n)
    income = rng.lognormal(10, 0.5, n)
    income_list: list[Any] = [None if m else float(v) for v, m in zip(income, rng.random(n) < 0.02, strict=True)]
    channel = rng.choice(CHANNELS, n, p=[0.5, 0.3, 0.2]).astype(object)
    channel[rng.random(n) < new_category] = "kiosk"
    return {
        "age": age.tolist(),
        "income": income_list,
        "visits": rng.poisson(3, n).tolist(),
        "channel": channel.tolist(),
        "prediction": (rng.random(n) < 0.3).astype(int).tolist(),
    }


def rows(cols: dict[str, list]) -> list[dict[str, Any]]:
    names = list(cols)
    return [dict(zip(names, values, strict=True)) for values in zip(*cols.values(), strict=True)]


def jsonl(records: list[dict[str, Any]], gz: bool = False) -> bytes:
    body = "".join(json.dumps(r) + "\n" for r in records).encode()
    return gzip.compress(body) if gz else body


def csv_bytes(records: list[dict[str, Any]]) -> bytes:
    import csv

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(records[0]))
    writer.writeheader()
    for r in records:
        writer.writerow({k: "" if v is None else v for k, v in r.items()})
    return buf.getvalue().encode()


def digits_requests(x: np.ndarray, model: Path, n: int, seed: int, ink: float = 1.0) -> list[dict[str, Any]]:
    """Requests as the digits example service logs them: the 64 inputs (`ink` < 1: a scanner writing fainter)
    and the model's predicted class."""
    weights = np.load(model)
    idx = np.random.default_rng(seed).choice(len(x), n, replace=False)
    xs = np.round(x[idx].astype(np.float64) * ink)
    pred = np.argmax(xs / 16.0 @ weights["weights"] + weights["bias"], axis=1)
    return [{"request_id": f"r{i}", "x": row.tolist(), "prediction": int(p)}
            for i, (row, p) in enumerate(zip(xs, pred, strict=True))]
