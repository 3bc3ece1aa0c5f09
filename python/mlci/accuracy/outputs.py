"""What predict returns, and the one transformation every metric is computed from.

A suite declares its prediction type (`accuracy.output`, overridable per suite):

* `labels`: one class label per sample.
* `scores`: one number per sample, the score of the positive class of a binary problem (any scale: a
  probability, a logit, a distance). The predicted label is the positive class when score >= threshold.
* `probabilities`: one vector per sample, the probability of each class in `classes` order (default: the
  dataset's labels sorted, numbers numerically, which is scikit-learn's `predict_proba` column order). Binary:
  the positive class (the second) is predicted when its probability >= threshold. More classes: argmax.

`transform` turns raw predictions into (predicted label, score) per sample once; accuracy, precision, recall,
F1 and macro-F1 read the predicted labels, AUC reads the scores (binary: the positive class's score;
multi-class: the probability vector, one-vs-rest). A None or NaN prediction is a prediction error of that
sample and follows `accuracy.on_error`. Regression suites (mae/rmse gates) take one number per sample.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import UserError
from .data import label_key
from .metrics import natural

ERROR_LABEL = "(error)"  # the predicted label of a sample counted wrong: no class's prediction
PROB_TOLERANCE = 1e-6


@dataclass(frozen=True)
class Output:
    """The resolved prediction type of one suite (recorded in accuracy.json under plan.output)."""

    kind: str  # labels | scores | probabilities | numbers (regression)
    threshold: float = 0.5
    classes: tuple[str, ...] = ()  # label keys: probability columns / binary (negative, positive)
    names: dict[str, str] = field(default_factory=dict)  # label key -> display name (accuracy.labels)

    @property
    def positive(self) -> str | None:
        return self.classes[1] if len(self.classes) == 2 and self.kind in ("scores", "probabilities") else None

    @property
    def has_scores(self) -> bool:
        return self.kind in ("scores", "probabilities")

    @property
    def thresholded(self) -> bool:
        """A decision threshold applies (binary scores or probabilities)."""
        return self.positive is not None

    def name(self, key: str) -> str:
        return self.names.get(key, key)

    def describe(self) -> str:
        """One line for logs and the report, e.g. 'probabilities; churns when P(churns) >= 0.5'."""
        if self.kind == "probabilities" and self.positive is None:
            return f"probabilities over {len(self.classes)} classes; predicted class = the most probable"
        if self.positive is not None:
            pos = self.name(self.positive)
            what = f"P({pos})" if self.kind == "probabilities" else "score"
            return f"{self.kind}; {pos} when {what} >= {self.threshold:g}, else {self.name(self.classes[0])}"
        return self.kind

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "threshold": self.threshold if self.thresholded else None,
                "classes": list(self.classes), "positive": self.positive, "names": dict(self.names),
                "transformation": self.describe()}

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None, task: str | None = None) -> Output:
        """From a record's plan.output; records written before prediction types existed carry only `task`."""
        if not d:
            kind = {"regression": "numbers", "scores": "scores"}.get(task or "", "labels")
            return cls(kind, 0.5, ("0", "1") if kind == "scores" else ())
        return cls(d["kind"], d.get("threshold") if d.get("threshold") is not None else 0.5,
                   tuple(d.get("classes") or ()), dict(d.get("names") or {}))


