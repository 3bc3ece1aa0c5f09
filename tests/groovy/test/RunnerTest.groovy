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
        assert argv[0..1] == ['run', '--rm']
        assert argv[img + 1] == 'mlci'
        assert argv.subList(img + 2, argv.size()) == HOSTILE
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
        assert passed.every { it ==~ /[A-Z_]+/ || it == 'HOME=/tmp' }
        assert !argv.any { it.contains('secret-value-q') || it.contains('jenkins-token-q') }
    }

    /**
     * The docker runner against the REAL Docker engine: a throwaway image whose `mlci` reports what it sees
     * (argv, working directory, user, the socket, a secret by name) proves the mounts, -w, -u and -e NAME work.
     */
    @Test
    void docker_runner_works_against_the_real_engine() {
        String docker = System.getenv('MLCI_DOCKER') ?: 'docker'
        String base = System.getenv('MLCI_BASE_IMAGE') ?: 'mlci-base:bookworm'
        String tag = "mlci-groovytest-runner:${UUID.randomUUID().toString().take(8)}".toString()
        File ctx = File.createTempDir()
        new File(ctx, 'mlci').text = """#!/bin/sh
{ printf 'argv'; for a in "\$@"; do printf '|%s' "\$a"; done; echo
  echo "pwd=\$(pwd)"; echo "uid=\$(id -u)"; echo "secret=\$AWS_SECRET_ACCESS_KEY"; echo "out=\$MLCI_OUT"
  test -S /var/run/docker.sock && echo socket=yes; } > report.txt
"""
        new File(ctx, 'Dockerfile').text = "FROM ${base}\nCOPY --chmod=755 mlci /usr/local/bin/mlci\n"
        Process b = new ProcessBuilder([docker, 'build', '-q', '-t', tag, ctx.path]).redirectErrorStream(true).start()
        String log = b.inputStream.text
        assert b.waitFor() == 0: log
        try {
            Mlci m = Mlci.of(InvokerHelper.createScript(PipelineHarness.compiled('unitTests'), h.binding), 'docker', tag, '', true)
            File ws = File.createTempDir()
            File sub = new File(ws, 'svc dir')
            sub.mkdirs()
            List args = ['config', 'check', "it's \$(id)"]
            Map<String, String> env = [PATH: System.getenv('PATH'), WORKSPACE: ws.path, HOME: ws.path,
                                       MLCI_DOCKER: docker, AWS_SECRET_ACCESS_KEY: 's3cr3t value']
            m.env(args).each { String kv -> int i = kv.indexOf('='); env[kv.substring(0, i)] = kv.substring(i + 1) }
            ProcessBuilder pb = new ProcessBuilder(['bash', '-c', m.script(args.size())]).directory(sub)
            pb.environment().clear()
            pb.environment().putAll(env)
            pb.environment().PWD = sub.path
            Process p = pb.redirectErrorStream(true).start()
            String out = p.inputStream.text
            assert p.waitFor() == 0: out
            List<String> report = new File(sub, 'report.txt').readLines()
            assert report[0] == "argv|config|check|it's \$(id)".toString()
            assert report[1] == "pwd=${sub.path}".toString()   // workspace mounted at the same path, -w "\$PWD"
            assert report[2] == "uid=${['id', '-u'].execute().text.trim()}".toString()
            assert report[3] == 'secret=s3cr3t value'            // passed by name, never in argv
            assert report[4] == 'out=.mlci'
            assert report[5] == 'socket=yes'
        } finally {
            new ProcessBuilder([docker, 'rmi', '-f', tag]).start().waitFor()
        }
    }

    @Test
    void venv_runner_runs_mlci_from_the_venv_with_the_same_arguments() {
        assert execute('venv', HOSTILE) == HOSTILE
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
