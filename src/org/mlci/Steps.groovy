package org.mlci

/**
 * Every step's arguments and help text in one place: `Steps.check` rejects unknown arguments early, and the
 * vars/<step>.txt help pages are generated from this plus the ml-ci.yaml schema (`mlci config docs`); a test
 * fails when a page drifts from either.
 */
class Steps implements Serializable {
    private static final long serialVersionUID = 1L

    static final Map<String, String> COMMON = [
        config     : 'Path of ml-ci.yaml relative to the workspace (default ml-ci.yaml, or $MLCI_CONFIG).',
        runner     : "How mlci runs: 'docker' (runtime image, Docker socket and workspace mounted) or 'venv' " +
                     '(mlci from $MLCI_VENV/bin or PATH on the agent). Default: pipeline.runner.',
        runnerImage: 'mlci runtime image for the docker runner. Default: pipeline.runner_image, else the ' +
                     'MLCI_RUNNER_IMAGE environment variable (set once by the Jenkins administrator).',
        plan       : 'The plan map from `mlci pipeline plan` (mlPipeline passes it); computed when absent.',
    ]

    static final Map<String, Map<String, String>> ARGS = [
        mlPipeline     : [
            agent        : 'Agent label for the pipeline (default pipeline.agent, else any agent but the controller).',
            triggers     : 'false: never set the job\'s cron trigger (default true: set it on integration branches).',
            jobProperties: 'Job properties (a list) set on every branch next to the cron trigger (properties() replaces all).',
            forceAccuracy: 'true: run the accuracy suites even when a stored PASS on the same model, data and inference code would be reused (`mlci test accuracy --force`).',
            train        : 'true: ask for the Train stage in a user build (default: the MLCI_TRAIN build parameter); the plan decides (train.in_pipeline, train.branches; never pull requests).',
        ],
        buildImage     : [:],
        unitTests      : [:],
        acceptanceTests: [:],
        accuracyTests  : [
            suites       : 'Names of the suites to run (a list); default the suites the plan picks for this branch and cause.',
            forceAccuracy: 'true: run even when a stored PASS on the same model, data and inference code would be reused (`mlci test accuracy --force`; sharded suites always run).',
        ],
        deploy         : [
            image      : 'Required. The image reference with digest to deploy (buildImage returns it as .image).',
            environment: 'Environment under deploy.environments; default the one whose branch is being built.',
            agent      : 'Agent label for the deploy (default pipeline.agent, else any agent but the controller).',
            records    : 'Name of a stash with .mlci/build.json and accuracy records for the promotion gate.',
        ],
        train          : [
            agent        : 'Agent label to train on (default train.agent, else pipeline.agent; never the controller).',
            force        : 'true: retrain even when the run cache holds a run with the same code, data and parameters.',
            trigger      : "Why this run happened, recorded in the training record (default 'drift' when started by " +
                           'driftCheck (DRIFT_REASON parameter), else the build cause: timer, user, push, pr).',
            triggers     : 'false: never set the job\'s cron trigger (default true: cron from train.schedule).',
            jobProperties: 'Extra job properties (a list) kept alongside the cron trigger: properties() replaces all.',
        ],
        driftCheck     : [
            agent        : 'Agent label for the check (default any agent but the controller).',
            trainJob     : 'Jenkins job started on drift (default drift.retrain.job).',
            parameters   : 'Extra build parameters for the training job (a map), on top of drift.retrain.parameters.',
            triggers     : 'false: never set the job\'s cron trigger (default true: drift.schedule on drift.branches).',
            jobProperties: 'Extra job properties (a list) kept alongside the cron trigger: properties() replaces all.',
            reference    : 'Reference statistics file or s3:// URI (default drift.reference).',
            logs         : 's3://bucket/prefix of the production logs (default drift.logs).',
            window       : 'Window such as 7d or 36h (default drift.window).',
        ],
    ]