def resolve(acc: dict[str, Any], suite: dict[str, Any], labels: Sequence[str], *, regression: bool,
            where: str) -> Output:
    """The suite's Output from `accuracy` and the suite's own keys, checked against the dataset's label keys."""
    names = {label_key(k): str(v) for k, v in (acc.get("labels") or {}).items()}
    if regression:
        return Output("numbers", names=names)
    kind = suite.get("output") or acc.get("output") or "labels"
    threshold = suite.get("threshold") if suite.get("threshold") is not None else acc.get("threshold", 0.5)
    present = sorted(set(labels), key=natural)
    declared = [label_key(c) for c in acc.get("classes") or []]
    if declared:
        missing = sorted(set(present) - set(declared), key=natural)
        if missing:
            raise UserError(f"the dataset has label(s) {', '.join(missing[:10])} that accuracy.classes does not list",
                            where="accuracy.classes", hint="list every class the model can predict, in its column order")
        if len(set(declared)) != len(declared):
            raise UserError("accuracy.classes lists a class twice", where="accuracy.classes")
    classes = tuple(declared or present)
    if kind == "scores":
        if len(classes) != 2:
            raise UserError(f"output: scores is one score per sample for a binary problem, but the classes are "
                            f"{', '.join(classes[:10]) or '(none)'}", where=f"{where}.output",
                            hint="use output: probabilities for more classes, or set accuracy.classes: "
                            "[negative, positive]")
    elif kind == "probabilities":
        if len(classes) < 2:
            raise UserError(f"output: probabilities needs at least two classes, found {', '.join(classes) or 'none'}",
                            where=f"{where}.output", hint="set accuracy.classes to the model's class order")
    elif kind == "labels":
        classes = tuple(declared)
    if kind == "probabilities" and not 0 <= threshold <= 1:
        raise UserError(f"decision threshold {threshold:g} is not a probability", where=f"{where}.threshold",
                        hint="a threshold on probabilities lies in [0, 1]")
    return Output(kind, float(threshold), classes, names)


def judged_settings(acc: dict[str, Any], suite: dict[str, Any]) -> dict[str, Any]:
    """What besides model, data, code and gates decides a suite's verdict: which functions predict, how their
    output becomes labels and scores, and how prediction errors count. Recorded in accuracy.json (plan.settings);
    a stored result is reusable only under the same settings."""
    threshold = suite.get("threshold") if suite.get("threshold") is not None else acc.get("threshold", 0.5)
    return {"predict": suite.get("predict") or acc.get("predict"), "load": suite.get("load") or acc.get("load"),
            "output": suite.get("output") or acc.get("output") or "labels", "threshold": float(threshold),
            "classes": [label_key(c) for c in acc.get("classes") or []], "on_error": acc.get("on_error"),
            "max_error_rate": acc.get("max_error_rate"), **_endpoint(acc, suite)}


def _endpoint(acc: dict[str, Any], suite: dict[str, Any]) -> dict[str, Any]:
    """Endpoint mode: how requests are built and answers read can change a prediction (transport settings
    cannot: timeout, retries and concurrency are left out)."""
    from .endpoint import settings

    ep = settings(acc, suite)
    if not ep:
        return {}
    return {"endpoint": {k: ep.get(k) for k in ("path", "method", "request", "response", "item", "batch")}}


def bad_number(value: Any) -> bool:
    """None, NaN or infinity: a missing prediction."""
    return value is None or (isinstance(value, float) and not math.isfinite(value))


def check_batch(output: Output, preds: list[Any]) -> tuple[list[Any], list[str | None], str | None]:
    """Worker side: (predictions, per-sample errors, fatal message) for one batch of raw predictions.

    A missing value (None, NaN, a vector holding NaN) is an error of that sample only; a prediction of the
    wrong type or shape is a contract error (fatal: the configuration or predict is wrong, not one sample).
    """
    errs: list[str | None] = [None] * len(preds)
    out = list(preds)
    for i, p in enumerate(preds):
        if output.kind in ("labels", "numbers"):
            if isinstance(p, (list, tuple, dict)):
                return out, errs, (f"predict returned a {type(p).__name__} for one sample ({_short(p)}), but the "
                                   f"suite's output is {output.kind}: one value per sample"
                                   + ("; for class probabilities set output: probabilities" if output.kind == "labels"
                                      else ""))
            if bad_number(p) or (isinstance(p, str) and p.lower() == "nan" and output.kind == "numbers"):
                out[i], errs[i] = None, f"predict returned {p!r} for this sample"
            elif output.kind == "numbers" and not _is_number(p):
                return out, errs, f"predict returned {_short(p)} for one sample; a regression suite needs numbers"
        elif output.kind == "scores":
            if bad_number(p):
                out[i], errs[i] = None, f"predict returned {p!r} for this sample"
            elif not _is_number(p):
                return out, errs, (f"predict returned {_short(p)} for one sample, but output: scores needs one number "
                                   "per sample" + ("; for one probability per class set output: probabilities"
                                                   if isinstance(p, (list, tuple)) else ""))
        else:  # probabilities
            if p is None:
                out[i], errs[i] = None, "predict returned None for this sample"
                continue
            if not isinstance(p, (list, tuple)) or len(p) != len(output.classes) or not all(
                    v is None or _is_number(v) for v in p):
                return out, errs, (f"predict returned {_short(p)} for one sample, but output: probabilities needs "
                                   f"{len(output.classes)} probabilities per sample (classes "
                                   f"{', '.join(output.classes[:10])})"
                                   + ("; for one score per sample set output: scores" if _is_number(p) else ""))
            if any(bad_number(v) for v in p):
                out[i], errs[i] = None, f"predict returned {_short(p)} for this sample"
            elif any(v < -PROB_TOLERANCE or v > 1 + PROB_TOLERANCE for v in p):
                return out, errs, (f"predict returned {_short(p)} for one sample: probabilities lie in [0, 1]; "
                                   "for unbounded scores (logits, margins) of a binary model use output: scores")
    return out, errs, None


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _short(v: Any, limit: int = 80) -> str:
    text = repr(v)
    return text if len(text) <= limit else text[:limit] + "..."


