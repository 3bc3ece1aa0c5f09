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
                                   HOME: tmp.path, AWS_SECRET_ACCESS_KEY: 'secret-value-q',
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
        assert passed.every { it ==~ /[A-Z_]+/ || it == 'HOME=/tmp' }
        assert !argv.any { it.contains('secret-value-q') }
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
