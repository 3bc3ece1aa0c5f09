"""Offline validation of rendered objects, before anything touches a cluster.

Two layers: the Kubernetes OpenAPI schemas bundled with `kubernetes-validate` (strict: unknown fields such as
a misspelt `replica:` are errors), and the rules those schemas do not encode (DNS-label names, label syntax,
resource quantities, one namespace, no cluster-scoped objects). All problems are reported at once.

Why pin the version: kubernetes-validate picks the newest bundled schema not newer than the version asked
for, comparing "major.minor" as *strings* (so "1.9" would sort after "1.30"). We therefore only accept a
version that is bundled exactly, which also keeps validation from drifting when the package is upgraded.
"""

from __future__ import annotations

import re
from typing import Any

from ..config.schema import DNS_LABEL
from ..errors import UserError
from .render import LABEL_VALUE_RE, Manifest

LABEL_PREFIX_RE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
LABEL_NAME_RE = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
QUANTITY_RE = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)(([KMGTPE]i)|[numkMGTPE]|[eE][+-]?\d+)?")
ANNOTATIONS_MAX = 256 * 1024
# A service deploy must not create or change cluster-wide objects.
CLUSTER_SCOPED = frozenset({
    "Namespace", "Node", "PersistentVolume", "StorageClass", "PriorityClass", "ClusterRole", "ClusterRoleBinding",
    "CustomResourceDefinition", "APIService", "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration",
    "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding", "RuntimeClass", "IngressClass",
    "CSIDriver", "VolumeAttachment",
})


def supported_versions() -> list[str]:
    import kubernetes_validate.utils as kvu

    return sorted({kvu.major_minor(v) for v in kvu.all_versions()}, key=lambda v: tuple(map(int, v.split("."))))


def _label_key_ok(key: str) -> bool:
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not LABEL_PREFIX_RE.fullmatch(prefix)):
        return False
    return len(name) <= 63 and bool(LABEL_NAME_RE.fullmatch(name))


def _check_labels(labels: Any, where: str, problems: list[str]) -> None:
    if labels is None:
        return
    if not isinstance(labels, dict):
        problems.append(f"{where}: labels must be a mapping")
        return
    for key, value in labels.items():
        if not isinstance(key, str) or not _label_key_ok(key):
            problems.append(f"{where}: label key {key!r} is not a valid label name")
        if not isinstance(value, str) or len(value) > 63 or not LABEL_VALUE_RE.fullmatch(value):
            problems.append(f"{where}: label {key}={value!r} is not a valid label value "
                            "(at most 63 of [A-Za-z0-9-_.], alphanumeric at both ends; put long values in annotations)")


def _check_annotations(annotations: Any, where: str, problems: list[str]) -> None:
    if annotations is None:
        return
    if not isinstance(annotations, dict) or not all(isinstance(v, str) for v in annotations.values()):
        problems.append(f"{where}: annotations must map names to strings")
        return
    for key in annotations:
        if not isinstance(key, str) or not _label_key_ok(key):
            problems.append(f"{where}: annotation key {key!r} is not a valid name")
    if sum(len(k) + len(v) for k, v in annotations.items()) > ANNOTATIONS_MAX:
        problems.append(f"{where}: annotations exceed 256 KiB")


def _pod_spec(obj: dict[str, Any]) -> dict[str, Any] | None:
    spec = obj.get("spec") or {}
    template = spec.get("template") if isinstance(spec, dict) else None
    if isinstance(template, dict) and isinstance(template.get("spec"), dict):
        return template["spec"]
    return None


def _check_pods(m: Manifest, problems: list[str]) -> None:
    spec = _pod_spec(m.obj)
    if spec is None:
        return
    template_meta = (m.obj["spec"]["template"].get("metadata") or {})
    _check_labels(template_meta.get("labels"), f"{m.title} pod template", problems)
    _check_annotations(template_meta.get("annotations"), f"{m.title} pod template", problems)
    for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        if not isinstance(c, dict):
            continue
        for section in ("requests", "limits"):
            for res, qty in ((c.get("resources") or {}).get(section) or {}).items():
                if not QUANTITY_RE.fullmatch(str(qty)):
                    problems.append(f"{m.title} container {c.get('name')}: resources.{section}.{res} {qty!r} "
                                    "is not a Kubernetes quantity (e.g. 100m, 0.5, 256Mi, 1Gi)")


