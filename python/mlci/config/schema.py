"""The ml-ci.yaml schema: every key, its type, default and doc, in one place.

The README's reference table and the Jenkins steps' help pages are generated from this module
(`mlci config docs`), so documentation cannot drift from what is validated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..units import QUANTITY
from .spec import AnyOf, Bool, Ctx, ListOf, MapOf, Node, Num, Obj, RelPath, Str

DNS_LABEL = r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"
DNS_DOC = "a DNS label: lowercase letters, digits and '-', at most 63 characters"
S3_URI = r"s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9](/[^\s]*)?"
S3_DOC = "an s3://bucket/prefix URI"
CALLABLE = r"[A-Za-z_][\w.]*:[A-Za-z_]\w*"
CALLABLE_DOC = "module:callable, e.g. digits_service.inference:predict"
SHA256 = r"[0-9a-f]{64}"
CRON = r"(@(hourly|daily|midnight|weekly|monthly|yearly|annually))|(\S+(\s+\S+){4})"
CRON_DOC = "a Jenkins cron spec with five fields, e.g. 'H 2 * * *'"

# Metrics a gate can name. Higher-is-better metrics take `min`, lower-is-better ones take `max`.
PROPORTION_METRICS = ("accuracy", "precision", "recall")
HIGHER_BETTER = (*PROPORTION_METRICS, "f1", "macro_f1", "auc")
LOWER_BETTER = ("mae", "rmse", "latency_p50", "latency_p95")
METRICS = HIGHER_BETTER + LOWER_BETTER
OUTPUTS = ("labels", "scores", "probabilities")  # what a predict function returns per sample
BOUNDED_METRICS = HIGHER_BETTER  # all lie in [0, 1]
CHANGE_METRICS = ("accuracy", "precision", "recall", "f1", "macro_f1", "auc", "mae", "rmse")  # baseline measurable

STAGES = ("build", "unit", "acceptance", "accuracy", "deploy")
JSON_POINTER = r"(/[^/]*)*"
JSON_POINTER_DOC = 'a JSON pointer (RFC 6901): "" for the whole document, or /key/0/...'


@dataclass
class JsonValue(Node):
    """Any JSON value (a request template): its structure is the service's, checked when the suite runs."""

    def expected(self) -> str:
        return "a JSON value (mapping, list, string, number)"

    def check(self, value: Any, path: str, ctx: Ctx) -> Any:
        return value


def endpoint_fields(defaults: bool) -> dict[str, Node]:
    """`accuracy.endpoint` (with defaults) and a suite's `endpoint` (no defaults: its keys override the former)."""
    def d(value: Any) -> dict[str, Any]:
        return {"default": value} if defaults else {}

    return {
        "path": Str(pattern=r"/\S*", pattern_doc="a path starting with /", **d("/predict"),
                    doc="The service's prediction route (POSTed a JSON body)."),
        "method": Str(choices=("POST", "PUT"), **d("POST"), doc="HTTP method of a prediction request."),
        "request": JsonValue(doc='JSON body template. A string "$name" is replaced by the sample\'s field `name` (an '
                             'input column of the dataset, or `$id`); "$$x" is the literal "$x". With `batch: true` '
                             'the template holds one {"$each": ITEM}: the list of ITEM per sample of the batch, e.g. '
                             '{"inputs": {"$each": "$x"}}.'),
        "response": Str(pattern=JSON_POINTER, pattern_doc=JSON_POINTER_DOC, **d(""),
                        doc="JSON pointer to the prediction in a response (batch: to the list of per-sample results), "
                        "e.g. /predictions/0."),
        "item": Str(pattern=JSON_POINTER, pattern_doc=JSON_POINTER_DOC, **d(""),
                    doc="Batch: JSON pointer to the prediction inside each per-sample result, e.g. /label."),
        "batch": Bool(**d(False), doc="One request per batch (`accuracy.batch_size` samples) instead of one per "
                      "sample. Suites with a latency gate always send one request per sample."),
        "timeout": Num(min=0, exclusive=True, **d(30), doc="Seconds a request may take."),
        "retries": Num(integer=True, min=0, max=10, **d(2),
                       doc="Retries of a request that failed to connect, timed out or got HTTP 5xx; what still fails "
                       "is the sample's prediction error (accuracy.on_error)."),
        "concurrency": Num(integer=True, min=1, max=64, **d(4),
                           doc="Requests in flight per engine worker (the service sees up to workers x concurrency)."),
    }


serve = Obj(
    doc="How the service is started and probed.",
    fields={
        "command": Str(doc="Command to start the service; default the image's CMD."),
        "port": Num(integer=True, default=8080, min=1, max=65535, doc="Port the service listens on."),
        "health": Str(default="/healthz", pattern=r"/\S*", pattern_doc="a path starting with /",
                      doc="Health endpoint path."),
        "timeout": Num(integer=True, default=60, min=1, doc="Seconds to wait for health."),
    },
)

