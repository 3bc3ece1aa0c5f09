"""Start the retraining job from outside Jenkins (a cron job, Airflow, a laptop) through python-jenkins.

Inside Jenkins the driftCheck step uses `build job:` instead; this path is for teams that run the check
elsewhere. Credentials come from the environment only (JENKINS_USER, JENKINS_API_TOKEN), never from flags,
so they stay out of argv and logs. python-jenkins fetches a CSRF crumb from crumbIssuer/api/json when the
server issues one, POSTs job/<name>/buildWithParameters, and returns the queue item from the Location header.
"""

from __future__ import annotations

import os
from typing import Any

import jenkins
import requests

from ..errors import StageFailed, UserError


def drift_parameters(rec: dict[str, Any], extra: dict[str, str]) -> dict[str, str]:
    """Build parameters: the configured ones, then why the job was started (the training job can record it)."""
    drifted = [f["name"] for f in rec["features"] if f["drifted"]]
    params = dict(extra)
    params["DRIFT_REASON"] = rec["summary"][:1000]
    params["DRIFT_FEATURES"] = ",".join(drifted)[:2000]
    params["DRIFT_WINDOW"] = f"{rec['logs'].get('from')}..{rec['logs'].get('to')}"
    return params


def trigger_build(job: str, parameters: dict[str, str], *, url: str | None = None, timeout: float = 30) -> dict[str, Any]:
    """Queue `job` with `parameters`; returns {"job", "queue_item", "url"}. Failures are StageFailed (exit 1
    stays the drift verdict's code; the caller reports the trigger failure separately)."""
    url = url or os.environ.get("JENKINS_URL")
    if not url:
        raise UserError("no Jenkins URL to start the retraining job",
                        hint="set drift.retrain.url or $JENKINS_URL (credentials: $JENKINS_USER, $JENKINS_API_TOKEN)")
    user, token = os.environ.get("JENKINS_USER"), os.environ.get("JENKINS_API_TOKEN")
    server = jenkins.Jenkins(url, username=user, password=token, timeout=timeout)
    try:
        number = server.build_job(job, parameters)
    except jenkins.NotFoundException:
        raise UserError(f"Jenkins job '{job}' not found at {url}", hint="fix drift.retrain.job (folders: a/b/job)") from None
    except (jenkins.JenkinsException, requests.RequestException, OSError, ValueError) as exc:
        text = str(exc).replace(token, "***") if token else str(exc)
        raise StageFailed(f"could not start Jenkins job '{job}' at {url}: {text}") from None
    return {"job": job, "queue_item": number, "url": f"{url.rstrip('/')}/queue/item/{number}/"}
