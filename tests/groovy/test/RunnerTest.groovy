import org.codehaus.groovy.runtime.InvokerHelper
import org.junit.Test
import org.mlci.Mlci

/** The one class that runs mlci: constant scripts, values through the environment, checked in a REAL shell. */
class RunnerTest {
    static final List<String> HOSTILE = ['accuracy', 'run', '--suite', 'a b', '--x', '$(touch /tmp/pwned-q)',
                                         "it's", '"; rm -rf / #', '`id`', '$HOME', 'line1\nline2', '']

    PipelineHarness h = new PipelineHarness()

    Mlci runner(String kind) {
        Script s = InvokerHelper.createScript(PipelineHarness.compiled('unitTests'), h.binding)
        return new Mlci(s, kind, 'reg.example/mlci:1', 'cfg/ml-ci.yaml', true)
    }

    /** Executes the generated script with bash, the env the withEnv mock would set, and a fake docker. */
    List<String> execute(String kind, List args) {
        Mlci m = runner(kind)
        File tmp = File.createTempDir()
        File log = new File(tmp, 'argv')
        File bin = new File(tmp, kind == 'venv' ? 'venv/bin' : 'bin')
        bin.mkdirs()
        File fake = new File(bin, kind == 'venv' ? 'mlci' : 'docker')
        fake.text = '#!/bin/sh\nfor a in "$@"; do printf "%s\\0" "$a"; done > "$ARGV_LOG"\n'
        fake.setExecutable(true)
        Map<String, String> env = [PATH: System.getenv('PATH'), ARGV_LOG: log.path, WORKSPACE: tmp.path,
                                   HOME: tmp.path, AWS_SECRET_ACCESS_KEY: 'secret-value-q', JENKINS_API_TOKEN: 'jenkins-token-q',
                                   MLCI_DOCKER: fake.path, MLCI_VENV: new File(tmp, 'venv').path]
        m.env(args).each { String kv -> int i = kv.indexOf('='); env[kv.substring(0, i)] = kv.substring(i + 1) }
        ProcessBuilder pb = new ProcessBuilder(['bash', '-c', m.script(args.size())]).directory(tmp)
        pb.environment().clear()
        pb.environment().putAll(env)
        Process p = pb.redirectErrorStream(true).start()
        String out = p.inputStream.text
        assert p.waitFor() == 0: out
        List<String> argv = new String(log.bytes, 'UTF-8').split('\u0000', -1) as List
        return argv[0..-2]
    }

    @Test
    void docker_runner_passes_every_argument_verbatim_through_a_real_shell() {
        List<String> argv = execute('docker', HOSTILE)
        int img = argv.indexOf('reg.example/mlci:1')
        assert argv[0..3] == ['run', '--rm', '--network', 'host']
        // The image's ENTRYPOINT is mlci: the arguments follow the image name directly.
        assert argv.subList(img + 1, argv.size()) == HOSTILE
        assert !new File('/tmp/pwned-q').exists()
    }

    @Test
    void docker_runner_mounts_socket_and_workspace_at_the_same_path_and_passes_env_by_name() {
        List<String> argv = execute('docker', ['config', 'check'])
        assert argv.contains('/var/run/docker.sock:/var/run/docker.sock')
        String ws = argv[argv.indexOf('-w') + 1]
        assert argv.contains("${ws}:${ws}".toString())
        List<String> passed = []
        argv.eachWithIndex { a, i -> if (a == '-e') passed << argv[i + 1] }
        assert 'AWS_SECRET_ACCESS_KEY' in passed && 'MLCI_OUT' in passed && 'KUBECONFIG' in passed
        // The report's baseline lookup through python-jenkins reads these inside the container.
        assert ['JENKINS_URL', 'JENKINS_USER', 'JENKINS_API_TOKEN', 'MLCI_BASELINE_JOB'].every { it in passed }
        // The service's commit from the checkout map; Jenkins' GIT_* may name the library's checkout.
        assert ['MLCI_GIT_COMMIT', 'MLCI_GIT_BRANCH', 'MLCI_GIT_URL'].every { it in passed }
        assert !passed.any { it in Mlci.JENKINS_GIT_ENV }
        assert passed.every { it ==~ /[A-Z][A-Z0-9_]*/ || it == 'HOME=/tmp' }
        assert !argv.any { it.contains('secret-value-q') || it.contains('jenkins-token-q') }
    }