def check_rules(manifests: list[Manifest], namespace: str) -> list[str]:
    """Rules beyond the OpenAPI schemas. Sets metadata.namespace where a template left it out."""
    problems: list[str] = []
    seen: set[tuple[str, str]] = set()
    for m in manifests:
        meta = m.obj.get("metadata")
        if not isinstance(meta, dict):
            problems.append(f"{m.source}: {m.kind} has no metadata")
            continue
        name = meta.get("name")
        if not isinstance(name, str) or not re.fullmatch(DNS_LABEL, name):
            problems.append(f"{m.source}: {m.kind} name {name!r} is not a DNS label "
                            "(lowercase letters, digits, '-', at most 63 characters)")
        if m.kind in CLUSTER_SCOPED:
            problems.append(f"{m.source}: {m.title} is cluster-scoped; a service deploy only manages objects "
                            f"in its namespace")
        ns = meta.get("namespace")
        if ns is None:
            meta["namespace"] = namespace
        elif ns != namespace:
            problems.append(f"{m.source}: {m.title} is in namespace {ns!r}, the environment deploys to {namespace!r}")
        if (m.kind, str(name)) in seen:
            problems.append(f"{m.source}: {m.title} is rendered twice")
        seen.add((m.kind, str(name)))
        _check_labels(meta.get("labels"), m.title, problems)
        _check_annotations(meta.get("annotations"), m.title, problems)
        _check_pods(m, problems)
    _check_hpa_requests(manifests, problems)
    return problems


def _check_hpa_requests(manifests: list[Manifest], problems: list[str]) -> None:
    """A CPU-utilisation autoscaler does nothing unless every container of its target requests CPU."""
    deployments = {m.name: m for m in manifests if m.kind == "Deployment"}
    for m in manifests:
        if m.kind != "HorizontalPodAutoscaler":
            continue
        spec = m.obj.get("spec") or {}
        uses_cpu = any(((metric.get("resource") or {}).get("name") == "cpu")
                       for metric in spec.get("metrics") or [] if isinstance(metric, dict))
        target = deployments.get(str((spec.get("scaleTargetRef") or {}).get("name")))
        pod = _pod_spec(target.obj) if target else None
        if not uses_cpu or pod is None:
            continue
        for c in pod.get("containers") or []:
            if not ((c.get("resources") or {}).get("requests") or {}).get("cpu"):
                problems.append(f"{m.title} scales on CPU but container {c.get('name')} of {target.title} "
                                "requests no cpu (set resources.requests.cpu)")


def check_schemas(manifests: list[Manifest], version: str, unvalidated_kinds: list[str]) -> tuple[list[str], list[str]]:
    """(problems, notes): every object against the bundled strict schema for `version`."""
    import kubernetes_validate
    import kubernetes_validate.utils as kvu

    versions = supported_versions()
    if version not in versions:
        raise UserError(f"no offline schemas for Kubernetes {version}", where="deploy.kubernetes_version",
                        hint=f"use one of {', '.join(versions)} (kubernetes-validate {kubernetes_validate.__version__})")
    problems: list[str] = []
    notes: list[str] = []
    for m in manifests:
        try:
            kubernetes_validate.validate(m.obj, version, strict=True)
        except kvu.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path) or "<root>"
            problems.append(f"{m.source}: {m.title}: {path}: {exc.message}")
        except kvu.SchemaNotFoundError:
            if m.kind in unvalidated_kinds:
                notes.append(f"{m.title}: no offline schema for {m.obj.get('apiVersion')} {m.kind}; "
                             "applied unvalidated (deploy.unvalidated_kinds)")
            else:
                problems.append(f"{m.source}: {m.title}: no schema for apiVersion {m.obj.get('apiVersion')!r} "
                                f"kind {m.kind!r} in Kubernetes {version} (a typo, or a CRD: list the kind in "
                                "deploy.unvalidated_kinds to apply it unvalidated)")
    return problems, notes


def advisories(manifests: list[Manifest]) -> list[str]:
    """Valid but probably unintended: a PodDisruptionBudget that leaves no pod evictable blocks node drains."""
    notes = []
    replicas = {}
    for m in manifests:
        spec = m.obj.get("spec") or {}
        if m.kind == "Deployment":
            replicas.setdefault(m.name, spec.get("replicas", 1))
        elif m.kind == "HorizontalPodAutoscaler":
            target = str((spec.get("scaleTargetRef") or {}).get("name"))
            replicas[target] = spec.get("minReplicas", 1)
    for m in manifests:
        min_available = (m.obj.get("spec") or {}).get("minAvailable") if m.kind == "PodDisruptionBudget" else None
        for name, count in replicas.items():
            if isinstance(min_available, int) and isinstance(count, int) and min_available >= count:
                notes.append(f"warning: {m.title} minAvailable {min_available} >= {count} replica(s) of "
                             f"Deployment/{name} at minimum: no pod can be evicted, node drains will block")
    return notes


def validate(manifests: list[Manifest], *, namespace: str, version: str,
             unvalidated_kinds: list[str] | None = None) -> list[str]:
    """Raise one UserError listing every problem; return notes (e.g. kinds applied unvalidated)."""
    problems = check_rules(manifests, namespace)
    schema_problems, notes = check_schemas(manifests, version, list(unvalidated_kinds or []))
    problems += schema_problems
    if problems:
        raise UserError(f"{len(problems)} problem(s) in the rendered manifests (nothing was applied):\n  "
                        + "\n  ".join(problems),
                        hint="fix the templates or the deploy section of ml-ci.yaml; `mlci deploy --dry-run` "
                             "shows the manifests")
    return notes + advisories(manifests)
