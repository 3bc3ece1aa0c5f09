"""Rendering and offline validation: built-in manifests against the real Kubernetes schemas, injection
attempts staying inert, and the rules the schemas do not encode."""

from __future__ import annotations

import socket
import textwrap

import pytest
import yaml

from mlci.config import load_config
from mlci.deploy import render, validate
from mlci.deploy.render import ImageRef, Provenance
from mlci.errors import UserError

from .conftest import COMMIT, CONFIG, DIGEST

IMAGE = ImageRef("registry.example.com/ml/digits", DIGEST)
PROV = Provenance(COMMIT, {"models/digits.npz": "sha256:" + "1" * 64})


def rendered(repo, env: str = "staging", prov: Provenance = PROV, reason: str | None = None):
    cfg = load_config(repo.config)
    manifests = render.render(cfg, env, IMAGE, prov)
    render.stamp(manifests, image=IMAGE, forced_reason=reason)
    return cfg, manifests


def by_kind(manifests):
    return {(m["kind"] if isinstance(m, dict) else m.kind): (m if isinstance(m, dict) else m.obj) for m in manifests}


def reparse(manifests):
    """What kubectl would receive, parsed back."""
    return [d for d in yaml.safe_load_all(render.dump(manifests)) if d]


@pytest.mark.parametrize("env", ["staging", "production"])
def test_builtin_manifests_pass_the_real_schemas_offline(repo, env, monkeypatch):
    def no_network(*a, **k):
        raise AssertionError("validation tried to open a socket")

    monkeypatch.setattr(socket, "socket", no_network)
    cfg, manifests = rendered(repo, env)
    notes = validate.validate(manifests, namespace=cfg["deploy"]["environments"][env]["namespace"], version="1.30")
    assert notes == []
    # every object against the strict schema of each bundled version we claim to support
    for version in ("1.28", "1.30", validate.supported_versions()[-1]):
        problems, _ = validate.check_schemas(manifests, version, [])
        assert problems == [], version
    kinds = sorted(m.kind for m in manifests)
    expected = ["Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Service"] if env == "production" \
        else ["Deployment", "Service"]
    assert kinds == expected
    pod = by_kind(reparse(manifests))["Deployment"]["spec"]["template"]["spec"]
    if env == "production":  # scheduling onto a tainted GPU pool, as kubectl receives it
        assert pod["nodeSelector"] == {"pool": "inference", "nvidia.com/gpu.present": "true"}
        assert pod["tolerations"] == [
            {"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"},
            {"operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 60}]
    else:
        assert "nodeSelector" not in pod and "tolerations" not in pod


@pytest.mark.parametrize("toleration, message", [
    ("{key: k, operator: Exists, value: v}", "operator Exists takes no value"),
    ("{value: v}", "operator Equal needs a key"),
    ("{key: k, value: v, seconds: 30}", "applies only to effect NoExecute"),
])
def test_toleration_rules_the_schemas_do_not_encode(repo, toleration, message):
    text = repo.config.read_text().replace("env: {LOG_LEVEL: info}}", f"env: {{LOG_LEVEL: info}}, tolerations: [{toleration}]}}")
    repo.config.write_text(text)
    with pytest.raises(UserError, match=message) as info:
        rendered(repo, "staging")
    assert "deploy.environments.staging.tolerations[0]" in str(info.value)


def test_node_selector_values_must_be_label_values(repo):
    from mlci.config.loader import ConfigError

    text = repo.config.read_text().replace("env: {LOG_LEVEL: info}}", "node_selector: {gpu: true}}")
    repo.config.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(repo.config)
    assert "deploy.environments.staging.node_selector.gpu" in str(info.value) and "quoted in YAML" in str(info.value)


def test_deployment_content(repo):
    cfg, manifests = rendered(repo, "staging")
    validate.validate(manifests, namespace="ml-staging", version="1.30")
    dep = by_kind(reparse(manifests))["Deployment"]
    meta, spec = dep["metadata"], dep["spec"]
    pod = spec["template"]["spec"]
    c = pod["containers"][0]
    assert meta["namespace"] == "ml-staging" and spec["replicas"] == 2
    assert c["image"] == f"registry.example.com/ml/digits@{DIGEST}"
    assert c["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert c["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert c["command"] == ["python3", "-m", "digits_service.server"]
    assert c["env"] == [{"name": "LOG_LEVEL", "value": "info"}]
    assert c["resources"] == {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}}
    assert pod["automountServiceAccountToken"] is False
    labels = spec["template"]["metadata"]["labels"]
    assert labels["mlci.dev/image"] == DIGEST[7:19] and labels["mlci.dev/commit"] == COMMIT[:12]
    assert len(labels["mlci.dev/models"]) == 12
    assert spec["selector"]["matchLabels"] == {"app.kubernetes.io/name": "digits", "app.kubernetes.io/instance": "digits"}
    ann = meta["annotations"]
    assert ann["mlci.dev/image-digest"] == DIGEST and ann["mlci.dev/commit"] == COMMIT
    assert ann["mlci.dev/models-digest"].startswith("sha256:") and "models/digits.npz" in ann["mlci.dev/models"]
    svc = by_kind(reparse(manifests))["Service"]
    assert svc["spec"]["ports"][0]["port"] == 80 and svc["spec"]["selector"] == spec["selector"]["matchLabels"]


def test_resources_defaults():
    assert render.resources_for(None) == {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}}
    # requests alone: memory is capped at the request (never a default limit below a larger request)
    assert render.resources_for({"requests": {"cpu": 2, "memory": "4Gi"}}) == {
        "requests": {"cpu": 2, "memory": "4Gi"}, "limits": {"memory": "4Gi"}}
    assert render.resources_for({"limits": {"nvidia.com/gpu": 1}})["limits"] == {"nvidia.com/gpu": 1}


def test_unusual_commit_stays_out_of_labels():
    assert render.label_value("feature/x" * 10) is None
    assert render.label_value(COMMIT) == COMMIT
    assert render.short_digest(None) is None


INJECTION = [
    'x" \nkind: Secret\nmetadata: {name: stolen}',
    "a: b",
    "{{ 7*7 }}{% raw %}",
    "--- \n- evil",
    "line1\nline2\r\n\u2028\x85end",
    "'; DROP",
    "y",
    "1e3",
    "!!python/object:os.system",
    "&anchor *anchor",
]


@pytest.mark.parametrize("value", INJECTION)
def test_injection_in_config_values_stays_one_string(repo, value):
    cfg_text = CONFIG.replace("env: {LOG_LEVEL: info}", "env: {LOG_LEVEL: info, EVIL: " + yaml.safe_dump(value,
                              default_style='"').strip() + "}")
    repo.write_config(cfg_text)
    reason = "forced: " + value
    cfg, manifests = rendered(repo, "staging", reason=reason)
    validate.validate(manifests, namespace="ml-staging", version="1.30")
    docs = reparse(manifests)
    assert [d["kind"] for d in docs] == ["Deployment", "Service"]  # no extra objects smuggled in
    dep = docs[0]
    assert dep["spec"]["template"]["spec"]["containers"][0]["env"] == [
        {"name": "LOG_LEVEL", "value": "info"}, {"name": "EVIL", "value": value}]
    assert dep["metadata"]["annotations"]["mlci.dev/force-reason"] == reason
    assert set(dep) == {"apiVersion", "kind", "metadata", "spec"}


def test_template_expressions_are_quoted_even_in_custom_templates(repo):
    tdir = repo.root / "k8s"
    tdir.mkdir()
    (tdir / "cm.yaml.j2").write_text(textwrap.dedent("""\
        apiVersion: v1
        kind: ConfigMap
        metadata:
          name: {{ name ~ "-settings" }}
          labels: {{ labels }}
        data:
          image: {{ image }}
          evil: {{ env.EVIL }}
          replicas: {{ replicas | string }}
        """))
    repo.write_config(CONFIG.replace("deploy:\n", "deploy:\n  templates: k8s\n").replace(
        "env: {LOG_LEVEL: info}", 'env: {EVIL: "v: 1\\n{{ x }}\\nkind: Secret"}'))
    cfg, manifests = rendered(repo, "staging")
    validate.validate(manifests, namespace="ml-staging", version="1.30")  # namespace filled in
    [cm] = reparse(manifests)
    assert cm["metadata"] == {"name": "digits-settings", "namespace": "ml-staging", "labels": cm["metadata"]["labels"]}
    assert cm["data"]["evil"] == "v: 1\n{{ x }}\nkind: Secret"
    assert cm["data"]["replicas"] == "2"


def custom(repo, text: str, extra_deploy: str = ""):
    tdir = repo.root / "k8s"
    tdir.mkdir(exist_ok=True)
    (tdir / "t.yaml.j2").write_text(textwrap.dedent(text))
    repo.write_config(CONFIG.replace("deploy:\n", f"deploy:\n  templates: k8s\n{extra_deploy}"))
    cfg = load_config(repo.config)
    return render.render(cfg, "staging", IMAGE, PROV)


def test_quoting_a_template_expression_twice_is_explained(repo):
    with pytest.raises(UserError, match="already emits a quoted value"):
        custom(repo, 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: "{{ name }}"}\n')


def test_template_sandbox_and_undefined(repo):
    with pytest.raises(UserError, match="undefined value"):
        custom(repo, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: {{ nope }}}\n")
    with pytest.raises(UserError, match="sandbox"):
        custom(repo, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: {{ ''.__class__.__mro__[1].__subclasses__() }}}\n")


@pytest.mark.parametrize("text, message", [
    ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: Bad_Name}\n", "not a DNS label"),
    ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: kube-system}\n", "namespace 'kube-system'"),
    ("apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n", "cluster-scoped"),
    ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {a: b}\nbogus: 1\n", "bogus"),
    ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, labels: {a: {{ '-' * 70 }}}}\n", "not a valid label value"),
    ("apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: x}\n", "unvalidated_kinds"),
    ("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n  selector: {matchLabels: {a: b}}\n"
     "  template:\n    metadata: {labels: {a: b}}\n    spec:\n      containers:\n"
     "      - {name: c, image: i, resources: {requests: {cpu: 100 m}}}\n", "not a Kubernetes quantity"),
    ("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n  replica: 2\n  selector: {matchLabels: {a: b}}\n"
     "  template:\n    metadata: {labels: {a: b}}\n    spec: {containers: [{name: c, image: i}]}\n", "replica"),
])
def test_invalid_objects_are_refused_with_every_problem(repo, text, message):
    manifests = custom(repo, text)
    with pytest.raises(UserError, match=message) as info:
        validate.validate(manifests, namespace="ml-staging", version="1.30")
    assert "nothing was applied" in str(info.value)


