"""Helpers for the artifacts tests: a throwaway service repo pointing at a fresh bucket, a private cache,
and a private S3 server process for tests that kill it."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import time
from pathlib import Path

import boto3
import pytest

from mlci.config import Config, load_config

from ..conftest import run_mlci
from ..s3server import free_port, start_moto


def write_repo(root: Path, bucket: str, cache: Path, extra: str = "", lock: str = "models.lock") -> Path:
    """A minimal service repo; the cache goes in the config so in-process API calls use it too."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "ml-ci.yaml").write_text(
        f"service: svc\nartifacts:\n  remote: s3://{bucket}/models\n  cache: {cache}\n  jobs: 4\n"
        f"  models: {{lock: {lock}, dest: models/}}\n" + extra
    )
    return root


def use_bucket_and_cache(repo: Path, bucket: str, cache: Path) -> Config:
    """Point the example's ml-ci.yaml at a test bucket and a private cache; return the loaded config."""
    text = (repo / "ml-ci.yaml").read_text().replace("s3://mlci-demo/digits", f"s3://{bucket}/digits")
    text = text.replace("artifacts:\n", f"artifacts:\n  cache: {cache}\n", 1)
    (repo / "ml-ci.yaml").write_text(text)
    return load_config(repo / "ml-ci.yaml")


def mlci(repo: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 120):
    """The real CLI in a subprocess (exit codes and messages are the contract); the cache comes from the config."""
    return run_mlci(*args, "-c", str(repo / "ml-ci.yaml"), cwd=repo, env=env, timeout=timeout)


def pull_json(repo: Path, *args: str, env: dict[str, str] | None = None) -> dict:
    proc = mlci(repo, "models", "pull", "--json", *args, env=env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture()
def private_s3():
    """(endpoint, start, stop) for a private moto server on a fixed free port."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    procs: list[subprocess.Popen] = []

    def start() -> None:
        procs.append(start_moto(port))

    def stop() -> None:
        if procs and procs[-1].poll() is None:
            procs[-1].kill()
            procs[-1].wait()

    start()
    yield endpoint, start, stop
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()


def client(endpoint: str | None = None):
    return boto3.client("s3", endpoint_url=endpoint) if endpoint else boto3.client("s3")


def env_without_aws() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}


class Forwarder:
    """A TCP forwarder listening on `port` and relaying to `target_port`: stands in for an S3 endpoint that
    comes back at the same address after its server died (moto keeps objects in memory only, so the restarted
    server is populated first and then exposed at the old port)."""

    def __init__(self, port: int, target_port: int):
        import threading

        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        deadline = time.monotonic() + 30
        while True:
            try:
                self.sock.bind(("127.0.0.1", port))
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        self.sock.listen(64)
        self.target = target_port
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import threading

        while not self.closed:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            up = socket.create_connection(("127.0.0.1", self.target))
            for a, b in ((conn, up), (up, conn)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket, rate: int | None = None) -> None:
        """Relay a -> b until either side closes; at about `rate` bytes per second when given."""
        try:
            while data := a.recv(16 << 10 if rate else 1 << 16):
                b.sendall(data)
                if rate:
                    time.sleep(len(data) / rate)
        except OSError:
            pass
        finally:
            for s in (a, b):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.closed = True
        self.sock.close()


class FaultProxy:
    """A TCP proxy in front of the real S3 server that misbehaves on purpose:
    - `close_first=N`: the first N connections read the request and close without answering (botocore raises
      ConnectionClosedError);
    - `stall=True`: connections are accepted and never answered (a hung endpoint);
    - `rate=B`: responses are relayed at about B bytes per second (a transfer long enough to interrupt)."""

    def __init__(self, target_port: int, *, close_first: int = 0, stall: bool = False, rate: int | None = None):
        import threading

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.target, self.close_first, self.stall, self.rate = target_port, close_first, stall, rate
        self.connections = 0
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import threading

        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            if self.stall:
                self.held.append(conn)
                continue
            if self.connections <= self.close_first:
                with contextlib.suppress(OSError):
                    conn.recv(1 << 16)
                conn.close()
                continue
            up = socket.create_connection(("127.0.0.1", self.target))
            threading.Thread(target=Forwarder._pipe, args=(conn, up), daemon=True).start()
            threading.Thread(target=Forwarder._pipe, args=(up, conn, self.rate), daemon=True).start()

    def close(self) -> None:
        self.sock.close()
        for c in self.held:
            c.close()
