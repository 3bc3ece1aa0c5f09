"""Parquet and folder datasets where the accuracy stage really runs: inside the built image, on the real Docker
engine, the datasets coming from the real S3 server through `mlci data add` and the mounted artifact cache.

The team's side of it: `pyarrow` in requirements.txt (Parquet is an optional extra of mlci), one predict that
takes pixel rows or image paths, `mlci data add` for the table and the folder, two suites.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import yaml

from ..accuracy.datasets import PGM_PREDICT, image_folder, subset_npz, tabular_parquet
from ..conftest import run_mlci
from ..image.service import copy_service, git, image_group, names_with_prefix, service  # noqa: F401 (fixture)

GROUP = image_group(__name__)

GATES = [{"metric": "accuracy", "min": 0.85, "margin": 0.05}]


@GROUP
def test_parquet_and_image_folder_suites_run_in_the_image(service, tmp_path: Path) -> None:  # noqa: F811
    root = copy_service(service.root, tmp_path / "digits")
    env = {**service.env, "MLCI_CACHE": str(tmp_path / "cache")}
    pulled = run_mlci("data", "pull", "digits-test", "--dest", str(tmp_path / "data"), cwd=root, env=env)
    assert pulled.returncode == 0, pulled.stderr
    npz = subset_npz(tmp_path / "data" / "digits-test.npz", tmp_path / "data" / "first800.npz", 800)
    table = tabular_parquet(tmp_path / "data" / "digits-test.npz", tmp_path / "data" / "digits.parquet")
    images = image_folder(npz, tmp_path / "images")
    for name, path in (("digits-table", table), ("digits-images", images)):
        added = run_mlci("data", "add", name, str(path), cwd=root, env=env)
        assert added.returncode == 0, added.stderr

    (root / "requirements.txt").write_text((root / "requirements.txt").read_text() + "pyarrow>=14\n")
    (root / "pgm_predict.py").write_text(PGM_PREDICT)
    cfg = yaml.safe_load((root / "ml-ci.yaml").read_text())
    data = cfg["artifacts"]["data"]
    assert data["digits-table"]["format"] == "parquet" and data["digits-images"]["format"] == "folder"
    data["digits-table"].update(inputs=["*"], exclude=["note"], label="digit", id="sid", batch_as="array")
    data["digits-images"].update(label="label", id="id")
    cfg["accuracy"].update(predict="pgm_predict:predict", load="pgm_predict:load")
    cfg["accuracy"]["suites"].update({
        "tabular": {"dataset": "digits-table", "max_samples": 3000, "gates": GATES},
        "images": {"dataset": "digits-images", "max_samples": 800, "gates": GATES}})
    (root / "ml-ci.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "parquet and image datasets")

    out = tmp_path / "out"
    built = run_mlci("build", "--out", str(out), cwd=root, env=service.env, timeout=1200)
    assert built.returncode == 0, built.stderr[-3000:]
    digest = json.loads((out / "build.json").read_text())["image"]["digest"]
    for suite, fmt in (("tabular", "parquet"), ("images", "folder")):
        stage_out = tmp_path / f"out-{suite}"
        stage_out.mkdir()
        shutil.copy(out / "build.json", stage_out / "build.json")
        proc = run_mlci("test", "accuracy", "--suite", suite, "-n", "2", "--out", str(stage_out), cwd=root, env=env,
                        timeout=900)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        rec = json.loads((stage_out / "accuracy" / suite / "accuracy.json").read_text())
        assert rec["verdict"] == "PASS" and rec["image"]["digest"] == digest
        assert rec["dataset"]["format"] == fmt and rec["dataset"]["sha256"] == data[f"digits-{'table' if fmt == 'parquet' else 'images'}"]["sha256"]
        assert rec["sample"]["used"] == len(rec["outcomes"]["ids"]) > 0
    assert rec["outcomes"]["ids"][0].isdigit()  # the folder's id column
    assert names_with_prefix(service.prefix) == []