def test_unvalidated_kinds_opt_in(repo):
    manifests = custom(repo, "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: x}\n",
                       "  unvalidated_kinds: [Widget]\n")
    notes = validate.validate(manifests, namespace="ml-staging", version="1.30", unvalidated_kinds=["Widget"])
    assert notes and "applied unvalidated" in notes[0]


def test_hpa_without_cpu_request_is_refused(repo):
    cfg, manifests = rendered(repo, "production")
    dep = by_kind(manifests)["Deployment"]
    dep["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"].pop("cpu")
    with pytest.raises(UserError, match="requests no cpu"):
        validate.validate(manifests, namespace="ml-prod", version="1.30")


def test_unsupported_kubernetes_version(repo):
    cfg, manifests = rendered(repo, "staging")
    with pytest.raises(UserError, match="no offline schemas for Kubernetes 1.9"):
        validate.validate(manifests, namespace="ml-staging", version="1.9")


def test_namespace_must_be_a_dns_label(repo):
    from mlci.config.loader import ConfigError

    repo.write_config(CONFIG.replace("namespace: ml-staging", "namespace: 'ml staging; rm'"))
    with pytest.raises(ConfigError, match="namespace"):
        load_config(repo.config)


def test_image_ref_must_be_pinned():
    assert ImageRef.parse(f"r.example.com:5000/a/b:tag@{DIGEST}").name == "r.example.com:5000/a/b:tag"
    for bad in ("a/b:latest", "a/b@sha256:abc", f"@{DIGEST}", f"a b@{DIGEST}"):
        with pytest.raises(UserError):
            ImageRef.parse(bad)