def predicted_label(output: Output, pred: Any) -> str:
    """The class a (valid, non-missing) prediction stands for, by the suite's documented rule."""
    if output.kind == "labels":
        return label_key(pred)
    if output.kind == "scores":
        return output.classes[1] if float(pred) >= output.threshold else output.classes[0]
    if output.positive is not None:
        return output.classes[1] if float(pred[1]) >= output.threshold else output.classes[0]
    return output.classes[int(np.argmax(np.asarray(pred, dtype=float)))]


def score_of(output: Output, pred: Any) -> Any:
    """AUC's input: the positive class's score (binary) or the probability vector (multi-class)."""
    if output.kind == "scores":
        return float(pred)
    if output.kind == "probabilities":
        return float(pred[1]) if output.positive is not None else [float(v) for v in pred]
    return None


def imputed_score(output: Output, label: str, right: bool) -> Any:
    """The score of a sample counted wrong (ranked below every other of its class) or counted right."""
    if output.positive is not None or output.kind == "scores":
        pos = label == output.classes[1]
        return math.inf if pos == right else -math.inf
    return [(math.inf if (c == label) == right else -math.inf) for c in output.classes]


@dataclass
class Transformed:
    labels: list[str | None]  # predicted label keys (None: prediction error)
    scores: list[Any]  # scores for AUC (None: error or no scores)
    errors: list[str | None]


def transform(output: Output, preds: Sequence[Any], errors: Sequence[str | None]) -> Transformed:
    """Predicted labels and scores for a batch; a missing prediction becomes an error of its sample."""
    labels: list[str | None] = []
    scores: list[Any] = []
    errs: list[str | None] = []
    for p, e in zip(preds, errors, strict=True):
        if e is None and (bad_number(p) or p == "__error__" or (
                isinstance(p, (list, tuple)) and any(bad_number(v) for v in p))):
            e = f"predict returned {_short(p)} for this sample"
        if e is not None or output.kind == "numbers":
            labels.append(None)
            scores.append(None)
        else:
            labels.append(predicted_label(output, p))
            scores.append(score_of(output, p))
        errs.append(e)
    return Transformed(labels, scores, errs)


def known_labels(output: Output, dataset_labels: set[str]) -> set[str] | None:
    """Labels a `labels` predict may return without it being a contract error (None: no check).

    Classes listed in `accuracy.classes` are allowed. A label outside this set is a wrong answer unless none of the
    first predictions is a known label (engine.encoding_mismatch: names instead of indices, bad input); so a
    single-class test set judges an imperfect model, and a predict in another encoding is still refused.
    """
    if output.kind != "labels":
        return None
    return set(output.classes or ()) | dataset_labels


def error_budget(rate: float, drawn: int) -> int:
    """Excluded samples allowed under on_error: exclude (accuracy.max_error_rate of the drawn samples)."""
    return int(math.floor(rate * drawn + 1e-9))
