"""Open the pull request that proposes a newly trained model (GitHub, GitLab, Bitbucket).

Reuses the report package's poster for everything it already does (provider defaults, token env names, auth
headers, HTTP errors as UserErrors that never show the token, body size limits); only the "create a PR"
endpoint per provider lives here, because the poster only comments on existing PRs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from ..errors import UserError
from ..report import post


def target(cfg_post: Mapping[str, Any], env: Mapping[str, str] | None = None) -> post.Target | None:
    """Where to open the PR, or None when no provider or no token is configured (then no PR, said in the log)."""
    env = os.environ if env is None else env
    provider = cfg_post.get("provider")
    if provider not in post.DEFAULT_API:
        return None
    secret = post.find_token(provider, env)
    if not secret:
        return None
    repo = cfg_post.get("repo")
    if not repo:
        raise UserError("report.post.repo is not set: cannot open the model pull request",
                        hint="set report.post.repo (owner/name, or the GitLab project path)")
    return post.Target(provider, post.api_base(provider, cfg_post, env), repo, "0", secret, env.get("BITBUCKET_USER") if provider == "bitbucket" else None)


def request(t: post.Target, *, head: str, base: str, title: str, body: str) -> tuple[str, dict[str, Any]]:
    """(url, payload) of the create-PR call: pure, so each provider's shape is testable."""
    repo = post.repo_path(t)
    body = post.fit(body, t.provider)
    if t.provider == "github":
        return f"{t.api}/repos/{repo}/pulls", {"title": title, "head": head, "base": base, "body": body}
    if t.provider == "gitlab":
        return (f"{t.api}/projects/{repo}/merge_requests",
                {"title": title, "source_branch": head, "target_branch": base, "description": body})
    return (f"{t.api}/repositories/{repo}/pullrequests",
            {"title": title, "description": body, "source": {"branch": {"name": head}},
             "destination": {"branch": {"name": base}}})


def open_pull_request(t: post.Target, *, head: str, base: str, title: str, body: str) -> dict[str, Any]:
    url, payload = request(t, head=head, base=base, title=title, body=body)
    data, _ = post.call(t, "POST", url, payload)
    data = data or {}
    link = data.get("html_url") or data.get("web_url") or ((data.get("links") or {}).get("html") or {}).get("href")
    return {"provider": t.provider, "number": data.get("number") or data.get("iid") or data.get("id"), "url": link}
