"""`mlci deploy --env NAME [--image REF@DIGEST] [--dry-run] [--force --reason TEXT]`.

The order is the safety argument: resolve the image (pinned by digest) -> promotion gate -> render -> validate
offline -> only then talk to the cluster (context preflight, server-side apply, rollout status, undo on
failure). Nothing reaches a cluster unless every earlier step succeeded, and every attempt that got as far as
the gate leaves `<out>/deploy.json` behind for the report.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .. import __version__, gitinfo, paths
from ..config.loader import SECRET_KEY, SECRET_VALUE, Config, load_config
from ..errors import StageFailed, UserError
from ..fsutil import read_json, write_json_atomic
from ..progress import Progress
from . import gate, kubectl, render, validate
from .render import ImageRef, Manifest, Provenance

SCHEMA = "mlci.deploy/1"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "deploy", help="gate, render, validate and roll out the image to a Kubernetes environment",
        description="Deploy the image (pinned by digest) to one environment: promotion gate (a PASS accuracy record "
                    "for the digest), render, offline schema validation, kubectl apply --server-side, rollout status; "
                    "a failed rollout is undone. Writes <out>/deploy.json. Exit 0 deployed, 1 refused or failed, "
                    "2 bad input or missing kube context.")
    p.add_argument("--env", required=True, dest="env_name", metavar="NAME", help="environment under deploy.environments")
    p.add_argument("-c", "--config", help="path to ml-ci.yaml (default ./ml-ci.yaml or $MLCI_CONFIG)")
    p.add_argument("--image", metavar="REF@DIGEST", help="image pinned by digest (default: <out>/build.json)")
    p.add_argument("--dry-run", action="store_true", help="print manifests and kubectl commands, validate; touch nothing")
    p.add_argument("--force", action="store_true", help="deploy without a PASS accuracy record (needs --reason)")
    p.add_argument("--reason", help="why the promotion gate is overridden (recorded in deploy.json and annotations)")
    p.add_argument("--out", help="output directory (default $MLCI_OUT or <repo>/.mlci)")
    p.set_defaults(func=cmd_deploy)


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _force_reason(args: argparse.Namespace) -> str | None:
    reason = (args.reason or "").strip()
    if args.force and not reason:
        raise UserError("--force needs --reason \"...\"", hint="say why the promotion gate is overridden; it is recorded")
    if args.reason is not None and not args.force:
        raise UserError("--reason is only used with --force")
    return reason if args.force else None


def _environment(cfg: Config, name: str) -> dict[str, Any]:
    envs = cfg["deploy"]["environments"]
    if name not in envs:
        raise UserError(f"no environment '{name}'", where=f"{cfg.path}: deploy.environments",
                        hint=f"valid: {', '.join(envs) or '(none defined: add deploy.environments.<name>)'}")
    return envs[name]


def _build_record(out: Path) -> dict[str, Any] | None:
    path = out / paths.BUILD_RECORD
    if not path.exists():
        return None
    try:
        record = read_json(path)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read the build record: {exc}", where=str(path), hint="re-run `mlci build`") from None
    if not isinstance(record, dict) or not isinstance(record.get("image"), dict):
        raise UserError("not an mlci.build record (no image)", where=str(path), hint="re-run `mlci build`")
    return record


def resolve_image(image_arg: str | None, build: dict[str, Any] | None, out: Path,
                  log: Progress) -> tuple[ImageRef, Provenance]:
    """--image wins; else build.json's image name and digest. Provenance from build.json when it matches."""
    if image_arg:
        image = ImageRef.parse(image_arg)
    else:
        if build is None:
            raise UserError(f"no build record at {out / paths.BUILD_RECORD}",
                            hint="run `mlci build` first, or pass --image REF@sha256:...")
        img = build["image"]
        image = ImageRef.parse(f"{img.get('name')}@{img.get('digest')}")
        if img.get("digest") and img.get("digest") == img.get("id"):
            log.log("warning: build.json's digest is the local image id (the image was not pushed); a cluster can "
                    "only pull it if the image is already on its nodes")
    if build and (build.get("image") or {}).get("digest") == image.digest:
        models = (build.get("models") or {}).get("files") or {}
        return image, Provenance((build.get("git") or {}).get("commit"), dict(models))
    return image, Provenance()


def rollouts_of(manifests: list[Manifest]) -> list[kubectl.Rollout]:
    """Deployments to wait for; the selector for diagnostics narrows to the new pods when the template labels
    pods with the image digest (the built-in one does)."""
    out = []
    for m in manifests:
        if m.kind != "Deployment":
            continue
        spec = m.obj.get("spec") or {}
        selector = dict((spec.get("selector") or {}).get("matchLabels") or {})
        pod_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        if "mlci.dev/image" in pod_labels:
            selector["mlci.dev/image"] = pod_labels["mlci.dev/image"]
        out.append(kubectl.Rollout(m.name, {str(k): str(v) for k, v in selector.items()}))
    return out


def printable(manifests: list[Manifest]) -> list[Manifest]:
    """Copies for printing: container env vars that look secret are masked (they belong in Secrets anyway)."""
    import copy

    shown = copy.deepcopy(manifests)
    for m in shown:
        pod = validate._pod_spec(m.obj)
        for c in (pod or {}).get("containers") or []:
            for var in c.get("env") or []:
                if isinstance(var, dict) and isinstance(var.get("value"), str) and (
                        SECRET_KEY.search(str(var.get("name"))) or SECRET_VALUE.search(var["value"])):
                    var["value"] = "***"
    return shown


