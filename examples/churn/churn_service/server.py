"""HTTP inference server: GET /healthz, POST /predict {"inputs": [[12 numbers], ...]}.

Answers {"probabilities": [[P(stays), P(churns)], ...], "churn": [true|false, ...]}; a customer counts as churning
when P(churns) >= $CHURN_THRESHOLD (default 0.5, the decision threshold the accuracy gates use). stdlib only.
"""

from __future__ import annotations

import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from . import inference

MAX_BODY = 8 * 1024 * 1024
THRESHOLD = float(os.environ.get("CHURN_THRESHOLD", "0.5"))


class Handler(BaseHTTPRequestHandler):
    server_version = "churn/1"

    def _send(self, status: int, payload: dict) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        if self.path == "/healthz":
            self._send(200, {"status": "ok"})
        else:
            self._send(404, {"error": "not found"})

    def do_POST(self) -> None:  # noqa: N802
        if self.path != "/predict":
            self._send(404, {"error": "not found"})
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length <= 0 or length > MAX_BODY:
            self._send(400, {"error": f"body must be 1..{MAX_BODY} bytes"})
            return
        try:
            payload = json.loads(self.rfile.read(length))
            probabilities = inference.predict(payload["inputs"])
        except (ValueError, KeyError, TypeError) as exc:
            self._send(400, {"error": str(exc)})
            return
        self._send(200, {"probabilities": probabilities, "churn": [p[1] >= THRESHOLD for p in probabilities]})

    def log_message(self, fmt: str, *args: object) -> None:
        sys.stderr.write(f"{self.address_string()} {fmt % args}\n")


def main() -> None:
    inference.load()
    port = int(os.environ.get("PORT", "8080"))
    server = ThreadingHTTPServer(("0.0.0.0", port), Handler)
    print(f"churn serving on :{port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