gate = Obj(
    doc="A gate: PASS only when the evidence says the metric clears the threshold.",
    fields={
        "metric": AnyOf(
            required=True,
            options=(Str(choices=METRICS),
                     Obj(doc="A custom per-sample score.", fields={
                         "score": Str(required=True, pattern=CALLABLE, pattern_doc=CALLABLE_DOC,
                                      doc="score(prediction, label) -> a number in [0, 1] per sample, imported "
                                      "inside the image like predict (e.g. exact match, IoU >= 0.5, 1 - WER clipped)."),
                     })),
            doc="Metric to gate on: a built-in name, or `{score: module:callable}` for a custom per-sample score "
            "in [0, 1] (higher is better, gated with `min` by the anytime-valid betting test and shown by the "
            "callable's name).",
        ),
        "kind": Str(
            default="absolute",
            choices=("absolute", "change"),
            doc="`absolute`: metric >= min (or <= max). `change`: non-inferior to the baseline model by `margin` "
            "(metric units; and `relative_margin`), paired on the same samples: accuracy by McNemar's test (sequential "
            "in a sequential suite), any other metric (auc, f1, macro_f1, precision, recall, mae, rmse) by a paired "
            "BCa bootstrap at the final look.",
        ),
        "min": Num(min=0, doc="Threshold for higher-is-better metrics (accuracy, precision, recall, f1, auc)."),
        "max": Num(min=0, doc="Threshold for lower-is-better metrics (mae, rmse, latency_p50/p95 in ms)."),
        "margin": Num(
            default=0.02,
            min=0,
            exclusive=True,
            doc="Indifference zone, in the metric's units: a model at min + margin (max - margin) must pass with "
            "probability >= 1 - beta. Below 1 for metrics in [0, 1].",
        ),
        "bound": Num(min=0, exclusive=True,
                     doc="mae: the largest absolute error a sample counts with (same units as the labels). Each "
                     "error is clipped at it and divided by it, which makes the gate an anytime-valid betting test "
                     "on the clipped MAE (equal to the MAE when no error exceeds the bound; the record counts those "
                     "that do). Without it an mae gate is judged once by a BCa bootstrap."),
        "alpha": Num(default=0.05, min=0, max=0.5, exclusive=True, doc="Risk of passing a model below the threshold."),
        "beta": Num(default=0.10, min=0, max=0.5, exclusive=True, doc="Risk of failing a model at threshold + margin."),
        "class": AnyOf(
            options=(Str(), Num(integer=True)),
            doc="For precision/recall/f1: the class label (or its name from `accuracy.labels`) to gate on "
            "(default: micro-averaged / macro for f1).",
        ),
        "relative_margin": Num(min=0, max=1, exclusive=True,
                               doc="Change gates on metrics other than accuracy: the candidate may also be worse by "
                               "at most this fraction of the baseline's value (both margins must hold, like MLflow's "
                               "min_absolute_change and min_relative_change together)."),
        "discordance": Num(min=0, max=1, exclusive=True,
                           doc="Change gates: the share of samples on which candidate and baseline are expected to "
                           "disagree (one right, one wrong); plans the fixed n the cap must hold. Default 0.1."),
    },
)

slices = Obj(
    default=None,
    doc="Judge every gate per slice of the sample (document type, country, a size range): the sample is stratified "
    "by slice, each slice gets its quota, the family-wise risk over the slices is held (Holm, or a split you give), and "
    "the suite PASSes only when every slice passes (accuracy/slicing.py). Omit for one verdict over the whole sample.",
    fields={
        "field": Str(required=True, doc="Dataset column (npz: array) naming each sample's slice, one value per row; "
                     "with `bins` a numeric column cut into ranges."),
        "bins": ListOf(item=Num(), min_items=1, doc="Ascending edges cutting a numeric `field` into len(bins) + 1 "
                       "slices: below the first edge, [edge_i, edge_i+1), and at or above the last."),
        "labels": ListOf(item=Str(), doc="Names of the `bins` slices, in order (len(bins) + 1 of them); default "
                         "'<a', '[a, b)', '>=b'."),
        "min_samples": Num(integer=True, default=100, min=1,
                           doc="A slice with fewer rows than this in the dataset is INCONCLUSIVE (the suite then "
                           "cannot PASS); a slice PASSes only on at least this many samples; a max_samples too small "
                           "to give every slice this many is refused."),
        "alpha_split": Str(default="holm", choices=("holm", "weights"),
                           doc="Family-wise risk over the slices: `holm` (Holm's step-down on the per-slice "
                           "p-values; weighted by `weights` if given) or `weights` (slice s tested at alpha * w_s / "
                           "sum(w), and beta likewise: weighted Bonferroni fixed in advance)."),
        "weights": MapOf(value=Num(min=0, exclusive=True), key_pattern=r".{1,200}", key_doc="a slice name",
                         int_keys=True,
                         doc="Relative share of alpha and beta per slice name (every slice needs one with "
                         "`alpha_split: weights`); default equal."),
        "allocation": Str(default="equal", choices=("equal", "proportional"),
                          doc="How the suite's samples (max_samples, else the dataset) are split: `equal` per slice "
                          "(suits one threshold for all), or `proportional` to slice size; at least `min_samples` "
                          "each, never more than a slice has."),
    },
)