    /** ml-ci.yaml sections documented on each step's help page. */
    static final Map<String, List<String>> CONFIG = [
        mlPipeline     : ['pipeline', 'train.in_pipeline', 'train.branches', 'train.schedule'],
        buildImage     : ['image', 'artifacts.credentials'],
        unitTests      : ['tests.unit'],
        acceptanceTests: ['tests.acceptance'],
        accuracyTests  : ['accuracy', 'report.post'],
        deploy         : ['deploy'],
        train          : ['train'],
        driftCheck     : ['drift'],
    ]

    static final Map<String, String> SUMMARY = [
        mlPipeline     : 'The whole pipeline from ml-ci.yaml: build, unit, acceptance, accuracy, deploy, per branch policy.',
        buildImage     : 'Build (and push) the service image with `mlci build`; returns [image: name@digest, record: build.json].',
        unitTests      : 'Unit tests inside the built image (`mlci test unit`); JUnit published also when they fail.',
        acceptanceTests: 'Acceptance tests against the running image (`mlci test acceptance`); JUnit always published.',
        accuracyTests  : 'Accuracy suites (`mlci test accuracy` in the image, or sharded `test accuracy --shard` + `accuracy merge`).',
        deploy         : 'Deploy an image by digest (`mlci deploy`): milestone, approval input, lock, milestone. Call outside node.',
        train          : 'Retrain with `mlci train` on the training agent label; publish the model only when its accuracy suite passes.',
        driftCheck     : 'Scheduled production drift check (`mlci drift check`); on drift starts the retraining job with `build job:`.',
    ]

