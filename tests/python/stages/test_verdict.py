"""An accuracy verdict is about one image: the result cache, stale and dirty records, and change gates, through the
real stages on the real Docker engine and S3 server (the digits example).

- the result key moves with every input that can change a prediction (base image, installed packages, any module,
  model files, mlci in the image, dataset, gates, seed, baseline) and with nothing else (an empty commit);
- a stored PASS is reused only for its key, never after a non-PASS for the same key;
- reports, `--record` and the promotion gate take only this run's records; an image that is not HEAD's is refused
  unless named explicitly; a dirty tree never takes the branch tag and is never recorded;
- a change gate predicts the baseline in its own image, and where that image is gone, swaps the baseline's model
  files into the candidate's image so that even a `load()` ignoring $MLCI_MODELS_DIR reads them.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import uuid
from pathlib import Path
from typing import Any

from mlci.config import load_config
from mlci.deploy.gate import evaluate as gate
from mlci.report import history
from mlci.stages.accuracy_inputs import image_identity, result_key

from ..conftest import DOCKER, run_mlci
from ..image.service import churn, copy_service, git, image_group, service  # noqa: F401

GROUP = image_group(__name__)

EXTRA_SUITE = ("    extra:\n      dataset: digits-test\n      max_samples: 1000\n      gates:\n"
               "        - {metric: accuracy, min: 0.6, margin: 0.1}\n")
VS_MAIN = ("    vs-main:\n      dataset: digits-test\n      max_samples: 1000\n      gates:\n"
           "        - {metric: accuracy, kind: change, margin: 0.05}\n")


def inspect(ref: str) -> dict[str, Any]:
    return json.loads(subprocess.run([DOCKER, "image", "inspect", ref], capture_output=True, text=True,
                                     check=True).stdout)[0]


def edit(root: Path, name: str, old: str, new: str) -> None:
    path = root / name
    text = path.read_text()
    assert old in text, (name, old)
    path.write_text(text.replace(old, new, 1))


def own_copy(svc, tmp_path: Path, *suites: str, before: str = "    full:\n") -> Path:
    """A committed copy of the service with a history store of its own (and extra suites, inserted before the
    suite line `before`)."""
    root = copy_service(svc.root, tmp_path / "service")
    edit(root, "ml-ci.yaml", f"s3://{svc.bucket}/history", f"s3://{svc.bucket}/history-{uuid.uuid4().hex[:8]}")
    if suites:
        edit(root, "ml-ci.yaml", before, "".join(suites) + before)
    commit(root, "a history store of its own")
    return root


def commit(root: Path, message: str) -> str:
    git(root, "add", "-A")
    git(root, "commit", "-q", "--allow-empty", "-m", message)
    return git(root, "rev-parse", "HEAD").strip()


def build(svc, root: Path, out: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    proc = run_mlci("build", "--out", str(out), cwd=root, env={**svc.env, **(env or {})}, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((out / "build.json").read_text())


def mlci(svc, root: Path, *args: str) -> tuple[int, str]:
    proc = run_mlci(*args, cwd=root, env=svc.env, timeout=900)
    return proc.returncode, proc.stdout + proc.stderr


def key(root: Path, ref: str, suite: str = "smoke", **kw: Any) -> str | None:
    return result_key(load_config(root / "ml-ci.yaml"), suite, image_identity(inspect(ref)), **kw)


def record(out: Path, suite: str) -> dict[str, Any]:
    return json.loads((out / "accuracy" / suite / "accuracy.json").read_text())


def stored(root: Path, suite: str) -> list[dict[str, Any]]:
    cfg = load_config(root / "ml-ci.yaml")
    return history.recent(cfg, branch="main", suite=suite, limit=50)


# --- the result key: a test per input -----------------------------------------------------------------------------
@GROUP
def test_result_key_moves_with_every_input_and_not_with_an_empty_commit(service, tmp_path: Path) -> None:  # noqa: F811
    root = own_copy(service, tmp_path)
    ref = build(service, root, tmp_path / "b0")["image"]["id"]
    base = key(root, ref)
    assert base and len(base) == 64

    # an empty commit: a new revision label (another image id), the same layers and runtime config: the same key
    commit(root, "empty")
    again = build(service, root, tmp_path / "b1")["image"]["id"]
    assert again != ref and key(root, again) == base

    seen = {base}

    def changed(what: str, ref: str, **kw: Any) -> None:
        k = key(root, ref, **kw)
        assert k not in seen, f"changing {what} kept the result key"
        seen.add(k)

    # the image's inputs, each in its own commit and build
    edit(root, "requirements.txt", "numpy>=1.24,<3", "numpy>=1.24,<2.99")
    commit(root, "installed packages")
    changed("requirements.txt", build(service, root, tmp_path / "b2")["image"]["id"])

    (root / "digits_helpers.py").write_text("SCALE = 16.0\n")  # a module outside the predict package
    commit(root, "a helper module")
    changed("a module outside the predict package", build(service, root, tmp_path / "b3")["image"]["id"])

    model = root / "models" / "digits.npz"
    model.write_bytes(model.read_bytes() + b"\0")
    assert run_mlci("models", "add", "models/digits.npz", cwd=root, env=service.env).returncode == 0
    commit(root, "model files")
    rec = build(service, root, tmp_path / "b4")
    changed("the model files", rec["image"]["id"])

    prefix = service.image_name.rsplit("/", 1)[0]
    alt_base = f"{prefix}/base:alt"
    base_ref = os.environ.get("MLCI_BASE_IMAGE", "mlci-base:bookworm")
    made = subprocess.run([DOCKER, "build", "-q", "-t", alt_base, "-"], text=True, capture_output=True,
                          input=f"FROM {base_ref}\nRUN echo alternative > /etc/mlci-alternative-base\n")
    assert made.returncode == 0, made.stderr
    changed("the base image", build(service, root, tmp_path / "b5", env={"MLCI_BASE_IMAGE": alt_base})["image"]["id"])

    patched = f"{prefix}/digits:mlci-patched"
    made = subprocess.run([DOCKER, "build", "-q", "-t", patched, "-"], text=True, capture_output=True,
                          input=f"FROM {rec['image']['tags'][0]}\nUSER root\nRUN echo '# patched' >> "
                                "$(python3 -c 'import mlci; print(mlci.__file__)')\n")
    assert made.returncode == 0, made.stderr
    changed("mlci inside the image", patched)

    # what judges the image: config and flags (also in the image's ml-ci.yaml, so a rebuild moves it as well)
    ref = rec["image"]["id"]
    cfg_text = (root / "ml-ci.yaml").read_text()
    pinned = re.search(r"sha256: [0-9a-f]{64}", cfg_text).group(0)
    for what, old, new in (("the gates", "min: 0.90, margin: 0.02, alpha", "min: 0.91, margin: 0.02, alpha"),
                           ("the sample seed", "      every_build: true\n", "      every_build: true\n      seed: 7\n"),
                           ("the dataset", pinned, "sha256: " + "a" * 64)):
        (root / "ml-ci.yaml").write_text(cfg_text.replace(old, new, 1))
        changed(what, ref)
    (root / "ml-ci.yaml").write_text(cfg_text)
    assert key(root, ref) in seen
    changed("--seed", ref, seed=7)
    changed("the change gate's baseline", ref, baseline={"image": "sha256:" + "0" * 64, "model_files": {}})
    changed("another suite", ref, suite="full")


# --- the result cache through the stage ---------------------------------------------------------------------------
@GROUP
def test_a_pass_is_reused_only_for_its_key_and_never_after_a_fail(service, tmp_path: Path) -> None:  # noqa: F811
    root = own_copy(service, tmp_path)
    out = tmp_path / "o1"
    build(service, root, out)
    code, text = mlci(service, root, "pipeline", "run", "--stages", "accuracy", "--record", "--out", str(out))
    assert code == 0 and "[report] recorded smoke PASS" in text, text[-3000:]
    first = record(out, "smoke")
    assert first["cache_key"] and first["run"]["id"] and first["seed_source"] == "inputs"

    # an empty commit rebuilds the same layers: reused (the same inputs would draw the same sample: the seed)
    commit(root, "empty")
    out2 = tmp_path / "o2"
    build(service, root, out2)
    code, text = mlci(service, root, "test", "accuracy", "--suite", "smoke", "--out", str(out2))
    assert code == 0 and "unchanged: this image, dataset, suite and baseline match record" in text, text[-3000:]
    reused = record(out2, "smoke")
    assert reused["cache_key"] == first["cache_key"] and reused["reused_from"]["record"]
    assert reused["run"]["id"] == json.loads((out2 / "build.json").read_text())["run"]["id"] != first["run"]["id"]
    assert reused["seed"] == first["seed"] and reused["git"]["commit"] == git(root, "rev-parse", "HEAD").strip()

    # a FAIL with the same key (identical inputs judged otherwise, e.g. a model whose predictions vary): not reused
    cfg = load_config(root / "ml-ci.yaml")
    failed = {**first, "id": uuid.uuid4().hex, "verdict": "FAIL", "exit_code": 1}
    history.append_record(cfg, failed)
    code, text = mlci(service, root, "test", "accuracy", "--suite", "smoke", "--out", str(out2))
    assert code == 0 and "says FAIL: not reusing a PASS" in text and "unchanged" not in text, text[-3000:]
    # the run that followed drew the same sample as the first (identical inputs, same seed)
    again = record(out2, "smoke")
    assert again["seed"] == first["seed"] and again["outcomes"]["ids"] == first["outcomes"]["ids"]


# --- stale and dirty records --------------------------------------------------------------------------------------
@GROUP
def test_reports_record_and_deploy_gate_take_only_this_runs_records(service, tmp_path: Path) -> None:  # noqa: F811
    root = own_copy(service, tmp_path, EXTRA_SUITE)
    out = tmp_path / "out"
    first = build(service, root, out)
    code, text = mlci(service, root, "pipeline", "run", "--stages", "accuracy", "--suite", "extra", "--record",
                      "--out", str(out))
    assert code == 0 and "[report] recorded extra PASS" in text, text[-3000:]

    # (a) the next build fails its smoke suite: the report shows this build's FAIL, not the extra PASS left behind
    edit(root, "ml-ci.yaml", "min: 0.90, margin: 0.02, alpha", "min: 0.97, margin: 0.02, alpha")
    commit(root, "a gate the model cannot clear")
    code, text = mlci(service, root, "pipeline", "run", "--stages", "build,accuracy", "--suite", "smoke", "--record",
                      "--out", str(out))
    assert code == 1, text[-3000:]
    second = json.loads((out / "build.json").read_text())
    assert second["run"]["id"] != first["run"]["id"]
    assert (out / "accuracy" / "extra" / "accuracy.json").is_file()  # still there, but not this run's
    report = (out / "report" / "report.md").read_text()
    assert "smoke" in report and "extra" not in report, report
    assert "left out a record of another run" in text
    # (b) --record took only this run's record; recording the directory again adds nothing
    assert "[report] recorded smoke FAIL" in text and "recorded extra" not in text
    code, text = mlci(service, root, "report", "record", "--results", str(out))
    assert code == 0 and "already in the history store" in text
    assert len(stored(root, "extra")) == 1 and len(stored(root, "smoke")) == 1

    # the promotion gate: the extra PASS names the first image; re-tagged as this build's image it is still not this
    # run's evidence
    cfg = load_config(root / "ml-ci.yaml")
    stale = record(out, "extra")
    stale["image"]["digest"] = second["image"]["digest"]
    (out / "accuracy" / "extra" / "accuracy.json").write_text(json.dumps(stale))
    (out / "accuracy" / "smoke").rename(tmp_path / "smoke-moved")  # only the stale PASS is left
    result = gate(cfg, out, second["image"]["digest"], use_history=False)
    assert not result.passed and any("not of this build's run" in n for n in result.notes), result


@GROUP
def test_an_image_that_is_not_heads_is_refused_or_named_loudly(service, tmp_path: Path) -> None:  # noqa: F811
    """(c) after a checkout, build.json names another commit's image."""
    root = own_copy(service, tmp_path)
    out = tmp_path / "out"
    old = build(service, root, out)
    old_commit = old["git"]["commit"]
    (root / "NOTES.md").write_text("another commit\n")
    head = commit(root, "another commit")
    code, text = mlci(service, root, "test", "accuracy", "--suite", "smoke", "--out", str(out))
    assert code == 2 and f"built from commit {old_commit[:12]}, but HEAD is {head[:12]}" in text, text[-2000:]
    assert "Traceback" not in text and not (out / "accuracy").exists()
    # named explicitly, it is tested as asked; the record names the image's commit, not HEAD
    new = build(service, root, out)
    code, text = mlci(service, root, "test", "accuracy", "--suite", "smoke", "--force", "--image", old["image"]["id"],
                      "--out", str(out))
    assert code == 0, text[-3000:]
    assert f"built from commit {old_commit[:12]}, not HEAD {head[:12]}, because it was named explicitly" in text
    rec = record(out, "smoke")
    assert rec["git"]["commit"] == old_commit and rec["image"]["digest"] == old["image"]["id"]
    assert rec["run"]["id"] != new["run"]["id"]  # not this build's run: its report leaves it out
    code, text = mlci(service, root, "report", "render", "--results", str(out), "--no-history")
    assert code == 2 and "no accuracy record of this run" in text