suite = Obj(
    doc="An accuracy suite: a dataset, a sample policy, gates, where and when it runs.",
    fields={
        "dataset": Str(required=True, doc="Name of a dataset under `artifacts.data`, or a local file path."),
        "every_build": Bool(default=False, doc="Run on every build (the smoke suite)."),
        "max_samples": Num(integer=True, min=1, doc="Cap on samples drawn; at the cap the verdict is INCONCLUSIVE."),
        "sequential": Bool(default=True, doc="Sequential test (stops as soon as the evidence suffices) vs exact fixed n."),
        "batch_size": Num(integer=True, min=1, max=100000, doc="Samples per batch (per pytest item); default accuracy.batch_size."),
        "gates": ListOf(item=gate, doc="Gates; PASS only when every gate passes."),
        "slices": slices,
        "schedule": Str(pattern=CRON, pattern_doc=CRON_DOC, doc="Cron schedule for the heavy run on integration branches."),
        "branches": ListOf(item=Str(), doc="Branches (globs) where the schedule applies; default pipeline.integration_branches."),
        "shards": Num(integer=True, default=1, min=1, max=64, doc="Jenkins agents the suite is split across."),
        "agent": Str(doc="Jenkins agent label for this suite's shards (e.g. gpu); default pipeline.agent."),
        "seed": Num(integer=True, min=0, doc="Fixed sample seed; default is derived from the git commit."),
        "timeout": Num(integer=True, default=60, min=1, doc="Minutes before the suite is aborted."),
        "checks": ListOf(item=Str(), doc="Team pytest files/dirs (repo-relative) run in the same session; the "
                         "`mlci_sample` fixture gives them the drawn sample and its predictions. A failing check fails the suite."),
        "predict": Str(pattern=CALLABLE, pattern_doc=CALLABLE_DOC, doc="This suite's predict function; default "
                       "`accuracy.predict`."),
        "load": Str(pattern=CALLABLE, pattern_doc=CALLABLE_DOC, doc="This suite's model loader; default `accuracy.load`."),
        "output": Str(choices=OUTPUTS, doc="What this suite's predict returns; default `accuracy.output`."),
        "threshold": Num(doc="This suite's decision threshold; default `accuracy.threshold`."),
        "endpoint": Obj(default=None, fields=endpoint_fields(defaults=False),
                        doc="This suite's endpoint settings where they differ from `accuracy.endpoint` (setting any "
                        "key tests this suite through the served HTTP API)."),
    },
)

dataset = Obj(
    doc="A labelled test set: one file, or a folder of files with a labels table.",
    fields={
        "uri": Str(required=True, doc="s3://... object (a folder: its manifest), or a path relative to the service "
                   "repo (a file or a folder); `mlci data add NAME PATH` uploads one and writes uri and sha256."),
        "sha256": Str(pattern=SHA256, pattern_doc="64 lowercase hex digits",
                      doc="Expected content digest (verified on pull); a folder's is its manifest's."),
        "format": Str(choices=("npz", "csv", "jsonl", "parquet", "folder"),
                      doc="File format; default from the file extension (a directory is a folder). Parquet needs "
                      "pyarrow in the image (add it to requirements.txt)."),
        "inputs": ListOf(item=Str(), doc="Input column(s) (arrays for npz): one name, a list, or '*' for every column "
                         "but the label, the id and `exclude`; default `x` (a folder: its `files` columns)."),
        "exclude": ListOf(item=Str(), doc="With `inputs: '*'`: further columns that are not inputs (timestamps, "
                          "notes)."),
        "label": Str(default="y", doc="Column (array for npz) holding the labels."),
        "id": Str(doc="Column holding a stable sample id; default the row number (npz: an `id` array if present)."),
        "group": Str(doc="Column (array for npz) naming each sample's group: augmented copies of one sample, pages of "
                     "one document, rows of one patient. Samples of a group are drawn together and every gate is "
                     "judged on groups, not samples (README: Grouped samples)."),
        "batch_as": Str(default="auto", choices=("auto", "records", "array", "columns"),
                        doc="What predict receives per batch: `records` a list of {column: value}; `array` a 2-D "
                        "numpy array (rows x numeric input columns); `columns` {column: values}; `auto` the values "
                        "of a single input column (npz/Parquet numbers as a numpy array), records for several."),
        "files": ListOf(item=Str(), default=["file"],
                        doc="Folder: the labels-table column(s) naming each sample's file, relative to the folder."),
        "read": Str(default="path", choices=("path", "bytes", "text"),
                    doc="Folder: predict gets each file as a local path, its bytes, or its UTF-8 text."),
        "labels": Str(doc="Folder: the labels table inside it (.csv, .jsonl or .parquet); default the one "
                      "labels.csv/labels.jsonl/labels.parquet at its top."),
    },
)