    static final Map<String, String> DETAILS = [
        mlPipeline     : '''\
Runs `mlci pipeline plan` for this branch and build cause (push, timer, user, pr) and executes the plan:
stages in order with a timeout each; cron registered with properties([pipelineTriggers([cron(...)])]) only on
integration branches (a new schedule takes effect after the branch's first build); a timer build runs the
scheduled heavy suites and never deploys; deploy behind approval when the environment asks for it.
With train.in_pipeline: a Train stage after Accuracy (the train step's code, outside the main node on
train.agent / pipeline.agent, never the controller) on timer builds of train.branches, whose train.schedule
joins the one cron list, and on user builds that ask for it (train: true or the MLCI_TRAIN parameter).
Retries only when an agent is lost, never for a failed gate.''',
        buildImage     : '''\
Call inside node {} after checkout. S3 credentials (artifacts.credentials) and, when image.push is set, the
registry credentials (image.registry_credentials, username/password) are bound with withCredentials and passed
to the container by variable name; without artifacts.credentials the agent's IAM role is used.''',
        unitTests      : '''\
Call inside node {} after buildImage. Exit 1 fails the build; .mlci/junit/unit.xml is published in a finally.''',
        acceptanceTests: '''\
Call inside node {} after buildImage. Exit 1 fails the build; .mlci/junit/acceptance.xml is published in a finally.''',
        accuracyTests  : '''\
Call inside node {} after buildImage. Suites with shards > 1 run as a parallel of N branches on the suite's agent
label, each in its own workspace running `mlci test accuracy --suite S --shard k/N` inside this build's image
(build.json goes along in a stash), stashed, unstashed under .mlci/shards/S/k/ and merged into one verdict.
Verdicts: FAIL fails the build; INCONCLUSIVE marks it UNSTABLE or fails it (accuracy.inconclusive).
Publishes JUnit (always), the HTML report (when HTML Publisher is installed), archives .mlci/, and puts the
verdicts in the build description. Branch builds append the records to report.history (`mlci report record`);
for pull requests with report.post.token_credentials, the report is posted to the PR.
Result cache: for an unsharded suite, `mlci test accuracy` re-issues a stored PASS from report.history on the
same model, dataset and inference code (and the same gates) instead of running it again (report.reuse: false
turns the cache off); forceAccuracy: true passes --force to run it anyway.''',
        deploy         : '''\
Call OUTSIDE node {}: the approval input must not hold an executor. With approval: milestone, then input (with
approval_timeout, submitter = approvers, id MlciDeploy<position><environment>), then
lock(mlci-<service>-<environment>, inversePrecedence: true) and a second milestone, then a node runs
`mlci deploy --env NAME --image REF@DIGEST` with the kubeconfig credentials (records: the stash is unstashed into
an emptied .mlci/). Milestone ordinals are explicit: 10 x the environment's position in deploy.environments, + 1
before the approval, + 2 inside the lock; deploy to several environments in one build in that order.''',
        train          : '''\
Call OUTSIDE node {}: the step takes its own executor. The label is args.agent, else train.agent, else
pipeline.agent (read from ml-ci.yaml on any agent that is not the controller); with none of them, any agent
but the controller ('!built-in && !master'). On that agent: checkout, `mlci pipeline plan` (runner and
credential ids), then `mlci train --trigger <timer|user|push|pr or args.trigger> [--force]` inside a timeout of
train.timeout + 30 minutes, with the S3 key pair (artifacts.credentials), the PR token
(report.post.token_credentials), the git push credentials (train.git_credentials, gitUsernamePassword) and,
for runner: kubernetes, the kubeconfig (train.kubeconfig_credentials) bound by name. Archives
.mlci/train.json, the evaluation records and the Job manifest in a finally.
Result: exit 0 (published, unchanged, not evaluated) leaves the build green; a rejected model (FAIL) or an
INCONCLUSIVE evaluation marks it UNSTABLE (nothing was published); anything else fails it.
Scheduled retraining: the job's cron is set from train.schedule with properties() (none when unset, so a
removed schedule stops firing); keep the job's other properties with jobProperties, or pass triggers: false.
On-demand runs pass parameters through: train(force: params.FORCE_RETRAIN, trigger: params.TRIGGER).''',
        driftCheck     : '''\
Call OUTSIDE node {}: the step takes its own executor (args.agent, else any agent but the controller) and
queues the retraining job after releasing it. On the agent: checkout, `mlci drift plan --json --branch B`
(cron and job from ml-ci.yaml), `mlci pipeline plan` (runner, credential ids), then `mlci drift check` with
the S3 key pair (artifacts.credentials) bound by name; .mlci/drift/** (drift.json, drift.md, drift.html) is
archived in a finally. The cron (drift.schedule) is registered with properties([pipelineTriggers([cron(...)])])
only on drift.branches (default main); properties() replaces all job properties, so pass the others in
jobProperties. Exit 0: description 'drift: none'. Exit 1 (drift): `build job: <trainJob or drift.retrain.job>,
parameters: [drift.retrain.parameters + parameters + DRIFT_REASON, DRIFT_FEATURES, DRIFT_WINDOW,
DRIFT_BUILD], wait: false` and the reason in the build description; with no job configured the build is
UNSTABLE. Exit 3 (too few rows): UNSTABLE. Exit 2 or other: the build fails.
Returns [verdict:, summary:, drifted: [names], exitCode:, job: (started job or '')].''',
    ]

    static List<String> names() {
        List<String> out = []
        out.addAll(ARGS.keySet())
        return out
    }

    /** All arguments a step takes: its own plus the common ones. */
    static Map<String, String> argsOf(String step) {
        Map<String, String> out = [:]
        out.putAll(ARGS[step] as Map)
        out.putAll(COMMON)
        return out
    }

    /** Fails early, naming the step, the unknown argument and the valid ones. */
    static void check(def steps, String step, Map args) {
        Map<String, String> allowed = argsOf(step)
        List<String> unknown = []
        List keys = []
        keys.addAll(args.keySet())
        for (Object key : keys) {
            if (!allowed.containsKey(key as String)) {
                unknown.add(key as String)
            }
        }
        if (unknown) {
            steps.error("${step}: unknown argument(s) ${unknown.join(', ')}; valid: ${allowed.keySet().join(', ')} " +
                        "(see ${step}.txt)")
        }
    }
}