@GROUP
def test_a_dirty_tree_takes_no_branch_tag_and_is_never_recorded(service, tmp_path: Path) -> None:  # noqa: F811
    """(d) an uncommitted change."""
    root = own_copy(service, tmp_path)
    edit(root, "digits_service/server.py", '"""HTTP', '"""(uncommitted) HTTP')
    out = tmp_path / "out"
    code, text = mlci(service, root, "pipeline", "run", "--stages", "build,accuracy", "--record", "--out", str(out))
    assert code == 0, text[-3000:]
    rec_build = json.loads((out / "build.json").read_text())
    assert rec_build["git"]["dirty"] and rec_build["image"]["tags"] == [
        f"{service.image_name}:{rec_build['git']['commit'][:12]}-dirty"]
    assert "tagged" in text and "(no branch tag)" in text
    rec = record(out, "smoke")
    assert rec["git"] == {"commit": git(root, "rev-parse", "HEAD").strip(), "branch": "main", "dirty": True}
    assert "not recorded: smoke PASS" in text and "uncommitted changes" in text
    assert stored(root, "smoke") == []
    code, text = mlci(service, root, "report", "record", "--results", str(out))
    assert code == 0 and "not recorded" in text and stored(root, "smoke") == []
    # nothing dirty can be a baseline either: the change gate has none
    edit(root, "ml-ci.yaml", "    full:\n", VS_MAIN + "    full:\n")
    code, text = mlci(service, root, "test", "accuracy", "--suite", "vs-main", "--out", str(out))
    assert code == 2 and "no baseline model" in text


