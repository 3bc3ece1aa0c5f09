"""Render Kubernetes manifests for one environment: the repo's Jinja2 templates or the built-in defaults.

Why this shape: values from ml-ci.yaml (env vars, namespace, reasons typed by people) must never be able to
change the structure of a manifest. Every `{{ expression }}` therefore passes through `yaml_inline`, which
emits a double-quoted YAML scalar (strings) or a flow mapping/list (structures) on one line, so a value holding
quotes, colons, newlines or `{{` stays one string. Template authors cannot forget a filter: quoting is the
`finalize` hook of the Jinja environment, applied to every expression. The rendered text is parsed back into
objects straight away; everything after this module works on those objects, never on text.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import yaml
from jinja2.sandbox import SandboxedEnvironment

from ..config.loader import Config
from ..config.schema import SCHEMA
from ..errors import UserError

BUILTIN_DIR = Path(__file__).parent / "templates"
TEMPLATE_SUFFIXES = (".yaml.j2", ".yml.j2", ".yaml", ".yml")
DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}")
# Label values: at most 63 characters, alphanumeric at both ends, '-', '_', '.' inside (or empty).
LABEL_VALUE_RE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
SHORT = 12  # hex digits of a digest or commit used in label values

# Sensible defaults for a small inference service. No CPU limit (throttling hurts latency); memory is capped.
DEFAULT_REQUESTS = {"cpu": "100m", "memory": "256Mi"}
DEFAULT_LIMITS = {"memory": "512Mi"}


@dataclass(frozen=True)
class ImageRef:
    """An image pinned by digest: `name` (may carry a tag) and `digest` (sha256:...)."""

    name: str
    digest: str

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.digest}"

    @classmethod
    def parse(cls, text: str) -> ImageRef:
        """`REF@sha256:<64 hex>`; anything not pinned by digest is refused (tags move, digests don't)."""
        name, sep, digest = text.strip().rpartition("@")
        if not sep or not name or not DIGEST_RE.fullmatch(digest):
            raise UserError(f"image '{text}' is not pinned by digest", where="--image",
                            hint="pass REF@sha256:<64 hex digits>, e.g. registry/ml/digits@sha256:...")
        if re.search(r"\s", name):
            raise UserError(f"image name '{name}' contains whitespace", where="--image")
        return cls(name, digest)


@dataclass(frozen=True)
class Provenance:
    """What is being deployed, for labels and annotations: the commit and the model files' digests."""

    commit: str | None = None
    models: dict[str, str] = field(default_factory=dict)

    @property
    def models_digest(self) -> str | None:
        """One digest over all model files (path=digest lines), so a label can say which models are live."""
        if not self.models:
            return None
        lines = "".join(f"{path}={digest}\n" for path, digest in sorted(self.models.items()))
        return "sha256:" + hashlib.sha256(lines.encode()).hexdigest()


@dataclass
class Manifest:
    """One rendered object and the template it came from (for error messages)."""

    source: str
    obj: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.obj.get("kind"))

    @property
    def name(self) -> str:
        return str((self.obj.get("metadata") or {}).get("name"))

    @property
    def title(self) -> str:
        return f"{self.kind}/{self.name}"


class _QuotedDumper(yaml.SafeDumper):
    """Strings always double-quoted (escapes for every special character); numbers and booleans plain."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style='"')


_QuotedDumper.add_representer(str, _represent_str)


def yaml_inline(value: Any) -> str:
    """A value as one line of YAML that parses back to exactly `value` (the finalize hook of every template)."""
    if isinstance(value, jinja2.Undefined):
        str(value)  # StrictUndefined raises UndefinedError here, naming the missing variable
    if value is None:
        return "null"
    try:
        text = yaml.dump(value, Dumper=_QuotedDumper, default_flow_style=True, width=2**31, allow_unicode=False)
    except yaml.representer.RepresenterError as exc:
        raise UserError(f"a template expression produced a {type(value).__name__}, which has no YAML form: {exc}") from None
    text = text.removesuffix("\n...\n").rstrip("\n")
    if "\n" in text:  # cannot happen with an infinite width; keeping the guarantee explicit
        raise UserError("a template value could not be rendered on one line")
    return text


def label_value(value: str | None) -> str | None:
    """`value` if it is a valid label value, else None (the full value goes into an annotation instead)."""
    if value and len(value) <= 63 and LABEL_VALUE_RE.fullmatch(value):
        return value
    return None


def short_digest(digest: str | None) -> str | None:
    if not digest:
        return None
    return label_value(digest.split(":", 1)[-1][:SHORT])


def _serve(cfg: Config) -> dict[str, Any]:
    """The service's port, health path and start command (tests.acceptance.serve, else the schema defaults)."""
    serve_node = SCHEMA.fields["tests"].fields["acceptance"].fields["serve"]
    defaults = serve_node.default_value()
    acceptance = cfg["tests"].get("acceptance") or {}
    serve = acceptance.get("serve") or {}
    return {k: serve.get(k) if serve.get(k) is not None else defaults[k] for k in ("command", "port", "health")}


