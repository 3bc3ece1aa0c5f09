"""`mlci train` end to end with the example service: a real training run in a container on the Docker engine,
evaluated by the accuracy engine's change gate against the current model inside the service image that will ship
(built from the repository; the new model mounted over its models directory), published only on PASS (lock updated,
record written, objects in S3, branch + tag pushed to a temporary origin), the run cache skipping a repeated run,
and a degraded training configuration that fails the gate and publishes nothing.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import boto3
import numpy as np
import pytest
import yaml

from mlci.drift.reference import parse_reference
from tests.python.conftest import DOCKER, run_mlci
from tests.python.dockerimages import remove_images
from tests.python.drift.synth import digits_requests, jsonl
from tests.python.image.service import pinned_wheelhouse

pytestmark = pytest.mark.xdist_group("train")

TEST_SHA = "01907c9061c2d171415c124369d2abe9a5bb6160e897296a8036b8e0fa58521f"
DAY = "2026-11-22"
DEGRADED = ("python3 training/train_pinned.py --degraded --out /tmp/o "
            "&& cp /tmp/o/digits-degraded.npz \"$MLCI_TRAIN_OUT/digits.npz\"")


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def digits_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Made once per module: the training dataset (scikit-learn's digits as an .npz), the test set and the
    current model (trained on the host with 30 steps: weaker than the 400-step model the pipeline trains)."""
    data = tmp_path_factory.mktemp("digits-data")
    script = Path(__file__).resolve().parents[3] / "examples" / "digits" / "training" / "train_pinned.py"
    subprocess.run([sys.executable, str(script), "--export", str(data / "digits-train.npz")], check=True)
    (data / "p.json").write_text('{"steps": 30}')
    subprocess.run([sys.executable, str(script), "--data", str(data / "digits-train.npz"), "--out", str(data),
                    "--params", str(data / "p.json")], check=True, capture_output=True)
    assert _sha(data / "digits-test.npz") == TEST_SHA
    return data


IN_IMAGE_ONLY = (
    "\n\ndef _only_in_a_container() -> None:\n"
    "    import os\n"
    "    if not os.path.exists('/.dockerenv'):\n"
    "        raise RuntimeError('digits evaluated outside the service image')\n\n\n"
    "_only_in_a_container()\n")


@pytest.fixture()
def service(example_copy: Path, s3_bucket: str, base_image: str, tmp_path: Path, digits_files: Path,
            monkeypatch: pytest.MonkeyPatch):
    """The example as its own git repo with an origin, its data in S3 and a current (weaker) model in the lock;
    its inference module refuses to run outside a container (so an evaluation in mlci's own Python fails)."""
    monkeypatch.setenv("MLCI_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MLCI_BASE_IMAGE", base_image)
    monkeypatch.setenv("MLCI_WHEELHOUSE", str(pinned_wheelhouse()))
    image_prefix = f"mlci-train-{uuid.uuid4().hex[:8]}"  # the service images the evaluation builds
    repo, data = example_copy, digits_files
    s3 = boto3.client("s3")
    for name in ("digits-train.npz", "digits-test.npz"):
        s3.upload_file(str(data / name), s3_bucket, f"digits/data/{name}")
    cfg = yaml.safe_load((repo / "ml-ci.yaml").read_text())
    # the example's own train: section, change suite and datasets; only the bucket and the time limit differ
    cfg["artifacts"]["remote"] = f"s3://{s3_bucket}/digits"
    for name in ("digits-test", "digits-train"):
        dataset = cfg["artifacts"]["data"][name]
        dataset["uri"] = f"s3://{s3_bucket}/digits/data/{name}.npz"
        assert dataset["sha256"] == _sha(data / f"{name}.npz")  # the example pins the bytes the demo uploads
    cfg["report"] = {"history": f"s3://{s3_bucket}/history"}
    cfg["accuracy"]["workers"] = 2
    assert cfg["train"]["evaluate"] == "change" and cfg["train"]["inputs"] == ["digits-train"]
    cfg["train"]["timeout"] = 5
    cfg["image"]["name"] = f"{image_prefix}/digits"
    inference = repo / "digits_service" / "inference.py"
    inference.write_text(inference.read_text() + IN_IMAGE_ONLY)
    (repo / "ml-ci.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    assert json.loads((repo / "train-params.json").read_text()) == {"steps": 400}
    (repo / "models").mkdir()
    (repo / "models" / "digits.npz").write_bytes((data / "digits.npz").read_bytes())
    run_mlci("models", "add", "models/digits.npz", cwd=repo, check=True)
    origin = tmp_path / "origin.git"
    _git(tmp_path, "init", "-q", "--bare", str(origin))
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "-A")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "service")
    _git(repo, "remote", "add", "origin", str(origin))
    _git(repo, "push", "-q", "origin", "main")
    yield {"repo": repo, "origin": origin, "bucket": s3_bucket, "current": _sha(repo / "models" / "digits.npz"),
           "data": data}
    remove_images(DOCKER, f"{image_prefix}/*")


