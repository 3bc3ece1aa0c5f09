package org.mlci

/**
 * How the steps run the mlci CLI: the ONE place that knows it (switch with `runner: 'venv'`, or
 * pipeline.runner in ml-ci.yaml).
 *
 * - docker (default): `docker run --rm --network host` of the mlci runtime image (whose ENTRYPOINT is mlci)
 *   with the Docker socket and the workspace mounted at the same path (so paths in records mean the same
 *   inside and outside), environment passed by NAME only (`-e NAME`: values never appear in argv or in the
 *   script). The image: the runnerImage step argument, else pipeline.runner_image, else the MLCI_RUNNER_IMAGE
 *   environment variable an administrator sets once (a global or agent property); there is no built-in default,
 *   because no registry holds an mlci image every agent could pull (docs/jenkins.md says how to build and push
 *   one).
 * - venv: `mlci` from $MLCI_VENV/bin (or PATH) on the agent.
 *
 * Security: the sh script is a constant template. Every argument reaches the shell as an environment
 * variable set with withEnv (MLCI_ARG_1..n) and is expanded inside double quotes, so no config value, branch
 * name or secret is ever interpolated into a Groovy string given to sh.
 *
 * Provenance: Jenkins' GIT_COMMIT / GIT_BRANCH / GIT_URL may describe this library's own checkout (a shared
 * library's SCM variables leak into the build's environment), so they never reach mlci: the commit, branch and
 * URL of the service come from the map `checkout scm` returned (Nodes.checkout) as MLCI_GIT_COMMIT,
 * MLCI_GIT_BRANCH and MLCI_GIT_URL.
 */
class Mlci implements Serializable {
    private static final long serialVersionUID = 1L

    /** The library version (a test keeps it equal to mlci's): the runtime image should carry the same. */
    static final String VERSION = '0.1.0'
    static final List<String> KINDS = ['docker', 'venv']
    /** Output directory for every record, relative to the workspace (archived as .mlci/**). */
    static final String OUT = '.mlci'
    /** Jenkins' SCM variables, which may name the library's checkout: never handed to mlci. */
    static final List<String> JENKINS_GIT_ENV = ['GIT_COMMIT', 'GIT_BRANCH', 'GIT_URL', 'GIT_LOCAL_BRANCH',
                                                 'GIT_PREVIOUS_COMMIT', 'GIT_PREVIOUS_SUCCESSFUL_COMMIT']

    /**
     * Variables handed to the container by name (only those set on the agent are passed). Paths among them are
     * mounted at the same path (workspace, WORKSPACE@tmp, MLCI_CACHE); agent-local tool paths (MLCI_DOCKER,
     * a CA bundle) are not passed: the image has its own.
     */
    static final List<String> PASS_ENV = [
        'MLCI_CONFIG', 'MLCI_OUT', 'MLCI_CACHE', 'MLCI_BASE_IMAGE', 'MLCI_REPORT_TOKEN',
        'MLCI_IMAGE', 'MLCI_IMAGE_NAME', 'MLCI_IMAGE_DIGEST', 'MLCI_REPORT_URL', 'MLCI_RUNNER_IMAGE', 'MLCI_SECRETS_DIR',
        'MLCI_GIT_COMMIT', 'MLCI_GIT_BRANCH', 'MLCI_GIT_URL',
        'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_REGION', 'AWS_DEFAULT_REGION',
        'AWS_ENDPOINT_URL', 'AWS_ENDPOINT_URL_S3', 'DOCKER_CONFIG', 'DOCKER_BUILDKIT', 'KUBECONFIG',
        'PIP_INDEX_URL', 'PIP_EXTRA_INDEX_URL',
        'BRANCH_NAME', 'CHANGE_ID', 'CHANGE_TARGET', 'CHANGE_BRANCH', 'CHANGE_URL',
        'BUILD_NUMBER', 'BUILD_URL', 'BUILD_TAG', 'JOB_NAME', 'JENKINS_URL',
        // The report's baseline lookup through python-jenkins (when there is no report.history store).
        'JENKINS_USER', 'JENKINS_API_TOKEN', 'MLCI_BASELINE_JOB',
        // `mlci train` pushing the model branch and tag: the Git plugin's gitUsernamePassword binding.
        'GIT_ASKPASS', 'GIT_USERNAME', 'GIT_PASSWORD', 'GIT_TERMINAL_PROMPT', 'GCM_INTERACTIVE',
    ]

    final def steps
    final String kind
    final String image
    final String config
    /** True when the runner was chosen by a step argument: then the plan's pipeline.runner does not override it. */
    final boolean pinned

    /** No steps in here: Jenkins does not CPS-transform constructors (use `of`, which validates). */
    Mlci(def steps, String kind, String image, String config, boolean pinned) {
        this.steps = steps
        this.kind = kind
        this.image = image ?: ''
        this.config = config ?: ''
        this.pinned = pinned
    }

    /** A runner of a known kind; an unknown one fails the build with the valid kinds. */
    static Mlci of(def steps, String kind, String image, String config, boolean pinned) {
        if (!KINDS.contains(kind)) {
            steps.error("mlci: unknown runner '${kind}'; valid: ${KINDS.join(', ')}")
        }
        return new Mlci(steps, kind, image, config, pinned)
    }

