/**
 * The REAL mlci runtime image (docker/Dockerfile, ENTRYPOINT mlci) for the tests that run the Jenkins path:
 * built once per test JVM with `mlci build --runtime --tag <unique>` (a cached rebuild takes seconds once the
 * suite's Python tests built the same layers) and removed when the JVM exits.
 */
class RuntimeImage {
    static final String DOCKER = System.getenv('MLCI_DOCKER') ?: '/usr/bin/docker'
    private static String built

    static synchronized String tag() {
        if (built == null) {
            String tag = "mlci-groovytest-runtime-${UUID.randomUUID().toString().take(8)}:${org.mlci.Mlci.VERSION}".toString()
            File venvMlci = new File(PipelineHarness.ROOT, '.venv/bin/mlci')
            Map r = run([venvMlci.exists() ? venvMlci.path : 'mlci', 'build', '--runtime', '--tag', tag])
            assert r.status == 0: "mlci build --runtime failed:\n${r.output.readLines().takeRight(40).join('\n')}"
            Runtime.runtime.addShutdownHook(new Thread({ run([DOCKER, 'rmi', '-f', tag]) } as Runnable))
            built = tag
        }
        return built
    }

    /** A command's status and its merged output. */
    static Map run(List<String> cmd, File cwd = null) {
        Map r = Proc.run(new ProcessBuilder(cmd).directory(cwd).redirectErrorStream(true))
        return [status: r.status, output: r.stdout]
    }
}