    /**
     * The docker runner with the REAL runtime image (`mlci build --runtime`, ENTRYPOINT mlci) on the real engine:
     * `mlci pipeline plan` must read ./ml-ci.yaml in the working directory (workspace mounted at the same path,
     * -w "$PWD"), get a hostile branch name verbatim, and its exit codes must come through. An extra `mlci` word
     * after the image (the bug every step once had) makes the container run `mlci mlci ...`: exit 2.
     */
    @Test
    void docker_runner_runs_the_real_runtime_image() {
        Mlci m = Mlci.of(InvokerHelper.createScript(PipelineHarness.compiled('unitTests'), h.binding), 'docker',
                         RuntimeImage.tag(), '', true)
        File ws = File.createTempDir()
        File sub = new File(ws, "svc dir")
        sub.mkdirs()
        new File(sub, 'ml-ci.yaml').text = 'service: runner-q\n'
        String hostile = "feat/it's \$(id) `id` \"q\""
        Map<String, String> env = [PATH: System.getenv('PATH'), WORKSPACE: ws.path, HOME: ws.path,
                                   MLCI_DOCKER: RuntimeImage.DOCKER, AWS_SECRET_ACCESS_KEY: 's3cr3t value']

        Map plan = realShell(m, ['pipeline', 'plan', '--json', '--cause', 'push', '--branch', hostile], env, sub)
        assert plan.status == 0: plan.output
        Map answer = PipelineHarness.pojo(new groovy.json.JsonSlurper().parseText(plan.stdout as String)) as Map
        assert answer.service == 'runner-q' && answer.branch == hostile && answer.schema == 'mlci.plan/1'

        Map bad = realShell(m, ['config', 'check', '-c', 'no-such.yaml'], env, sub)
        assert bad.status == 2 && bad.output.contains('no-such.yaml'): bad.output
    }

    /** The runner's script in a real shell (as Jenkins' sh step: `sh -xe`), with the withEnv it would set. */
    static Map realShell(Mlci m, List args, Map<String, String> base, File cwd) {
        Map<String, String> env = new LinkedHashMap<String, String>(base)
        m.env(args).each { String kv -> int i = kv.indexOf('='); env[kv.substring(0, i)] = kv.substring(i + 1) }
        File script = File.createTempFile('mlci-runner', '.sh')
        script.text = m.script(args.size())
        ProcessBuilder pb = new ProcessBuilder(['sh', '-xe', script.path]).directory(cwd)
        pb.environment().clear()
        pb.environment().putAll(env)
        pb.environment().PWD = cwd.path
        Map r = Proc.run(pb)
        script.delete()
        return r + [output: r.stdout + r.stderr]
    }

    @Test
    void venv_runner_runs_mlci_from_the_venv_with_the_same_arguments() {
        assert execute('venv', HOSTILE) == HOSTILE
    }

    /** The venv runner runs on the agent itself: Jenkins' GIT_* (maybe the library's checkout) are unset. */
    @Test
    void venv_runner_hides_jenkins_git_variables_from_mlci() {
        File tmp = File.createTempDir()
        File bin = new File(tmp, 'venv/bin')
        bin.mkdirs()
        File fake = new File(bin, 'mlci')
        fake.text = '#!/bin/sh\nprintf "%s|%s|%s" "${GIT_COMMIT-unset}" "${GIT_BRANCH-unset}" "$MLCI_GIT_COMMIT"\n'
        fake.setExecutable(true)
        Mlci m = runner('venv')
        Map<String, String> env = [PATH: System.getenv('PATH'), MLCI_VENV: new File(tmp, 'venv').path, HOME: tmp.path,
                                   GIT_COMMIT: 'feedface' * 5, GIT_BRANCH: 'master', MLCI_GIT_COMMIT: 'c' * 40]
        Map r = realShell(m, ['config', 'check'], env, tmp)
        assert r.status == 0 && r.stdout == "unset|unset|${'c' * 40}".toString()
    }

    @Test
    void scripts_are_constant_templates() {
        Mlci m = runner('docker')
        assert m.script(3) == m.script(3)
        assert !m.script(3).contains('reg.example')
        assert m.env(['a', 'b']).contains('MLCI_ARG_2=b') && m.env(['a']).contains('MLCI_CONFIG=cfg/ml-ci.yaml')
        assert Mlci.label(['accuracy', 'run', '--suite', 'x']) == 'mlci accuracy run'
    }

    @Test
    void unknown_runner_is_rejected() {
        Script s = InvokerHelper.createScript(PipelineHarness.compiled('unitTests'), h.binding)
        try {
            Mlci.of(s, 'podman', '', '', true)
            assert false
        } catch (StepFailure e) {
            assert e.message.contains("unknown runner 'podman'; valid: docker, venv")
        }
    }

    @Test
    void library_version_matches_the_python_package() {
        Map r = PipelineHarness.mlciProcess(['--version'], [:])
        assert r.stdout.trim() == "mlci ${Mlci.VERSION}".toString()
    }
}
