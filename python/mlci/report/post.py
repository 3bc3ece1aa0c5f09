"""One pull-request comment per service, created once and updated on every build (GitHub, GitLab, Bitbucket).

The comment is found again by a hidden marker in its body (see render.marker), so a PR gets one living report
instead of a comment per build. Plain stdlib HTTP: three small REST APIs do not justify a client library each.
The token comes from the environment and is only ever sent in an Authorization header, never logged.
"""

from __future__ import annotations

import base64
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import UserError

DEFAULT_API = {
    "github": "https://api.github.com",
    "gitlab": "https://gitlab.com/api/v4",
    "bitbucket": "https://api.bitbucket.org/2.0",
}
TOKEN_VAR = "MLCI_REPORT_TOKEN"  # what the Jenkins library binds report.post.token_credentials to
TOKEN_ENV = {"github": "GITHUB_TOKEN", "gitlab": "GITLAB_TOKEN", "bitbucket": "BITBUCKET_TOKEN"}
BODY_LIMIT = {"github": 65_000, "gitlab": 1_000_000, "bitbucket": 32_000}
MAX_PAGES = 50


@dataclass
class Target:
    provider: str
    api: str
    repo: str  # owner/name (GitHub), workspace/slug (Bitbucket), group/project path (GitLab)
    number: str  # PR / MR number (GitLab: the MR iid)
    token: str
    user: str | None = None  # Bitbucket app passwords use Basic auth with a username

    def __repr__(self) -> str:  # never print the token
        return f"Target({self.provider}, {self.api}, {self.repo}#{self.number})"


@dataclass
class Result:
    action: str  # created | updated
    comment_id: str
    url: str


def repo_from_change_url(provider: str, url: str | None) -> tuple[str, str] | None:
    """(repo, number) from Jenkins' CHANGE_URL (the pull request's web URL)."""
    if not url:
        return None
    path = urllib.parse.urlparse(url).path
    patterns = {
        "github": r"/(?P<repo>[^/]+/[^/]+)/pull/(?P<n>\d+)",
        "gitlab": r"/(?P<repo>.+?)/-/merge_requests/(?P<n>\d+)",
        "bitbucket": r"/(?P<repo>[^/]+/[^/]+)/pull-requests/(?P<n>\d+)",
    }
    m = re.search(patterns[provider], path)
    return (m.group("repo"), m.group("n")) if m else None


def target_from(cfg_post: Mapping[str, Any], env: Mapping[str, str], *, provider: str | None = None,
                repo: str | None = None, number: str | None = None, api: str | None = None) -> Target:
    """Resolve where to post from flags, ml-ci.yaml `report.post` and Jenkins' environment."""
    provider = provider or cfg_post.get("provider")
    if provider not in DEFAULT_API:
        raise UserError("no pull-request provider configured",
                        hint="set report.post.provider (github, gitlab or bitbucket) or pass --provider")
    from_url = repo_from_change_url(provider, env.get("CHANGE_URL"))
    repo = repo or cfg_post.get("repo") or (from_url[0] if from_url else None)
    number = number or env.get("CHANGE_ID") or (from_url[1] if from_url else None)
    if not repo:
        raise UserError("which repository to comment on is unknown",
                        hint="set report.post.repo (owner/name, or the GitLab project path) or pass --repo")
    if not number or not str(number).isdigit():
        raise UserError("this is not a pull-request build (no CHANGE_ID)",
                        hint="pass --pr NUMBER, or call `mlci report post` only for pull requests")
    token = find_token(provider, env)
    if not token:
        raise UserError(f"no token to post with: set {TOKEN_VAR} or {TOKEN_ENV[provider]}",
                        hint=f"in Jenkins, report.post.token_credentials (secret text) is bound to {TOKEN_VAR}")
    return Target(provider, api_base(provider, cfg_post, env, api), repo, str(number), token,
                  env.get("BITBUCKET_USER") if provider == "bitbucket" else None)


def find_token(provider: str, env: Mapping[str, str]) -> str | None:
    """The forge token: mlci's own variable first, then the forge's conventional one."""
    return next((env[name] for name in (TOKEN_VAR, TOKEN_ENV[provider]) if env.get(name)), None)


def api_base(provider: str, cfg_post: Mapping[str, Any], env: Mapping[str, str], api: str | None = None) -> str:
    base = (api or cfg_post.get("url") or env.get("MLCI_POST_API") or DEFAULT_API[provider]).rstrip("/")
    if not re.match(r"https?://", base):
        raise UserError(f"API URL '{base}' is not http(s)", hint="e.g. https://github.example.com/api/v3")
    return base


# ---------------------------------------------------------------- HTTP


def _headers(t: Target) -> dict[str, str]:
    h = {"Content-Type": "application/json", "User-Agent": "mlci-report"}
    if t.provider == "github":
        h["Accept"] = "application/vnd.github+json"
        h["Authorization"] = f"Bearer {t.token}"
        h["X-GitHub-Api-Version"] = "2022-11-28"
    elif t.provider == "gitlab":
        h["PRIVATE-TOKEN"] = t.token
    elif t.user:
        h["Authorization"] = "Basic " + base64.b64encode(f"{t.user}:{t.token}".encode()).decode()
    else:
        h["Authorization"] = f"Bearer {t.token}"
    return h


