"""Local HTTP servers (stdlib) playing Jenkins' JSON API and the GitHub/GitLab/Bitbucket comment APIs.

They implement the documented request/response shapes (paths, pagination, auth headers), keep state in memory,
and log every request so tests can check what the client sent.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit


class Fake:
    """Base: subclasses implement `handle(method, path, query, headers, body) -> (status, json, extra headers)`."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.base = ""

    def handle(self, method: str, path: str, query: dict[str, list[str]], headers: dict[str, str],
               body: bytes) -> tuple[int, Any, dict[str, str]]:
        raise NotImplementedError


@contextmanager
def serve(fake: Fake) -> Iterator[Fake]:
    class Handler(BaseHTTPRequestHandler):
        def _do(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            fake.requests.append({"method": self.command, "path": parts.path, "query": parts.query,
                                  "headers": headers, "body": body})
            status, data, extra = fake.handle(self.command, parts.path, parse_qs(parts.query), headers, body)
            raw = data if isinstance(data, bytes) else json.dumps(data).encode() if data is not None else b""
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            for k, v in extra.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(raw)

        do_GET = do_POST = do_PUT = do_PATCH = _do

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()


# ---------------------------------------------------------------- Jenkins


class FakeJenkins(Fake):
    """Jenkins remote API: `<job path>/api/json`, `<job path>/<n>/api/json`, `<job path>/<n>/artifact/<path>`.

    Job paths are `job/<a>/job/<b>` for folder `a/b`; each segment is URL-encoded (a multibranch job for branch
    `release/1.0` is named `release%2F1.0`, so it travels as `release%252F1.0`).
    """

    def __init__(self, user: str, token: str) -> None:
        super().__init__()
        self.auth = "Basic " + base64.b64encode(f"{user}:{token}".encode()).decode()
        self.jobs: dict[str, list[dict[str, Any]]] = {}  # full name -> builds, newest first

    def add_build(self, job: str, number: int, result: str | None, artifacts: dict[str, Any]) -> None:
        self.jobs.setdefault(job, []).append({"number": number, "result": result, "artifacts": artifacts})
        self.jobs[job].sort(key=lambda b: -b["number"])

    def _job_url(self, job: str) -> str:
        from urllib.parse import quote
        return self.base + "/" + "/".join(f"job/{quote(seg, safe='')}" for seg in job.split("/")) + "/"

    def handle(self, method, path, query, headers, body):
        if path == "/crumbIssuer/api/json":
            return 404, {"message": "no crumb issuer"}, {}
        if headers.get("authorization") != self.auth:
            return 401, b"<html>Unauthorized</html>", {}
        m = re.fullmatch(r"((?:/job/[^/]+)+)(?:/(\d+))?(/api/json|/artifact/(.+))", path)
        if not m:
            return 404, {"message": "not found"}, {}
        job = "/".join(unquote(seg) for seg in m.group(1).split("/job/")[1:])
        builds = self.jobs.get(job)
        if builds is None:
            return 404, b"<html>Not found</html>", {}
        url = self._job_url(job)
        summary = [{"_class": "org.jenkinsci.plugins.workflow.job.WorkflowRun", "number": b["number"],
                    "url": f"{url}{b['number']}/"} for b in builds]
        if m.group(2) is None:
            ok = next((s for s, b in zip(summary, builds, strict=True) if b["result"] in ("SUCCESS", "UNSTABLE")), None)
            return 200, {"_class": "org.jenkinsci.plugins.workflow.job.WorkflowJob", "name": job.rsplit("/", 1)[-1],
                         "fullName": job, "url": url, "buildable": True, "builds": summary,
                         "lastBuild": summary[0] if summary else None, "lastSuccessfulBuild": ok,
                         "lastCompletedBuild": summary[0] if summary else None}, {}
        build = next((b for b in builds if b["number"] == int(m.group(2))), None)
        if build is None:
            return 404, b"<html>Not found</html>", {}
        if m.group(3) == "/api/json":
            return 200, {"_class": "org.jenkinsci.plugins.workflow.job.WorkflowRun", "number": build["number"],
                         "result": build["result"], "building": build["result"] is None,
                         "fullDisplayName": f"{job} #{build['number']}", "url": f"{url}{build['number']}/",
                         "timestamp": 1763830000000, "duration": 61000,
                         "artifacts": [{"displayPath": rel.rsplit("/", 1)[-1], "fileName": rel.rsplit("/", 1)[-1],
                                        "relativePath": rel} for rel in build["artifacts"]]}, {}
        rel = unquote(m.group(4))
        if rel not in build["artifacts"]:
            return 404, b"<html>Not found</html>", {}
        return 200, json.dumps(build["artifacts"][rel]).encode(), {}


# ---------------------------------------------------------------- pull-request comment APIs


class FakeForge(Fake):
    """GitHub issue comments, GitLab MR notes, Bitbucket Cloud PR comments, with each one's pagination."""

    def __init__(self, provider: str, token: str, repo: str, number: str, page_size: int = 2) -> None:
        super().__init__()
        self.provider, self.token, self.repo, self.number = provider, token, repo, number
        self.page_size = page_size  # small, so pagination is exercised
        self.comments: list[dict[str, Any]] = []
        self.next_id = 100

    def seed(self, body: str, **extra: Any) -> None:
        self.comments.append({"id": self.next_id, "body": body, **extra})
        self.next_id += 1

    def _authorised(self, headers: dict[str, str]) -> bool:
        if self.provider == "github":
            return headers.get("authorization") == f"Bearer {self.token}"
        if self.provider == "gitlab":
            return headers.get("private-token") == self.token
        return headers.get("authorization") == f"Bearer {self.token}"

    def _shape(self, c: dict[str, Any]) -> dict[str, Any]:
        if self.provider == "bitbucket":
            return {"id": c["id"], "type": "pullrequest_comment", "content": {"raw": c["body"], "markup": "markdown"},
                    "deleted": False, "links": {"html": {"href": f"https://bitbucket.org/{self.repo}/pull-requests/"
                                                                f"{self.number}#comment-{c['id']}"}}}
        if self.provider == "gitlab":
            return {"id": c["id"], "body": c["body"], "system": c.get("system", False), "noteable_type": "MergeRequest"}
        return {"id": c["id"], "body": c["body"], "html_url": f"https://github.com/{self.repo}/pull/{self.number}"
                                                              f"#issuecomment-{c['id']}"}

    def _paths(self) -> tuple[str, str]:
        from urllib.parse import quote
        if self.provider == "github":
            return (f"/repos/{self.repo}/issues/{self.number}/comments", f"/repos/{self.repo}/issues/comments/")
        if self.provider == "gitlab":
            base = f"/projects/{quote(self.repo, safe='')}/merge_requests/{self.number}/notes"
            return base, base + "/"
        base = f"/repositories/{self.repo}/pullrequests/{self.number}/comments"
        return base, base + "/"

    def handle(self, method, path, query, headers, body):
        if not self._authorised(headers):
            return 401, {"message": "Bad credentials"}, {}
        collection, item = self._paths()
        raw_path = path  # GitLab's project path arrives %-encoded; compare encoded forms
        if raw_path == collection and method == "GET":
            size = int((query.get("pagelen") or query.get("per_page") or [self.page_size])[0])
            size = min(size, self.page_size)
            page = int((query.get("page") or ["1"])[0])
            chunk = self.comments[(page - 1) * size: page * size]
            more = page * size < len(self.comments)
            nxt = f"{self.base}{collection}?{'pagelen' if self.provider == 'bitbucket' else 'per_page'}={size}&page={page + 1}"
            if self.provider == "bitbucket":
                data = {"pagelen": size, "page": page, "values": [self._shape(c) for c in chunk]}
                if more:
                    data["next"] = nxt
                return 200, data, {}
            extra = {}
            if more and self.provider == "github":
                extra["Link"] = f'<{nxt}>; rel="next", <{self.base}{collection}?page=99>; rel="last"'
            if self.provider == "gitlab":
                extra["X-Next-Page"] = str(page + 1) if more else ""
                extra["X-Page"] = str(page)
            return 200, [self._shape(c) for c in chunk], extra
        payload = json.loads(body or b"{}")
        text = payload["content"]["raw"] if self.provider == "bitbucket" else payload.get("body")
        if raw_path == collection and method == "POST":
            self.seed(text)
            return 201, self._shape(self.comments[-1]), {}
        if raw_path.startswith(item) and raw_path[len(item):].isdigit():
            want = "PATCH" if self.provider == "github" else "PUT"
            if method != want:
                return 405, {"message": f"use {want}"}, {}
            cid = int(raw_path[len(item):])
            for c in self.comments:
                if c["id"] == cid:
                    c["body"] = text
                    return 200, self._shape(c), {}
        return 404, {"message": "Not Found"}, {}
