"""The baseline of a build: the latest PASS record of the same suite on the baseline branch.

Source order: the history store (`report.history`), else the archived accuracy.json of the last successful
Jenkins build of the baseline branch's job (python-jenkins; JENKINS_URL, JENKINS_USER, JENKINS_API_TOKEN from the
environment, never argv). Any problem on the way becomes a warning and "no baseline": a baseline improves a
report and arms the change gate, but its absence must never break a build.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from . import history
from .history import RECORD_SCHEMA, warn

MAX_BUILDS = 20  # builds walked back on the Jenkins job before giving up
GOOD_RESULTS = ("SUCCESS", "UNSTABLE")  # Jenkins' own "successful"; the record itself must still be PASS


@dataclass
class Baseline:
    record: dict[str, Any] | None
    source: str  # human-readable: where it came from, or why there is none


def baseline_branch(cfg: Any) -> str:
    try:
        return cfg["report"]["baseline_branch"] or "main"
    except (KeyError, TypeError):
        return "main"


def jenkins_job(env: Mapping[str, str], branch: str) -> str | None:
    """The Jenkins job whose builds are the baseline branch's builds.

    Multibranch pipelines (BRANCH_NAME or CHANGE_ID set) name a branch job `<folder>/<branch>` with '/' in the
    branch encoded as %2F; a plain pipeline job is its own baseline (its last successful build).
    """
    job = env.get("JOB_NAME")
    if not job:
        return None
    if env.get("BRANCH_NAME") or env.get("CHANGE_ID"):
        parent = job.rsplit("/", 1)[0] if "/" in job else ""
        name = quote(branch, safe="")
        return f"{parent}/{name}" if parent else name
    return job


def _is_pass(record: Any, suite: str) -> bool:
    return (isinstance(record, dict) and record.get("schema") == RECORD_SCHEMA and record.get("suite") == suite
            and record.get("verdict") == "PASS")


def from_jenkins(*, url: str, user: str | None, token: str | None, job: str, suite: str,
                 max_builds: int = MAX_BUILDS, timeout: float = 20) -> Baseline:
    """Walk the job's builds newest first; the first successful one with a PASS accuracy.json of `suite` wins."""
    import jenkins  # python-jenkins; imported here so `mlci --help` does not pay for requests
    import requests

    suffix = f"accuracy/{suite}/accuracy.json"
    try:
        server = jenkins.Jenkins(url, username=user, password=token, timeout=timeout)
        info = server.get_job_info(job)
        numbers: list[int] = []
        last_ok = (info.get("lastSuccessfulBuild") or {}).get("number")
        if isinstance(last_ok, int):
            numbers.append(last_ok)
        numbers += [b["number"] for b in info.get("builds") or []
                    if isinstance(b, dict) and isinstance(b.get("number"), int) and b["number"] not in numbers]
        for number in numbers[:max_builds]:
            build = server.get_build_info(job, number)
            if build.get("building") or build.get("result") not in GOOD_RESULTS:
                continue
            paths = [a.get("relativePath") for a in build.get("artifacts") or [] if isinstance(a, dict)]
            path = next((p for p in paths if isinstance(p, str) and (p == suffix or p.endswith("/" + suffix))), None)
            if path is None:
                continue
            record = server.get_build_artifact(job, number, path)
            if _is_pass(record, suite):
                record.setdefault("jenkins", {"job": job, "build": number, "url": build.get("url")})
                return Baseline(record, f"Jenkins {job} #{number}")
        return Baseline(None, f"no successful build of Jenkins job {job} archived a PASS {suffix}")
    except (jenkins.JenkinsException, requests.RequestException, ValueError, KeyError, TypeError) as exc:
        warn(f"Jenkins baseline lookup on {job} failed ({_first_line(exc)}); no baseline")
        return Baseline(None, f"Jenkins lookup failed: {_first_line(exc)}")


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def find_baseline(cfg: Any, *, suite: str, branch: str | None = None, exclude_commit: str | None = None,
                  env: Mapping[str, str] | None = None) -> Baseline:
    """History store first, Jenkins second; never raises for an unavailable source."""
    env = os.environ if env is None else env
    branch = branch or baseline_branch(cfg)
    store = history.store_for(cfg)
    if store is not None:
        record = history.latest_pass(cfg, branch=branch, suite=suite, exclude_commit=exclude_commit)
        if record is not None:
            rid = (record.get("history") or {}).get("id", "?")
            return Baseline(record, f"history store {store.uri} (record {rid})")
    url = env.get("JENKINS_URL")
    job = env.get("MLCI_BASELINE_JOB") or jenkins_job(env, branch)
    if url and job:
        found = from_jenkins(url=url, user=env.get("JENKINS_USER"), token=env.get("JENKINS_API_TOKEN"),
                             job=job, suite=suite)
        if found.record is not None and exclude_commit and (found.record.get("git") or {}).get("commit") == exclude_commit:
            return Baseline(None, "the baseline branch's last passing record is this commit")
        return found
    where = f"history store {store.uri}" if store is not None else "no report.history configured and no JENKINS_URL"
    return Baseline(None, f"no PASS record of suite {suite} on {branch} ({where})")
