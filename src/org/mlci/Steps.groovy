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
        runnerImage: 'mlci runtime image for the docker runner. Default: pipeline.runner_image, else mlci:<library version>.',
        plan       : 'The plan map from `mlci pipeline plan` (mlPipeline passes it); computed when absent.',
    ]

    static final Map<String, Map<String, String>> ARGS = [
        mlPipeline     : [
            agent        : 'Agent label for the pipeline (default pipeline.agent, else any agent).',
            triggers     : 'false: never set the job\'s cron trigger (default true: set it on integration branches).',
            jobProperties: 'Job properties (a list) set on every branch next to the cron trigger (properties() replaces all).',
        ],
        buildImage     : [:],
        unitTests      : [:],
        acceptanceTests: [:],
        accuracyTests  : [
            suites: 'Names of the suites to run (a list); default the suites the plan picks for this branch and cause.',
        ],
        deploy         : [
            image      : 'Required. The image reference with digest to deploy (buildImage returns it as .image).',
            environment: 'Environment under deploy.environments; default the one whose branch is being built.',
            agent      : 'Agent label for the deploy (default pipeline.agent, else any agent).',
            records    : 'Name of a stash with .mlci/build.json and accuracy records for the promotion gate.',
        ],
    ]

    /** ml-ci.yaml sections documented on each step's help page. */
    static final Map<String, List<String>> CONFIG = [
        mlPipeline     : ['pipeline'],
        buildImage     : ['image', 'artifacts.credentials'],
        unitTests      : ['tests.unit'],
        acceptanceTests: ['tests.acceptance'],
        accuracyTests  : ['accuracy', 'report.post'],
        deploy         : ['deploy'],
    ]

    static final Map<String, String> SUMMARY = [
        mlPipeline     : 'The whole pipeline from ml-ci.yaml: build, unit, acceptance, accuracy, deploy, per branch policy.',
        buildImage     : 'Build (and push) the service image with `mlci build`; returns [image: name@digest, record: build.json].',
        unitTests      : 'Unit tests inside the built image (`mlci test unit`); JUnit published also when they fail.',
        acceptanceTests: 'Acceptance tests against the running image (`mlci test acceptance`); JUnit always published.',
        accuracyTests  : 'Accuracy suites (`mlci test accuracy` in the image, or sharded `accuracy run --shard` + `accuracy merge`).',
        deploy         : 'Deploy an image by digest (`mlci deploy`): milestone, approval input, lock, milestone. Call outside node.',
    ]

    static final Map<String, String> DETAILS = [
        mlPipeline     : '''\
Runs `mlci pipeline plan` for this branch and build cause (push, timer, user, pr) and executes the plan:
stages in order with a timeout each; cron registered with properties([pipelineTriggers([cron(...)])]) only on
integration branches (a new schedule takes effect after the branch's first build); a timer build runs the
scheduled heavy suites and never deploys; deploy behind approval when the environment asks for it.
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
label, each `mlci accuracy run --suite S --shard k/N`, stashed, unstashed and merged into one verdict.
Verdicts: FAIL fails the build; INCONCLUSIVE marks it UNSTABLE or fails it (accuracy.inconclusive).
Publishes JUnit (always), the HTML report (when HTML Publisher is installed), archives .mlci/, and puts the
verdicts in the build description. Branch builds append the records to report.history (`mlci report record`);
for pull requests with report.post.token_credentials, the report is posted to the PR.''',
        deploy         : '''\
Call OUTSIDE node {}: the approval input must not hold an executor. With approval: milestone, then input (with
approval_timeout, submitter = approvers), then lock(<service>-<environment>) and a second milestone, then a node
runs `mlci deploy --env NAME --image REF@DIGEST` with the kubeconfig credentials.''',
    ]

    static List<String> names() {
        return new ArrayList<String>(ARGS.keySet())
    }

    /** All arguments a step takes: its own plus the common ones. */
    static Map<String, String> argsOf(String step) {
        Map<String, String> out = new LinkedHashMap<String, String>(ARGS[step] as Map)
        out.putAll(COMMON)
        return out
    }

    /** Fails early, naming the step, the unknown argument and the valid ones. */
    static void check(def steps, String step, Map args) {
        Map<String, String> allowed = argsOf(step)
        List<String> unknown = []
        for (Object key : new ArrayList<Object>(args.keySet())) {
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