def resources_for(configured: dict[str, Any] | None) -> dict[str, Any]:
    """Requests/limits: the environment's, else defaults. Given requests without limits, memory limit = request."""
    configured = configured or {}
    requests = dict(configured.get("requests") or {}) or dict(DEFAULT_REQUESTS)
    limits = dict(configured.get("limits") or {})
    if not limits:
        if configured.get("requests"):
            limits = {"memory": requests["memory"]} if "memory" in requests else {}
        else:
            limits = dict(DEFAULT_LIMITS)
    out: dict[str, Any] = {"requests": requests}
    if limits:
        out["limits"] = limits
    return out


def pod_scheduling(node_selector: dict[str, str] | None, tolerations: list[dict[str, Any]] | None,
                   where: str) -> dict[str, Any]:
    """`nodeSelector` and `tolerations` for a pod spec (GPU pools, tainted nodes), shared by the deployed
    service and the training Job. Checks the cross-field rules the API server enforces but the offline
    schemas do not, so a mistake fails here, before anything reaches a cluster."""
    out: dict[str, Any] = {}
    if node_selector:
        out["nodeSelector"] = {str(k): str(v) for k, v in node_selector.items()}
    rendered = []
    for i, t in enumerate(tolerations or []):
        at = f"{where}.tolerations[{i}]"
        operator = t.get("operator") or "Equal"
        if operator == "Exists" and t.get("value"):
            raise UserError("operator Exists takes no value", where=at, hint="drop value, or use operator Equal")
        if operator == "Equal" and not t.get("key"):
            raise UserError("operator Equal needs a key", where=at,
                            hint="name the taint key, or use operator: Exists to tolerate every taint")
        if t.get("seconds") is not None and t.get("effect") != "NoExecute":
            raise UserError("seconds (tolerationSeconds) applies only to effect NoExecute", where=at,
                            hint="set effect: NoExecute or drop seconds")
        tol = {"key": t.get("key"), "operator": operator, "value": t.get("value"), "effect": t.get("effect"),
               "tolerationSeconds": t.get("seconds")}
        rendered.append({k: v for k, v in tol.items() if v is not None and v != ""})
    if rendered:
        out["tolerations"] = rendered
    return out


def template_context(cfg: Config, env_name: str, image: ImageRef, prov: Provenance) -> dict[str, Any]:
    """Everything a template may use. Pure: config and facts in, a dict out."""
    env = cfg["deploy"]["environments"][env_name]
    service = cfg["service"]
    serve = _serve(cfg)
    selector = {"app.kubernetes.io/name": service, "app.kubernetes.io/instance": service}
    labels = {**selector, "app.kubernetes.io/managed-by": "mlci", "mlci.dev/environment": env_name}
    version_labels = {
        "mlci.dev/image": short_digest(image.digest),
        "mlci.dev/commit": label_value((prov.commit or "")[:SHORT]),
        "mlci.dev/models": short_digest(prov.models_digest),
    }
    version_labels = {k: v for k, v in version_labels.items() if v}
    commit = prov.commit or "unknown"
    annotations = {
        "mlci.dev/image": image.ref,
        "mlci.dev/image-digest": image.digest,
        "mlci.dev/commit": commit,
        "kubernetes.io/change-cause": f"mlci deploy --env {env_name}: {image.ref} (commit {commit[:SHORT]})",
    }
    if prov.models:
        annotations["mlci.dev/models"] = json.dumps(prov.models, sort_keys=True)
        annotations["mlci.dev/models-digest"] = prov.models_digest or ""
    command = shlex.split(serve["command"]) if serve["command"] else None
    scheduling = pod_scheduling(env.get("node_selector"), env.get("tolerations"),
                                f"{cfg.path}: deploy.environments.{env_name}")
    return {
        "service": service,
        "name": service,
        "container": service,
        "environment": env_name,
        "namespace": env["namespace"],
        "image": image.ref,
        "image_name": image.name,
        "digest": image.digest,
        "commit": prov.commit,
        "models": dict(prov.models),
        "replicas": env["replicas"],
        "resources": resources_for(env.get("resources")),
        "env": dict(env.get("env") or {}),
        "env_list": [{"name": k, "value": str(v)} for k, v in (env.get("env") or {}).items()],
        "node_selector": scheduling.get("nodeSelector"),
        "tolerations": scheduling.get("tolerations"),
        "hpa": env.get("hpa"),
        "pdb": env.get("pdb"),
        "port": serve["port"],
        "health": serve["health"],
        "command": command,
        "service_type": cfg["deploy"]["service_type"],
        "service_port": cfg["deploy"]["service_port"],
        "selector": selector,
        "labels": labels,
        "pod_labels": {**labels, **version_labels},
        "deploy_labels": {**labels, **version_labels},
        "annotations": annotations,
        "pod_annotations": {k: annotations[k] for k in ("mlci.dev/image-digest", "mlci.dev/commit")},
    }


