"""The drift reference of the training data: computed by `mlci train` once its inputs are verified, published
with the model on PASS, so `mlci drift check` compares production with what the model was trained on without
reading the training set again.

Which input: `drift.reference_input`, else the first of `train.inputs`. The statistics come from the drift
package (`reference_from_file` through `dataset_reference`): one implementation for both commands.
Where: content-addressed in the model store (`<artifacts.remote>/sha256/<2>/<62>`, the scheme of the model
files), its URI and digest in the training record that is committed next to the dependency file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .. import s3
from ..artifacts import lockfile
from ..artifacts.hashing import hash_file
from ..config.loader import Config
from ..drift.reference import dataset_reference
from ..errors import UserError
from ..fsutil import write_json_atomic
from ..progress import Progress
from .settings import TrainSettings

FILE = "drift-reference.json"


def choose_input(cfg: Config, s: TrainSettings) -> str | None:
    """The input the reference describes; checked before training so a typo does not cost a training run."""
    names = [i.name for i in s.inputs]
    wanted = cfg["drift"]["reference_input"]
    if wanted and wanted not in names:
        raise UserError(f"drift.reference_input: '{wanted}' is not one of train.inputs", where=str(cfg.path),
                        hint="valid: " + (", ".join(names) or "(train.inputs is empty)"))
    return wanted or (names[0] if names else None)


def compute(cfg: Config, s: TrainSettings, work: Path, progress: Progress) -> tuple[Path, dict[str, Any]] | None:
    """Write the reference of the chosen input to `work`/drift-reference.json; None without inputs."""
    name = choose_input(cfg, s)
    if name is None:
        progress.log("no drift reference: train.inputs is empty")
        return None
    ref = dataset_reference(cfg, name, cfg["drift"])
    path = work / FILE
    write_json_atomic(path, ref)
    pred = f", prediction from '{ref['prediction']['source']}'" if ref["prediction"] else ""
    progress.log(f"drift reference of '{name}': {len(ref['features'])} feature(s), {ref['source']['rows']} rows"
                 f"{pred}")
    return path, {"dataset": name, "rows": ref["source"]["rows"], "features": len(ref["features"])}


def publish(remote: str, path: Path, facts: dict[str, Any]) -> dict[str, Any]:
    """Upload content-addressed (skipped when the object is already there); the record's entry."""
    sha = hash_file(path)
    uri = lockfile.object_uri(remote, sha)
    bucket, key = s3.parse_uri(uri)
    client = s3.client()
    try:
        try:
            client.head_object(Bucket=bucket, Key=key)
        except Exception as exc:  # noqa: BLE001 - 404 is the expected case
            if getattr(exc, "response", {}).get("Error", {}).get("Code", "") not in ("404", "NoSuchKey", "NotFound"):
                raise
            client.upload_file(str(path), bucket, key, ExtraArgs={"Metadata": {"sha256": sha},
                                                                  "ContentType": "application/json"})
    except Exception as exc:  # noqa: BLE001 - translated for the user
        raise s3.explain(exc, uri, "drift reference") from None
    return {"uri": uri, "sha256": f"sha256:{sha}", **facts}