quantity = AnyOf(options=(Str(pattern=QUANTITY, pattern_doc="a quantity such as 100m, 2, 128Mi or 1G"), Num(min=0)))
resources = Obj(
    fields={
        "requests": MapOf(value=quantity, key_pattern=r"cpu|memory|ephemeral-storage",
                          key_doc="cpu, memory or ephemeral-storage", doc="Resource requests."),
        "limits": MapOf(value=quantity, key_pattern=r"cpu|memory|ephemeral-storage|nvidia\.com/gpu",
                        key_doc="cpu, memory, ephemeral-storage or nvidia.com/gpu", doc="Resource limits."),
    },
    doc="Kubernetes resources.",
)

LABEL_KEY = (r"([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
             r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")
LABEL_KEY_DOC = "a Kubernetes label key, e.g. nvidia.com/gpu.product or pool"
LABEL_VALUE = r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?"
LABEL_VALUE_DOC = "a label value (quoted in YAML): at most 63 letters, digits, '-', '_', '.'"

# Where pods may run (GPU pools, tainted nodes): the same keys for the deployed service and the training Job.
node_selector = MapOf(value=Str(pattern=LABEL_VALUE, pattern_doc=LABEL_VALUE_DOC), key_pattern=LABEL_KEY,
                      key_doc=LABEL_KEY_DOC, doc="Pod nodeSelector: node labels the pod must run on.")
tolerations = ListOf(
    doc="Pod tolerations, e.g. for a tainted GPU node pool.",
    item=Obj(
        doc="One toleration.",
        fields={
            "key": Str(pattern=LABEL_KEY, pattern_doc=LABEL_KEY_DOC, doc="Taint key; omit with Exists for all."),
            "operator": Str(default="Equal", choices=("Equal", "Exists")),
            "value": Str(pattern=LABEL_VALUE, pattern_doc=LABEL_VALUE_DOC, doc="Taint value (operator Equal)."),
            "effect": Str(choices=("NoSchedule", "PreferNoSchedule", "NoExecute"), doc="Taint effect; omit for all."),
            "seconds": Num(integer=True, min=0, doc="tolerationSeconds (effect NoExecute only)."),
        },
    ),
)

environment = Obj(
    doc="A deploy target.",
    fields={
        "branch": Str(required=True, doc="Branch whose builds deploy here."),
        "namespace": Str(required=True, pattern=DNS_LABEL, pattern_doc=DNS_DOC, doc="Kubernetes namespace."),
        "approval": Bool(default=False, doc="Require a person's approval (Jenkins `input`) before deploying."),
        "approvers": Str(doc="Comma-separated Jenkins users/groups allowed to approve."),
        "approval_timeout": Num(integer=True, default=60, min=1, doc="Minutes to wait for approval."),
        "context": Str(doc="kubeconfig context; default the current context."),
        "kubeconfig_credentials": Str(doc="Jenkins file-credentials id holding the kubeconfig."),
        "replicas": Num(integer=True, default=1, min=0, max=1000, doc="Deployment replicas."),
        "resources": resources,
        "node_selector": node_selector,
        "tolerations": tolerations,
        "env": MapOf(value=Str(), key_pattern=r"[A-Za-z_][A-Za-z0-9_]*", key_doc="an environment variable name",
                     doc="Environment variables for the service container."),
        "hpa": Obj(
            default=None,
            doc="HorizontalPodAutoscaler (omit for none).",
            fields={
                "min": Num(integer=True, default=1, min=1),
                "max": Num(integer=True, required=True, min=1),
                "cpu": Num(integer=True, default=80, min=1, max=100, doc="Target CPU utilisation %."),
            },
        ),
        "pdb": Obj(
            default=None,
            doc="PodDisruptionBudget (omit for none).",
            fields={"min_available": AnyOf(options=(Num(integer=True, min=0), Str(pattern=r"\d{1,3}%")), required=True)},
        ),
    },
)

# --- train: training in the pipeline -------------------------------------------------------------
TRAIN_TAG_DOC = "a tag pattern with {service} and {n}, e.g. {service}-model-{n}"
train_section = Obj(
    default=None,
    doc="Training in the pipeline: `mlci train` builds the training image, runs it, evaluates the new model "
    "against the current one and publishes it only on PASS (omit to disable).",
    fields={
        "image": Str(doc="Training image repository; default `mlci/<service>-train`."),
        "dockerfile": RelPath(default="training/Dockerfile", doc="Training Dockerfile relative to the repo (may differ "
                          "from the serving image's)."),
        "context": RelPath(default=".", doc="Build context relative to the repo; its files are the `code` of the run cache."),
        "base": Str(doc="BASE_IMAGE build argument for the training image (e.g. a CUDA image); default "
                    "`image.base`; $MLCI_BASE_IMAGE (an agent's mirror) wins, as for `mlci build`."),
        "build_args": MapOf(value=Str(), key_pattern=r"[A-Za-z_][A-Za-z0-9_]*", key_doc="a build-arg name",
                            doc="Extra build arguments (never secrets)."),
        "requirements": RelPath(default="requirements.txt",
                            doc="Requirements of the training code, built into a host wheelhouse and installed "
                            "offline (SERVICE_WHEELS build arg, as for the service image)."),
        "command": Str(required=True, doc="Shell command run in the training image from /workspace. Model files go to "
                       "$MLCI_TRAIN_OUT; inputs are $MLCI_DATA_<NAME> (and under $MLCI_TRAIN_DATA); parameters "
                       "file is $MLCI_TRAIN_PARAMS."),
        "inputs": ListOf(item=Str(), doc="Names of datasets under `artifacts.data` (each needs a `sha256`): pulled "
                         "verified, pinned by digest, recorded."),
        "params": RelPath(doc="Parameters file (YAML/JSON) relative to the repo; its digest keys the run cache and its "
                      "content goes into the training record."),
        "outputs": ListOf(item=RelPath(pattern=r"[A-Za-z0-9_.][A-Za-z0-9_.\-/]*", pattern_doc="a relative file name"),
                          min_items=1, required=True,
                          doc="Model files the command writes under $MLCI_TRAIN_OUT; published as "
                          "`artifacts.models.dest/<file>`."),
        "resources": resources,
        "node_selector": node_selector,
        "tolerations": tolerations,
        "timeout": Num(default=60, min=0, exclusive=True,
                       doc="Minutes before the training run is stopped (exit 1); fractions allowed."),
        "runner": Str(default="local", choices=("local", "kubernetes"),
                      doc="`local`: the Docker engine of the (labelled) agent; `kubernetes`: a Job (long/GPU runs), "
                      "outputs come back through S3."),
        "agent": Str(doc="Jenkins agent label for the train step (e.g. gpu); default `pipeline.agent`."),
        "namespace": Str(default="default", pattern=DNS_LABEL, pattern_doc=DNS_DOC,
                         doc="Kubernetes namespace of the training Job (runner: kubernetes)."),
        "context_name": Str(doc="kubeconfig context for the Job; default the current context."),
        "image_pull_policy": Str(default="IfNotPresent", choices=("Always", "IfNotPresent", "Never"),
                                 doc="imagePullPolicy of the Job's container."),
        "image_pull_secret": Str(doc="Name of a Kubernetes docker-registry secret for pulling the training image."),
        "service_account": Str(doc="Kubernetes service account of the Job (e.g. one bound to an S3 IAM role)."),
        "kubeconfig_credentials": Str(doc="Jenkins file-credentials id holding the kubeconfig for the Job (runner: "
                                      "kubernetes)."),
        "cache": Str(pattern=S3_URI, pattern_doc=S3_DOC,
                     doc="Run cache and Job outputs location; default `<artifacts.remote>/train`."),
        "evaluate": Str(doc="Accuracy suite that judges the new model against the current one (its change gates "
                        "are paired on the same samples); required to publish."),
        "schedule": Str(pattern=CRON, pattern_doc=CRON_DOC, doc="Cron schedule for retraining in Jenkins."),
        "branches": ListOf(item=Str(), doc="Branches (globs) where mlPipeline trains (timer builds on train.schedule, "
                           "user builds that ask for it); default pipeline.integration_branches."),
        "in_pipeline": Bool(default=False, doc="true: mlPipeline runs a Train stage after Accuracy on timer builds of "
                            "`branches` (train.schedule joins the job's cron) and on user builds that ask for it "
                            "(mlPipeline(train: true) or the MLCI_TRAIN build parameter); never on pull requests."),
        "git_credentials": Str(doc="Jenkins username/password (token) credentials id for pushing the model branch and "
                               "tag, bound with gitUsernamePassword; default the agent's own git setup."),
        "publish": Obj(
            doc="What a PASS publishes: model upload + lock update, training record, git branch + tag, pull request.",
            fields={
                "record": Str(default="training.json", doc="Training record written next to the dependency file."),
                "branch_prefix": Str(default="mlci/train/", doc="Branch `<prefix><service>-model-<n>` holding the commit."),
                "tag": Str(default="{service}-model-{n}", pattern=r".*\{n\}.*", pattern_doc=TRAIN_TAG_DOC,
                           doc="Tag pattern; `{n}` is one more than the highest existing tag."),
                "remote": Str(default="origin", doc="Git remote the branch and tag are pushed to (skipped if absent)."),
                "push": Bool(default=True, doc="Push the branch and tag to `remote`."),
                "pull_request": Bool(default=True, doc="Open a PR through `report.post` when a token is configured "
                                     "(MLCI_REPORT_TOKEN); body = the accuracy report."),
                "base_branch": Str(doc="PR target branch; default the current branch."),
            },
        ),
    },
)

SCHEMA = Obj(
    doc="ml-ci.yaml",
    fields={
        "version": Num(integer=True, default=1, min=1, max=1, doc="Schema version of this file."),
        "service": Str(required=True, pattern=DNS_LABEL, pattern_doc=DNS_DOC, doc="Service name; names images and deployments."),
        "image": Obj(
            doc="The service image.",
            fields={
                "name": Str(doc="Image repository, e.g. registry.example.com/ml/digits; default `mlci/<service>`."),
                "dockerfile": RelPath(default="Dockerfile", doc="Dockerfile path relative to the repo."),
                "context": RelPath(default=".", doc="Build context relative to the repo."),
                "base": Str(default="python:3.11-slim", doc="BASE_IMAGE build argument."),
                "build_args": MapOf(value=Str(), key_pattern=r"[A-Za-z_][A-Za-z0-9_]*", key_doc="a build-arg name",
                                    doc="Extra build arguments (never secrets: use the secret mounts)."),
                "push": Bool(default=False, doc="Push after build (needs a registry)."),
                "registry_credentials": Str(doc="Jenkins credentials id for the registry (username/password)."),
            },
        ),
        "artifacts": Obj(
            doc="Models and data in S3.",
            fields={
                "remote": Str(pattern=S3_URI, pattern_doc=S3_DOC, doc="Default remote for models and data."),
                "cache": Str(default="~/.cache/mlci", doc="Local content-addressed cache, shared by builds on one agent."),
                "jobs": Num(integer=True, default=8, min=1, max=64, doc="Parallel downloads."),
                "credentials": Str(doc="Jenkins credentials id for S3 (AWS key pair); default the agent's IAM role."),
                "models": Obj(
                    doc="The model dependency file.",
                    fields={
                        "lock": RelPath(default="models.lock", doc="Dependency file: mlci lock, a .dvc file, a glob of .dvc files (models/*.dvc) or dvc.lock."),
                        "dest": RelPath(default="models/", doc="Where model files are placed, relative to the repo."),
                    },
                ),
                "data": MapOf(value=dataset, doc="Named test sets."),
            },
        ),
        "tests": Obj(
            doc="Tests that run inside the built image.",
            fields={
                "unit": Obj(
                    default=None,
                    doc="Unit tests (omit to skip the stage).",
                    fields={
                        "command": Str(required=True, doc="Command run in the image; JUnit XML goes to $MLCI_JUNIT."),
                        "timeout": Num(integer=True, default=30, min=1, doc="Minutes."),
                    },
                ),
                "acceptance": Obj(
                    default=None,
                    doc="Acceptance tests against the running service (omit to skip).",
                    fields={
                        "command": Str(required=True, doc="Command run in a second container; the service URL is $MLCI_SERVICE_URL."),
                        "timeout": Num(integer=True, default=30, min=1, doc="Minutes."),
                        "serve": serve,
                    },
                ),
            },
        ),
        "accuracy": Obj(
            doc="Sample-based accuracy tests.",
            fields={
                "predict": Str(pattern=CALLABLE, pattern_doc=CALLABLE_DOC, doc="Batch predict function (runs in the image)."),
                "load": Str(pattern=CALLABLE, pattern_doc=CALLABLE_DOC, doc="Optional model loader, run once per worker."),
                "batch_size": Num(integer=True, default=64, min=1, max=100000, doc="Samples per batch."),
                "workers": AnyOf(options=(Str(choices=("auto",)), Num(integer=True, min=1, max=256)), default="auto",
                                 doc="pytest-xdist workers: auto or a number."),
                "output": Str(default="labels", choices=OUTPUTS,
                              doc="What predict returns per sample: `labels` (a class label), `scores` (one number, "
                              "the positive class's score of a binary problem) or `probabilities` (one probability "
                              "per class, in `classes` order). Every metric reads the labels this implies (threshold "
                              "or argmax); AUC reads the scores."),
                "threshold": Num(default=0.5, doc="Decision threshold of a binary `scores`/`probabilities` output: the "
                                 "positive class is predicted when its score >= threshold. Recorded and shown."),
                "classes": ListOf(item=AnyOf(options=(Str(), Num(integer=True))),
                                  doc="Class labels in the model's column order (probabilities; for binary outputs the "
                                  "second is the positive class); default the dataset's labels sorted, numbers "
                                  "numerically (scikit-learn's order)."),
                "labels": MapOf(value=Str(), int_keys=True, key_pattern=r"[^\s].{0,99}", key_doc="a class label",
                                doc="Display names of classes, e.g. {0: stays, 1: churns}: shown in reports and "
                                "usable as a gate's `class`."),
                "on_error": Str(default="fail", choices=("fail", "count_wrong", "exclude"),
                                doc="Samples whose predict raised or returned None/NaN: `fail` fails the suite; "
                                "`count_wrong` counts them as wrong predictions in gates and metrics alike; `exclude` "
                                "leaves them out of the estimates, but a gate passes only if it also passes with them "
                                "counted wrong (and fails only if it also fails with them counted right)."),
                "max_error_rate": Num(default=0.02, min=0, max=1,
                                      doc="on_error exclude: share of the drawn samples that may be excluded; past it "
                                      "the suite stops INCONCLUSIVE."),
                "inconclusive": Str(default="unstable", choices=("unstable", "fail"),
                                    doc="What an INCONCLUSIVE verdict does to the Jenkins build."),
                "endpoint": Obj(default=None, fields={
                    **endpoint_fields(defaults=True),
                    "serve": Obj(default=None, fields=serve.fields,
                                 doc="How the service is started for the suite; default `tests.acceptance.serve`."),
                }, doc="Endpoint mode: the accuracy stage starts the service as the acceptance stage does and sends "
                    "the sampled inputs to its HTTP API instead of calling `predict` in the image (any language)."),
                "suites": MapOf(value=suite, doc="Named suites."),
            },
        ),
        "report": Obj(
            doc="Reports, history and pull-request comments.",
            fields={
                "history": Str(pattern=S3_URI, pattern_doc=S3_DOC, doc="History store for accuracy records."),
                "baseline_branch": Str(default="main", doc="Branch whose latest PASS record is the baseline."),
                "reuse": Bool(default=True, doc="Reuse a PASS record when model, data and code digests all match."),
                "post": Obj(
                    doc="Pull-request comments.",
                    fields={
                        "provider": Str(choices=("github", "gitlab", "bitbucket")),
                        "repo": Str(doc="owner/name (GitHub, Bitbucket) or project path (GitLab)."),
                        "url": Str(doc="API base URL for self-hosted GitHub Enterprise / GitLab / Bitbucket."),
                        "token_credentials": Str(doc="Jenkins secret-text credentials id for the token."),
                    },
                ),
            },
        ),
        "deploy": Obj(
            doc="Kubernetes deploys.",
            fields={
                "templates": RelPath(doc="Directory of Jinja2 manifest templates; default the built-in Deployment/Service."),
                "rollout_timeout": Num(integer=True, default=300, min=1, doc="Seconds to wait for the rollout."),
                "kubernetes_version": Str(default="1.30", pattern=r"1\.\d{2}", pattern_doc="major.minor, e.g. 1.30",
                                          doc="Kubernetes version whose schemas rendered manifests are validated against (offline)."),
                "unvalidated_kinds": ListOf(item=Str(), doc="Kinds with no offline schema (CRDs, e.g. ServiceMonitor) that may be "
                                            "applied unvalidated; any other kind without a schema is refused."),
                "service_type": Str(default="ClusterIP", choices=("ClusterIP", "NodePort", "LoadBalancer"),
                                    doc="Type of the built-in Service."),
                "service_port": Num(integer=True, default=80, min=1, max=65535, doc="Port of the built-in Service."),
                "environments": MapOf(value=environment, key_pattern=DNS_LABEL, key_doc=DNS_DOC, doc="Deploy targets."),
            },
        ),
        "train": train_section,
        "drift": Obj(
            doc="Production drift monitoring: `mlci drift check` and the `driftCheck` Jenkins step.",
            fields={
                "reference": Str(doc="Reference statistics (`mlci drift reference` output): s3://... or a repo-relative "
                                 "path; default the one named by the training record (`mlci train` publishes it)."),
                "reference_input": Str(doc="Which of `train.inputs` `mlci train` computes the published reference "
                                       "from; default the first."),
                "logs": Str(pattern=S3_URI, pattern_doc=S3_DOC,
                            doc="Prefix of production request/prediction logs, partitioned by date (dt=YYYY-MM-DD/)."),
                "format": Str(default="auto", choices=("auto", "jsonl", "csv"),
                              doc="Log format; `auto` goes by extension (.jsonl/.json/.ndjson/.csv, optionally .gz)."),
                "window": Str(default="7d", pattern=r"[1-9][0-9]{0,3}[hd]", pattern_doc="a number and h or d, e.g. 7d",
                              doc="How far back the check reads, ending now (whole dt= partitions that overlap)."),
                "sample_cap": Num(integer=True, default=50000, min=100, max=10000000,
                                  doc="Rows kept from the window (uniform sample without replacement when more)."),
                "min_rows": Num(integer=True, default=200, min=1,
                                doc="Fewer rows in the window make the check INCONCLUSIVE (exit 3)."),
                "alpha": Num(default=0.05, min=0, max=0.5, exclusive=True,
                             doc="Family-wise false-alarm level per check across all features (Holm correction)."),
                "psi": Num(default=0.2, min=0, exclusive=True,
                           doc="PSI a feature must reach (besides significance) to count as drifted."),
                "max_missing_increase": Num(default=0.05, min=0, max=1,
                                            doc="Absolute rise of a feature's missing rate that counts as drift."),
                "max_out_of_range": Num(default=0.05, min=0, max=1,
                                        doc="Share of numeric values outside the reference [min, max] that counts as drift."),
                "exclude": ListOf(item=Str(), doc="Reference columns never checked (ids, timestamps)."),
                "features": MapOf(
                    key_pattern=r"[A-Za-z0-9_][A-Za-z0-9_.\-\[\]]*",
                    key_doc="a column name (nested fields flattened with '.', list items as name.0)",
                    doc="Per-feature settings; default every reference column, kind as in the reference, global thresholds.",
                    value=Obj(
                        doc="One feature.",
                        fields={
                            "kind": Str(choices=("numeric", "categorical"), doc="Override the kind inferred from the data."),
                            "psi": Num(min=0, exclusive=True, doc="PSI threshold for this feature (default drift.psi)."),
                            "max_missing_increase": Num(min=0, max=1, doc="Default drift.max_missing_increase."),
                            "max_out_of_range": Num(min=0, max=1, doc="Default drift.max_out_of_range."),
                        },
                    ),
                ),
                "prediction": Obj(
                    doc="The model output in the logs (prediction drift).",
                    fields={
                        "field": Str(default="prediction", doc="Log field holding the prediction (label or score)."),
                        "kind": Str(choices=("numeric", "categorical"),
                                    doc="Labels are categorical, scores numeric; default inferred."),
                        "reference_field": Str(doc="Dataset field whose distribution is the prediction reference "
                                                   "(default the dataset's label)."),
                    },
                ),
                "schedule": Str(default="H 3 * * *", pattern=CRON, pattern_doc=CRON_DOC,
                                doc="Cron schedule of the driftCheck job."),
                "branches": ListOf(item=Str(), default=["main"], doc="Branches (globs) where the schedule applies."),
                "retrain": Obj(
                    doc="What a detected drift starts.",
                    fields={
                        "job": Str(doc="Jenkins job (full name, folders with '/') started on drift; none: report only."),
                        "parameters": MapOf(value=Str(), key_pattern=r"[A-Za-z_][A-Za-z0-9_]*",
                                            key_doc="a Jenkins parameter name",
                                            doc="Extra build parameters (DRIFT_REASON, DRIFT_FEATURES are always set)."),
                        "url": Str(doc="Jenkins URL for triggering from outside Jenkins; default $JENKINS_URL."),
                    },
                ),
            },
        ),
        "pipeline": Obj(
            doc="Branch policy and how Jenkins runs the stages.",
            fields={
                "stages": ListOf(item=Str(choices=STAGES), default=list(STAGES), doc="Stages run, in this order."),
                "agent": Str(doc="Jenkins agent label for the pipeline; default any agent but the controller."),
                "integration_branches": ListOf(item=Str(), default=["develop", "release/*"],
                                               doc="Branches where scheduled heavy suites run."),
                "stage_timeout": Num(integer=True, default=60, min=1, doc="Minutes per stage."),
                "runner": Str(default="docker", choices=("docker", "venv"),
                              doc="How Jenkins runs mlci: from the runtime image, or from a venv on the agent."),
                "runner_image": Str(doc="mlci runtime image for this service (registry/mlci:<version>); default the "
                                                 "MLCI_RUNNER_IMAGE environment variable set by the Jenkins administrator."),
            },
        ),
    },
)