# --- change gates: two real artifacts -------------------------------------------------------------------------------
@GROUP
def test_change_gate_judges_the_baseline_image_then_a_swap_a_load_cannot_ignore(service, tmp_path: Path) -> None:  # noqa: F811
    root = own_copy(service, tmp_path, VS_MAIN)
    out = tmp_path / "main"
    base = build(service, root, out)
    code, text = mlci(service, root, "pipeline", "run", "--stages", "accuracy", "--record", "--out", str(out))
    assert code == 0 and "[report] recorded smoke PASS" in text, text[-3000:]

    # a worse model (weights scaled down) and a load() that ignores $MLCI_MODELS_DIR
    import numpy as np

    model = root / "models" / "digits.npz"
    with np.load(model) as z:
        weights, bias = z["weights"], z["bias"]
    rng = np.random.default_rng(1)
    np.savez(model, weights=weights + rng.normal(0, np.abs(weights).mean() * 1.5, weights.shape), bias=bias)
    assert run_mlci("models", "add", "models/digits.npz", cwd=root, env=service.env).returncode == 0
    edit(root, "digits_service/model.py", '    models_dir = os.environ.get("MLCI_MODELS_DIR")\n',
         "    models_dir = None  # this service ignores $MLCI_MODELS_DIR\n")
    commit(root, "a worse model, and a load() that ignores MLCI_MODELS_DIR")
    feature = tmp_path / "feature"
    build(service, root, feature)

    # the baseline predicts in its own image: FAIL, with real discordant pairs
    code, text = mlci(service, root, "test", "accuracy", "--suite", "vs-main", "--out", str(feature))
    assert code == 1, text[-3000:]
    assert f"in the baseline's own image {base['image']['id'][:19]}" in text
    rec = record(feature, "vs-main")
    gate_rec = rec["gates"][0]
    assert gate_rec["verdict"] == "FAIL" and gate_rec["candidate_losses"] > gate_rec["candidate_wins"] + 10
    assert rec["baseline"]["method"] == "image" and rec["baseline"]["model_files"] == base["models"]["files"]
    assert rec["model"]["files"] != base["models"]["files"]

    # that image is gone from this engine: its model files are mounted over this image's models directory, so
    # even this load() reads them
    subprocess.run([DOCKER, "rmi", "-f", base["image"]["id"]], capture_output=True, check=True)
    code, text = mlci(service, root, "test", "accuracy", "--suite", "vs-main", "--force", "--out", str(feature))
    assert code == 1, text[-3000:]
    assert "its image is not in this Docker engine; swapping its model files into this image" in text
    rec = record(feature, "vs-main")
    assert rec["baseline"]["method"] == "model-swap" and rec["gates"][0]["verdict"] == "FAIL"
    assert rec["gates"][0]["candidate_losses"] > rec["gates"][0]["candidate_wins"] + 10