def call(t: Target, method: str, url: str, payload: Any = None) -> tuple[Any, Mapping[str, str]]:
    data = json.dumps(payload).encode() if payload is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers=_headers(t))
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 (http(s) checked in target_from)
            body = resp.read()
            return (json.loads(body) if body else None), resp.headers
    except urllib.error.HTTPError as exc:
        detail = exc.read()[:300].decode("utf-8", "replace")
        hint = {401: "the token is invalid or expired",
                403: "the token lacks permission to comment on pull requests",
                404: "check the repository, the PR number and that the token can see the repository"}.get(exc.code)
        raise UserError(f"{t.provider} API {method} {_public(url)} -> HTTP {exc.code}: {detail}", hint=hint) from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise UserError(f"cannot reach the {t.provider} API at {_public(url)}: {exc}",
                        hint="check report.post.url and the network") from None
    except json.JSONDecodeError:
        raise UserError(f"{t.provider} API {method} {_public(url)} answered with something that is not JSON") from None


def _public(url: str) -> str:
    return url.split("?", 1)[0]


def _next_link(headers: Mapping[str, str]) -> str | None:
    for part in (headers.get("Link") or "").split(","):
        m = re.search(r'<([^>]+)>\s*;\s*rel="next"', part)
        if m:
            return m.group(1)
    return None


def repo_path(t: Target) -> str:
    if t.provider == "gitlab":
        return urllib.parse.quote(t.repo, safe="")
    return "/".join(urllib.parse.quote(p, safe="") for p in t.repo.split("/"))


def _collection_url(t: Target) -> str:
    repo = repo_path(t)
    if t.provider == "github":
        return f"{t.api}/repos/{repo}/issues/{t.number}/comments"
    if t.provider == "gitlab":
        return f"{t.api}/projects/{repo}/merge_requests/{t.number}/notes"
    return f"{t.api}/repositories/{repo}/pullrequests/{t.number}/comments"


def _item_url(t: Target, comment_id: str) -> str:
    repo = repo_path(t)
    if t.provider == "github":
        return f"{t.api}/repos/{repo}/issues/comments/{comment_id}"
    return f"{_collection_url(t)}/{comment_id}"


def _comments(t: Target) -> Iterator[dict[str, Any]]:
    """Every comment on the PR, page by page (each API paginates differently)."""
    sep = "&" if "?" in _collection_url(t) else "?"
    url: str | None = _collection_url(t) + (f"{sep}pagelen=100" if t.provider == "bitbucket" else f"{sep}per_page=100")
    for _ in range(MAX_PAGES):
        if not url:
            return
        data, headers = call(t, "GET", url)
        if t.provider == "bitbucket":
            yield from (data or {}).get("values") or []
            url = (data or {}).get("next")
        else:
            yield from data or []
            nxt = headers.get("X-Next-Page") if t.provider == "gitlab" else None
            url = _next_link(headers) or (_with_page(url, nxt) if nxt else None)


def _with_page(url: str, page: str) -> str:
    parts = urllib.parse.urlsplit(url)
    query = dict(urllib.parse.parse_qsl(parts.query))
    query["page"] = page
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


def _body_of(t: Target, comment: Mapping[str, Any]) -> str:
    if t.provider == "bitbucket":
        return str(((comment.get("content") or {}).get("raw")) or "")
    return str(comment.get("body") or "")


def _payload(t: Target, body: str) -> dict[str, Any]:
    return {"content": {"raw": body}} if t.provider == "bitbucket" else {"body": body}


def _link(t: Target, comment: Mapping[str, Any]) -> str:
    if t.provider == "github":
        return str(comment.get("html_url") or comment.get("url") or "")
    if t.provider == "bitbucket":
        return str(((comment.get("links") or {}).get("html") or {}).get("href") or "")
    return ""


def find_comment(t: Target, marker: str) -> dict[str, Any] | None:
    for comment in _comments(t):
        if t.provider == "gitlab" and comment.get("system"):
            continue
        if marker in _body_of(t, comment) and not (t.provider == "bitbucket" and comment.get("deleted")):
            return comment
    return None


def upsert(t: Target, body: str, marker: str) -> Result:
    """Update the comment carrying `marker`, or create it; `body` must contain the marker."""
    if marker not in body:
        raise ValueError("the comment body must contain its marker, or the next build could not find it")
    existing = find_comment(t, marker)
    if existing is not None:
        cid = str(existing.get("id"))
        method = "PATCH" if t.provider == "github" else "PUT"
        data, _ = call(t, method, _item_url(t, cid), _payload(t, body))
        return Result("updated", cid, _link(t, data or existing))
    data, _ = call(t, "POST", _collection_url(t), _payload(t, body))
    return Result("created", str((data or {}).get("id")), _link(t, data or {}))


def fit(body: str, provider: str) -> str:
    """Hard cap for a forge's comment size (the CLI first tries a compact rendering)."""
    limit = BODY_LIMIT[provider]
    if len(body) <= limit:
        return body
    note = "\n\n_…report truncated to fit a comment; the full report is in Jenkins._\n"
    cut = body.rfind("\n", 0, limit - len(note))
    return body[: cut if cut > 0 else limit - len(note)] + note
