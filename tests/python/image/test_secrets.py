"""Secret files for `docker build --secret`: a private 0700 temp dir outside the output directory; one a killed
build left is removed by the next build, one a live build holds is not. Real processes and SIGKILL."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

from mlci.build import secrets

HOLD = ("import sys, time\nfrom mlci.build.secrets import aws_files\n"
        "with aws_files() as f:\n    print(f.credentials.parent, flush=True)\n    time.sleep(120)\n")


def _holder(tmp: Path) -> tuple[subprocess.Popen, Path]:
    env = {**os.environ, "TMPDIR": str(tmp), "AWS_SECRET_ACCESS_KEY": "s3cr3t-for-the-test"}
    env.pop("MLCI_SECRETS_DIR", None)
    proc = subprocess.Popen([sys.executable, "-c", HOLD], env=env, stdout=subprocess.PIPE, text=True)
    return proc, Path(proc.stdout.readline().strip())


def test_secret_dir_is_private_and_a_killed_builds_dir_is_reaped(tmp_path: Path, monkeypatch) -> None:
    killed, killed_dir = _holder(tmp_path)
    live, live_dir = _holder(tmp_path)
    try:
        assert killed_dir.parent == tmp_path and ".mlci" not in killed_dir.parts
        assert stat.S_IMODE(killed_dir.stat().st_mode) == 0o700
        creds = killed_dir / secrets.CREDENTIALS_ID
        assert stat.S_IMODE(creds.stat().st_mode) == 0o600 and "s3cr3t-for-the-test" in creds.read_text()
        killed.send_signal(signal.SIGKILL)
        killed.wait()
        assert creds.exists()  # nothing runs at SIGKILL: the next build must clean up

        monkeypatch.delenv("MLCI_SECRETS_DIR", raising=False)
        monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
        with secrets.aws_files(secrets.AwsSecrets("[default]\n", "[default]\n")) as files:
            assert files.credentials.parent.parent == tmp_path
            assert not killed_dir.exists()  # reaped
            assert live_dir.exists() and (live_dir / secrets.CREDENTIALS_ID).exists()  # a live build's: kept
        assert not files.credentials.parent.exists()
    finally:
        for p in (killed, live):
            if p.poll() is None:
                p.kill()
                p.wait()


def test_archive_holds_the_files_for_the_container_user() -> None:
    import io
    import tarfile

    with tarfile.open(fileobj=io.BytesIO(secrets.AwsSecrets("C", "K").archive(uid=1234, gid=99))) as tar:
        files = {m.name: m for m in tar.getmembers() if m.isfile()}
        assert set(files) == {"run/secrets/aws_credentials", "run/secrets/aws_config"}
        assert all((m.mode, m.uid, m.gid) == (0o400, 1234, 99) for m in files.values())
        assert tar.extractfile(files["run/secrets/aws_credentials"]).read() == b"C"


def test_secrets_dir_set_by_the_jenkins_runner_is_used(tmp_path: Path, monkeypatch) -> None:
    where = tmp_path / "ws@tmp" / "mlci-secrets"  # what org.mlci.Mlci sets: under WORKSPACE@tmp
    monkeypatch.setenv("MLCI_SECRETS_DIR", str(where))
    with secrets.aws_files(secrets.AwsSecrets("[default]\n", "[default]\n")) as files:
        assert files.credentials.parent.parent == where
    assert list(where.iterdir()) == []