# --- the same on the churn example (scikit-learn, probabilities, three gates in one suite) ------------------------
@GROUP
def test_churn_result_cache_and_change_gate(churn, tmp_path: Path) -> None:  # noqa: F811
    """The issue's reproductions on the probability service: changing only scikit-learn's version in
    requirements.txt must not reuse a PASS; a worse model with a load() that ignores $MLCI_MODELS_DIR must never
    PASS a change gate."""
    import sys

    root = own_copy(churn, tmp_path)
    out = tmp_path / "main"
    base = build(churn, root, out)
    code, text = mlci(churn, root, "pipeline", "run", "--stages", "accuracy", "--record", "--out", str(out))
    assert code == 0 and "[report] recorded smoke PASS" in text, text[-3000:]
    first = record(out, "smoke")
    assert first["plan"]["output"]["kind"] == "probabilities" and len(first["gates"]) == 3

    commit(root, "empty")  # the same image content: reused
    out2 = tmp_path / "o2"
    build(churn, root, out2)
    code, text = mlci(churn, root, "test", "accuracy", "--suite", "smoke", "--out", str(out2))
    assert code == 0 and "unchanged: this image" in text, text[-3000:]

    # only scikit-learn's version in requirements.txt: another image, the suite runs (whatever it then says)
    pinned = (root / "requirements.txt").read_text().strip()
    other = "1.6.1" if pinned != "scikit-learn==1.6.1" else "1.5.2"
    edit(root, "requirements.txt", pinned, f"scikit-learn=={other}")
    commit(root, f"scikit-learn {other}")
    out3 = tmp_path / "o3"
    rec = build(churn, root, out3)
    assert key(root, rec["image"]["id"]) != first["cache_key"]
    code, text = mlci(churn, root, "test", "accuracy", "--suite", "smoke", "--out", str(out3))
    assert "unchanged" not in text and "running `mlci accuracy run --suite smoke" in text, text[-3000:]
    edit(root, "requirements.txt", f"scikit-learn=={other}", pinned)

    data = tmp_path / "data"
    train = root / "training" / "train.py"
    subprocess.run([sys.executable, str(train), "--export", str(data)], check=True, capture_output=True, timeout=300)
    (data / "weak.json").write_text('{"max_iter": 2, "max_leaf_nodes": 2}')
    subprocess.run([sys.executable, str(train), "--data", str(data / "churn-train.npz"), "--out", str(data),
                    "--params", str(data / "weak.json")], check=True, capture_output=True, timeout=300)
    (root / "models" / "churn.joblib").write_bytes((data / "churn.joblib").read_bytes())
    assert run_mlci("models", "add", "models/churn.joblib", cwd=root, env=churn.env).returncode == 0
    edit(root, "churn_service/model.py", '    models_dir = os.environ.get("MLCI_MODELS_DIR")\n',
         "    models_dir = None  # this service ignores $MLCI_MODELS_DIR\n")
    commit(root, "a worse model, and a load() that ignores MLCI_MODELS_DIR")
    feature = tmp_path / "feature"
    build(churn, root, feature)

    code, text = mlci(churn, root, "test", "accuracy", "--suite", "change", "--out", str(feature))
    assert code == 1, text[-3000:]
    rec = record(feature, "change")
    gate_rec = rec["gates"][0]
    assert rec["baseline"]["method"] == "image" and gate_rec["verdict"] == "FAIL"
    assert gate_rec["candidate_losses"] > gate_rec["candidate_wins"] + 10

    subprocess.run([DOCKER, "rmi", "-f", base["image"]["id"]], capture_output=True, check=True)
    code, text = mlci(churn, root, "test", "accuracy", "--suite", "change", "--force", "--out", str(feature))
    assert code == 1, text[-3000:]
    rec = record(feature, "change")
    assert rec["baseline"]["method"] == "model-swap" and rec["gates"][0]["verdict"] == "FAIL"
    assert rec["gates"][0]["candidate_losses"] > rec["gates"][0]["candidate_wins"] + 10