def _train(repo: Path, out: Path, *extra: str, env: dict[str, str] | None = None):
    return run_mlci("train", "-c", str(repo / "ml-ci.yaml"), "--out", str(out), *extra, cwd=repo, timeout=300,
                    env=env)


@pytest.fixture()
def forge():
    """A local stand-in for the GitHub API (a real HTTP server): records create-PR requests."""
    seen: list[dict] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append({"path": self.path, "auth": self.headers.get("Authorization"), "json": body})
            answer = json.dumps({"number": 7, "html_url": "http://forge/o/r/pull/7"}).encode()
            self.send_response(201)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()


def test_pass_publishes_then_the_run_cache_skips_the_repeat(service: dict, tmp_path: Path, forge) -> None:
    repo, bucket = service["repo"], service["bucket"]
    api, prs = forge
    cfg = yaml.safe_load((repo / "ml-ci.yaml").read_text())
    cfg["report"]["post"] = {"provider": "github", "repo": "o/r", "url": api}
    (repo / "ml-ci.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-am", "post PRs")
    proc = _train(repo, tmp_path / "out1", "--trigger", "user", env={"MLCI_REPORT_TOKEN": "tok-secret-123"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "building training image" in proc.stderr
    assert "digits.npz: test accuracy 0.93" in proc.stderr  # the container's log, streamed
    assert "train: published digits-model-1" in proc.stdout
    result = json.loads((tmp_path / "out1" / "train.json").read_text())
    assert result["status"] == "published" and result["evaluation"]["verdict"] == "PASS"
    new_sha = result["outputs"]["digits.npz"]
    assert new_sha != service["current"]

    # dependency file updated, model in S3 content-addressed, record next to the lock
    lock = (repo / "models.lock").read_text()
    assert new_sha in lock and service["current"] not in lock
    obj = boto3.client("s3").head_object(Bucket=bucket, Key=f"digits/sha256/{new_sha[:2]}/{new_sha[2:]}")
    assert obj["ContentLength"] == (repo / "models" / "digits.npz").stat().st_size
    rec = json.loads((repo / "training.json").read_text())
    assert rec["schema"] == "mlci.train/1" and rec["trigger"] == "user"
    assert rec["model"]["files"] == {"models/digits.npz": f"sha256:{new_sha}"}
    assert rec["data"]["digits-train"]["sha256"].startswith("sha256:")
    assert rec["params"]["values"] == {"steps": 400} and rec["params"]["sha256"].startswith("sha256:")
    assert rec["code"]["commit"] == _git(repo, "rev-parse", "HEAD") and rec["code"]["digest"].startswith("sha256:")
    assert rec["image"]["id"].startswith("sha256:") and rec["evaluation"]["verdict"] == "PASS"
    # judged inside the service image built from this tree, against the model that image holds
    evaluation = json.loads((tmp_path / "out1" / "train" / "eval" / "accuracy" / "change" / "accuracy.json").read_text())
    shipped = json.loads((tmp_path / "out1" / "train" / "eval" / "build.json").read_text())
    assert evaluation["image"]["digest"] == shipped["image"]["digest"]
    assert evaluation["model"]["files"] == {"models/digits.npz": f"sha256:{new_sha}"}
    assert evaluation["baseline"]["method"] == "image"
    assert evaluation["baseline"]["model_files"] == {"models/digits.npz": f"sha256:{service['current']}"}
    assert rec["metrics"]["accuracy"] > 0.9 and rec["duration_s"]["train"] > 0

    # the training data's drift reference: content-addressed next to the model, its digest in the record
    ref_entry = rec["drift_reference"]
    assert ref_entry["dataset"] == "digits-train" and ref_entry["sha256"].startswith("sha256:")
    ref_sha = ref_entry["sha256"].removeprefix("sha256:")
    assert ref_entry["uri"] == f"s3://{bucket}/digits/sha256/{ref_sha[:2]}/{ref_sha[2:]}"
    body = boto3.client("s3").get_object(Bucket=bucket, Key=f"digits/sha256/{ref_sha[:2]}/{ref_sha[2:]}")["Body"].read()
    assert hashlib.sha256(body).hexdigest() == ref_sha
    reference = parse_reference(body.decode(), ref_entry["uri"])
    assert reference["source"]["dataset"] == "digits-train" and reference["source"]["rows"] == ref_entry["rows"]
    assert reference["source"]["sha256"] == rec["data"]["digits-train"]["sha256"].removeprefix("sha256:")
    assert len(reference["features"]) == ref_entry["features"] == 64 and "x.63" in reference["features"]
    assert reference["prediction"]["source"] == "y" and reference["prediction"]["kind"] == "categorical"

    # the example's drift: section checks production logs (the serving schema: x, prediction) against that
    # reference, found through the training record: requests like the training data pass, fainter ink drifts
    train_x = np.load(service["data"] / "digits-train.npz")["x"]
    model = repo / "models" / "digits.npz"
    for name, ink, code in (("same", 1.0, 0), ("faint", 0.6, 1)):
        boto3.client("s3").put_object(Bucket=bucket, Key=f"logs/{name}/dt={DAY}/a.jsonl",
                                      Body=jsonl(digits_requests(train_x, model, 1000, seed=3, ink=ink)))
        cfg["drift"]["logs"] = f"s3://{bucket}/logs/{name}"
        (repo / "drift.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
        check = run_mlci("drift", "check", "-c", str(repo / "drift.yaml"), "--until", DAY,
                         "--out", str(tmp_path / f"drift-{name}"), cwd=repo)
        assert check.returncode == code, check.stdout + check.stderr
        drift = json.loads((tmp_path / f"drift-{name}" / "drift" / "drift.json").read_text())
        assert len(drift["features"]) == 65 and drift["not_checked"] == ["request_id"]
        assert drift["reference"]["uri"] == ref_entry["uri"]

    # git: a branch + tag pushed to origin, seen from a fresh clone; the workspace branch untouched
    clone = tmp_path / "clone"
    _git(tmp_path, "clone", "-q", str(service["origin"]), str(clone))
    assert _git(clone, "tag", "-l") == "digits-model-1"
    _git(clone, "checkout", "-q", "digits-model-1")
    assert _git(clone, "log", "-1", "--format=%s") == "digits: new model digits-model-1 from training"
    assert (clone / "models.lock").read_text() == lock
    assert json.loads((clone / "training.json").read_text())["model"] == rec["model"]
    assert "mlci/train/digits-model-1" in _git(clone, "branch", "-r")
    assert _git(repo, "rev-parse", "--abbrev-ref", "HEAD") == "main"

    # a pull request from the branch to main, its body the accuracy report; the token only in the header
    assert len(prs) == 1 and prs[0]["path"] == "/repos/o/r/pulls"
    assert prs[0]["auth"] == "Bearer tok-secret-123" and "tok-secret-123" not in proc.stderr
    pull = prs[0]["json"]
    assert pull["head"] == "mlci/train/digits-model-1" and pull["base"] == "main"
    assert "digits-model-1" in pull["title"] and new_sha[:12] not in pull["title"]
    assert "change" in pull["body"] and "PASS" in pull["body"] and rec["data"]["digits-train"]["sha256"] in pull["body"]
    assert result["published"]["pull_request"]["url"] == "http://forge/o/r/pull/7"

    # the same code, data and params again: the run cache answers, no image build, no container
    again = _train(repo, tmp_path / "out2")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "run cache hit" in again.stderr and "building training image" not in again.stderr
    assert "test accuracy" not in again.stderr
    second = json.loads((tmp_path / "out2" / "train.json").read_text())
    assert second["cache_hit"] and second["run_key"] == result["run_key"] and second["status"] == "unchanged"

    # --force bypasses the cache and trains again (same bytes: training is deterministic)
    forced = _train(repo, tmp_path / "out3", "--force")
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert "test accuracy" in forced.stderr and "run cache hit" not in forced.stderr
    assert not json.loads((tmp_path / "out3" / "train.json").read_text())["cache_hit"]


def test_degraded_model_fails_the_change_gate_and_publishes_nothing(service: dict, tmp_path: Path) -> None:
    repo, bucket = service["repo"], service["bucket"]
    cfg = yaml.safe_load((repo / "ml-ci.yaml").read_text())
    cfg["train"]["command"] = DEGRADED
    (repo / "ml-ci.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    lock_before = (repo / "models.lock").read_text()
    objects_before = {o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=bucket, Prefix="digits/sha256/")["Contents"]}
    proc = _train(repo, tmp_path / "out")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "nothing published" in proc.stderr and proc.stdout.startswith("train: rejected: ")
    result = json.loads((tmp_path / "out" / "train.json").read_text())
    assert result["status"] == "rejected" and result["evaluation"]["verdict"] == "FAIL"
    assert "change" in result["reason"] and result["published"] is None
    assert (repo / "models.lock").read_text() == lock_before
    assert _sha(repo / "models" / "digits.npz") == service["current"]
    assert not (repo / "training.json").exists()
    assert _git(repo, "tag", "-l") == "" and _git(repo, "ls-remote", "--tags", "origin") == ""
    objects_after = {o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=bucket, Prefix="digits/sha256/")["Contents"]}
    assert objects_after == objects_before  # no model, no drift reference uploaded to the content-addressed store
    assert "drift reference of 'digits-train'" in proc.stderr and "drift reference published" not in proc.stderr