    /** From step arguments (runner, runnerImage, config); the image may stay empty (see runtimeImage()). */
    static Mlci fromArgs(def steps, Map args) {
        boolean pinned = args.containsKey('runner') || args.containsKey('runnerImage')
        return of(steps, (args.runner ?: 'docker') as String, args.runnerImage as String, args.config as String, pinned)
    }

    /**
     * The runner the plan (pipeline.runner / runner_image) asks for, unless a step argument pinned one; a plan
     * without runner_image keeps this runner's image (the step argument or MLCI_RUNNER_IMAGE).
     */
    Mlci forPlan(Map plan) {
        if (pinned || !plan?.runner) {
            return this
        }
        return of(steps, plan.runner.kind as String, (plan.runner.image ?: image) as String, config, false)
    }

    /** The runtime image: this runner's, else $MLCI_RUNNER_IMAGE; none fails the build saying how to set one. */
    String runtimeImage() {
        String chosen = (image ?: steps.env.MLCI_RUNNER_IMAGE ?: '') as String
        if (!chosen) {
            steps.error('mlci: no runtime image: set MLCI_RUNNER_IMAGE as a global environment variable ' +
                        '(Manage Jenkins > System > Global properties) or an agent\'s, or pipeline.runner_image ' +
                        'in ml-ci.yaml, or the runnerImage step argument; build and push it with ' +
                        "`mlci build --runtime --tag REGISTRY/mlci:${VERSION}` (docs/jenkins.md)")
        }
        return chosen
    }

    /** `mlci ARGS...`; returns the exit status (the caller decides what a status means). */
    int status(List args) {
        def rc = null
        steps.withEnv(env(args)) {
            rc = steps.sh(script: script(args.size()), returnStatus: true, label: label(args))
        }
        return rc as int
    }

    /** `mlci ARGS...`; a non-zero exit fails the build with the command's name in the message. */
    void run(List args) {
        int rc = status(args)
        if (rc != 0) {
            steps.error("${label(args)} failed (exit ${rc}); see the log above")
        }
    }

    /** `mlci ARGS...` and its standard output (the plan JSON); a non-zero exit fails the build. */
    String output(List args) {
        def out = null
        steps.withEnv(env(args)) {
            out = steps.sh(script: script(args.size()), returnStdout: true, label: label(args))
        }
        return out as String
    }

    /** Environment for one call: the arguments, the runner image, config and output paths. */
    List<String> env(List args) {
        List<String> out = []
        for (int i = 0; i < args.size(); i++) {
            out.add('MLCI_ARG_' + (i + 1) + '=' + args[i])
        }
        if (kind == 'docker') {
            out.add('MLCI_RUNNER_IMAGE=' + runtimeImage())
        }
        out.add('MLCI_OUT=' + OUT)
        if (config) {
            out.add('MLCI_CONFIG=' + config)
        }
        if (!steps.env.MLCI_SECRETS_DIR && steps.env.WORKSPACE) {
            // Secret files mlci writes for a moment (S3 credentials for BuildKit and containers) live next to
            // the Jenkins credential files, outside the workspace that is archived (mounted at the same path).
            out.add('MLCI_SECRETS_DIR=' + steps.env.WORKSPACE + '@tmp/mlci-secrets')
        }
        if (!steps.env.MLCI_CACHE) {
            // Shared by builds on one agent (content-addressed, verified), mounted at the same path.
            out.add('MLCI_CACHE=' + (steps.env.HOME ?: '/tmp') + '/.cache/mlci')
        }
        return out
    }

    /** The constant script for n arguments: only variable references, never values. */
    String script(int n) {
        StringBuilder argv = new StringBuilder()
        for (int i = 1; i <= n; i++) {
            argv.append(' "$MLCI_ARG_').append(i).append('"')
        }
        if (kind == 'venv') {
            return 'set -eu\nunset ' + JENKINS_GIT_ENV.join(' ') + '\nexec "${MLCI_VENV:+$MLCI_VENV/bin/}mlci"' +
                   argv + '\n'
        }
        StringBuilder s = new StringBuilder()
        s.append('set -eu\n')
        s.append('mkdir -p "$MLCI_CACHE" "$WORKSPACE@tmp"\n')
        // --network host: the container sees the agent's network (an S3 endpoint or proxy on the agent itself),
        // as `mlci build` and the accuracy stage do; the mounted Docker socket already gives it the host.
        s.append('exec "${MLCI_DOCKER:-docker}" run --rm --network host')
        s.append(' -v /var/run/docker.sock:/var/run/docker.sock')
        s.append(' --group-add "$(stat -c %g /var/run/docker.sock)"')
        s.append(' -u "$(id -u):$(id -g)" -e HOME=/tmp')
        s.append(' -v "$WORKSPACE:$WORKSPACE" -v "$WORKSPACE@tmp:$WORKSPACE@tmp" -v "$MLCI_CACHE:$MLCI_CACHE"')
        s.append(' -w "$PWD"')
        for (String name : PASS_ENV) {
            s.append(' -e ').append(name)
        }
        // The image's ENTRYPOINT is mlci: the arguments follow the image name directly.
        s.append(' "$MLCI_RUNNER_IMAGE"').append(argv).append('\n')
        return s.toString()
    }

    /** A log label naming the command only (its first two words are fixed subcommand names). */
    static String label(List args) {
        return 'mlci ' + args.take(2).join(' ')
    }
}