def template_dir(cfg: Config) -> Path:
    """deploy.templates (inside the repo) when set, else the built-in templates."""
    configured = cfg["deploy"].get("templates")
    if not configured:
        return BUILTIN_DIR
    path = cfg.resolve(configured)
    if not path.is_dir():
        raise UserError(f"template directory '{configured}' not found", where="deploy.templates",
                        hint=f"create {path} with *.yaml.j2 files, or remove the key to use the built-in manifests")
    return path


def _template_names(directory: Path) -> list[str]:
    names = sorted(p.name for p in directory.iterdir() if p.is_file() and p.name.endswith(TEMPLATE_SUFFIXES))
    if not names:
        raise UserError(f"no templates in {directory}", where="deploy.templates",
                        hint="add files ending in " + ", ".join(TEMPLATE_SUFFIXES))
    return names


def _environment(directory: Path) -> SandboxedEnvironment:
    return SandboxedEnvironment(
        loader=jinja2.FileSystemLoader(str(directory)),
        undefined=jinja2.StrictUndefined,
        finalize=yaml_inline,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )


def _parse(text: str, source: str) -> list[dict[str, Any]]:
    from ..config.loader import _UniqueKeyLoader  # duplicate keys are mistakes in manifests too

    try:
        docs = list(yaml.load_all(text, Loader=_UniqueKeyLoader))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UserError(f"rendered template is not valid YAML: {problem}", where=f"{source}{line} (rendered)",
                        hint="{{ expr }} already emits a quoted value: write `key: {{ expr }}`, not `key: \"{{ expr }}\"`; "
                             "build strings inside the expression: {{ name ~ '-suffix' }}") from None
    objects = []
    for i, doc in enumerate(docs):
        if doc is None:
            continue
        if not isinstance(doc, dict) or not doc.get("apiVersion") or not doc.get("kind"):
            raise UserError(f"document {i + 1} is not a Kubernetes object (apiVersion and kind are required)",
                            where=source)
        objects.append(doc)
    return objects


def render(cfg: Config, env_name: str, image: ImageRef, prov: Provenance) -> list[Manifest]:
    """Render every template for `env_name` and parse the result into objects."""
    directory = template_dir(cfg)
    jenv = _environment(directory)
    context = template_context(cfg, env_name, image, prov)
    manifests: list[Manifest] = []
    for name in _template_names(directory):
        source = name if directory == BUILTIN_DIR else f"{cfg['deploy']['templates'].rstrip('/')}/{name}"
        try:
            text = jenv.get_template(name).render(context)
        except jinja2.TemplateSyntaxError as exc:
            raise UserError(f"template syntax error: {exc.message}", where=f"{source}:{exc.lineno}") from None
        except jinja2.UndefinedError as exc:
            raise UserError(f"template uses an undefined value: {exc.message}", where=source,
                            hint="available: " + ", ".join(sorted(context))) from None
        except jinja2.exceptions.SecurityError as exc:
            raise UserError(f"template refused by the sandbox: {exc}", where=source) from None
        manifests.extend(Manifest(source, obj) for obj in _parse(text, source))
    if not manifests:
        raise UserError("the templates rendered no objects", where=str(directory))
    return manifests


def stamp(manifests: list[Manifest], *, image: ImageRef, forced_reason: str | None) -> None:
    """Annotations every Deployment carries whatever the template says: the digest and, if forced, why."""
    for m in manifests:
        if m.kind != "Deployment":
            continue
        meta = m.obj.setdefault("metadata", {})
        annotations = meta.get("annotations") or {}
        annotations["mlci.dev/image-digest"] = image.digest
        if forced_reason is not None:
            annotations["mlci.dev/forced"] = "true"
            annotations["mlci.dev/force-reason"] = forced_reason
        meta["annotations"] = annotations


def dump(manifests: list[Manifest]) -> str:
    """Multi-document YAML of the objects (what is printed and what kubectl applies).

    Every string is double-quoted: kubectl's YAML 1.1 parser reads a bare `y`, `on` or `1e3` as a bool or
    number, so plain scalars could change type between what was validated here and what the cluster gets.
    """
    return "".join("---\n" + yaml.dump(m.obj, Dumper=_QuotedDumper, sort_keys=False, allow_unicode=True,
                                        default_flow_style=False, width=2**31)
                   for m in manifests)