def test_dry_run_copy_masks_secret_looking_env_but_the_applied_one_keeps_it(repo):
    from mlci.deploy.cli import printable

    repo.write_config(CONFIG.replace("env: {LOG_LEVEL: info}",
                                     "env: {LOG_LEVEL: info, API_TOKEN: abc123, DB_URL: 'postgres://u:pw@db/x'}"))
    _, manifests = rendered(repo, "staging")
    shown = by_kind(reparse(printable(manifests)))["Deployment"]["spec"]["template"]["spec"]["containers"][0]["env"]
    applied = by_kind(reparse(manifests))["Deployment"]["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {v["name"]: v["value"] for v in shown} == {"LOG_LEVEL": "info", "API_TOKEN": "***", "DB_URL": "***"}
    assert {v["name"]: v["value"] for v in applied}["API_TOKEN"] == "abc123"


def test_the_example_service_config_renders_valid_manifests():
    from ..conftest import EXAMPLE

    cfg = load_config(EXAMPLE / "ml-ci.yaml")
    for env, spec in cfg["deploy"]["environments"].items():
        manifests = render.render(cfg, env, IMAGE, PROV)
        validate.validate(manifests, namespace=spec["namespace"], version=cfg["deploy"]["kubernetes_version"])


def test_template_directory_problems(repo):
    repo.write_config(CONFIG.replace("deploy:\n", "deploy:\n  templates: k8s\n"))
    with pytest.raises(UserError, match="template directory 'k8s' not found"):
        rendered(repo)
    (repo.root / "k8s").mkdir()
    (repo.root / "k8s" / "README.md").write_text("not a template")
    with pytest.raises(UserError, match="no templates"):
        rendered(repo)
    repo.write_config(CONFIG.replace("deploy:\n", "deploy:\n  templates: ../outside\n"))
    with pytest.raises(UserError, match="escapes"):
        rendered(repo)


def test_pdb_that_blocks_every_eviction_is_flagged(repo):
    repo.write_config(CONFIG.replace("pdb: {min_available: 2}", "pdb: {min_available: 3}"))
    cfg, manifests = rendered(repo, "production")
    notes = validate.validate(manifests, namespace="ml-prod", version="1.30")
    assert len(notes) == 1 and "node drains will block" in notes[0] and "3 replica(s)" in notes[0]