def cmd_deploy(args: argparse.Namespace) -> int:
    started, t0 = _now(), time.monotonic()
    log = Progress(0, "deploy")
    reason = _force_reason(args)
    cfg = load_config(args.config)
    env = _environment(cfg, args.env_name)
    out = paths.out_dir(args.out, root=cfg.root)
    branch = gitinfo.branch(cfg.root)
    if branch and branch != env["branch"]:
        log.log(f"note: environment '{args.env_name}' deploys builds of branch '{env['branch']}'; this is '{branch}'")

    build = _build_record(out)
    image, prov = resolve_image(args.image, build, out, log)
    decision = gate.evaluate(cfg, out, image.digest)
    if reason is not None:
        decision = gate.forced(decision, reason)
    if not prov.commit and decision.record and decision.record.get("commit"):
        prov = Provenance(decision.record["commit"], prov.models)

    manifests = render.render(cfg, args.env_name, image, prov)
    render.stamp(manifests, image=image, forced_reason=reason)
    deploy_cfg = cfg["deploy"]
    notes = validate.validate(manifests, namespace=env["namespace"], version=deploy_cfg["kubernetes_version"],
                              unvalidated_kinds=deploy_cfg["unvalidated_kinds"])
    for note in [*notes, *decision.notes]:
        log.log(note)
    log.log(f"{len(manifests)} object(s) valid against Kubernetes {deploy_cfg['kubernetes_version']} schemas: "
            + ", ".join(m.title for m in manifests))
    rollouts = rollouts_of(manifests)
    timeout = int(deploy_cfg["rollout_timeout"])
    redact = kubectl.Redactor.from_kubeconfig()

    if args.dry_run:
        return _dry_run(manifests, rollouts, env, args.env_name, timeout, decision, redact, log)

    record: dict[str, Any] = {
        "schema": SCHEMA, "service": cfg["service"], "environment": args.env_name, "namespace": env["namespace"],
        "context": env.get("context"), "image": {"name": image.name, "digest": image.digest, "ref": image.ref},
        "digest": image.digest, "time": started, "git": {"commit": prov.commit, "branch": branch},
        "models_digest": prov.models_digest, "forced": reason is not None, "reason": reason,
        "gate": decision.to_json(), "objects": [m.title for m in manifests],
        "kubernetes_version": deploy_cfg["kubernetes_version"], "mlci_version": __version__,
    }

    def finish(result: str, message: str, **extra: Any) -> None:
        record.update(result=result, message=message, finished=_now(),
                      duration_s=round(time.monotonic() - t0, 3), **extra)
        write_json_atomic(out / paths.DEPLOY_RECORD, record)

    log.log(decision.message)
    if not decision.passed:
        finish("refused", decision.message)
        raise StageFailed(f"deploy to {args.env_name} refused by the promotion gate: {decision.message}\n"
                          "  fix: run the accuracy suite for this image, or override with --force --reason \"...\"")
    try:
        kc = kubectl.Kubectl(kubectl.find_kubectl(), redact=redact)
        context = kubectl.resolve_context(kc, env.get("context"), args.env_name)
    except UserError as exc:
        finish("preflight-failed", redact(str(exc)))
        raise
    record["context"] = context
    target = kubectl.Target(context, env["namespace"])
    log.log(f"deploying {image.ref} to {args.env_name} (context {context}, namespace {env['namespace']})")
    outcome = kubectl.deploy(kc, target, render.dump(manifests), rollouts, timeout, log.log)
    finish(outcome.result, outcome.message, rollout={"failed": outcome.failed, "undo": outcome.undo})
    if outcome.result != "deployed":
        raise StageFailed(f"deploy to {args.env_name} failed: {outcome.message}")
    print(f"deployed {image.ref} to {args.env_name} ({context}/{env['namespace']})")
    return 0


def one_line(text: str) -> str:
    """Text safe on one comment line of the dry run's YAML: line breaks and control characters escaped (a
    --reason with a newline must not start a YAML document of its own)."""
    return json.dumps(text, ensure_ascii=False)[1:-1]


def _dry_run(manifests: list[Manifest], rollouts: list[kubectl.Rollout], env: dict[str, Any], env_name: str,
             timeout: int, decision: gate.GateResult, redact: kubectl.Redactor, log: Progress) -> int:
    """Print what would be applied and run; exit 1 when the gate would refuse, so a dry run is a real check."""
    sys.stdout.write(redact(render.dump(printable(manifests))))
    context = env.get("context") or "<current-context>"
    target = kubectl.Target(context, env["namespace"])
    print("# kubectl commands (manifests above on stdin; KUBECONFIG from the environment):")
    print("#   kubectl config get-contexts -o name")
    for step in kubectl.plan(target, rollouts, timeout):
        print("#   " + redact(shlex.join(["kubectl", *step])))
    print("#   on a failed rollout: kubectl ... rollout undo deployment/<name>; pods' events and last log lines")
    print(f"# promotion gate: {'PASS' if decision.passed else 'REFUSED'}: {one_line(decision.message)}")
    log.log(f"dry run for {env_name}: nothing applied")
    return 0 if decision.passed else 1
