import groovy.json.JsonOutput
import groovy.json.JsonSlurper
import org.codehaus.groovy.control.CompilerConfiguration
import org.codehaus.groovy.runtime.InvokerHelper

import java.util.regex.Pattern

/**
 * Runs vars/*.groovy steps outside Jenkins, in one of two modes.
 *
 * Recording (the default, fast): mock steps.
 * - Every step call is recorded as a Call (step name, arguments, the enclosing blocks: node, stage, lock, ...).
 * - Any step without a mock fails the test (catch-all), also when the code under test swallows the error.
 * - `sh` is answered by handlers; by default a fake mlci writes the records the real one would, and
 *   `mlci pipeline plan` runs the REAL Python CLI on the fixture ml-ci.yaml with the argv the Groovy passed.
 *
 * Executing (`PipelineHarness.executing(dir)`, see Executing): the steps act for real (sh runs the generated
 * script, checkout clones, stash/archive/junit/publishHTML work on real files in per-agent workspaces).
 *
 * In both modes the calls are recorded and, after each run, every sh script is scanned for secrets and config
 * values (`scanShell`). See tests/groovy/README.md for adding a step test.
 */
class PipelineHarness {
    static final File ROOT = new File(System.getProperty('mlci.root', '.')).canonicalFile
    static final File VARS = new File(ROOT, 'vars')
    static final File FIXTURES = new File(ROOT, 'tests/groovy/fixtures')
    static final Object AGENT_CONDITION = 'retry-condition:agent'
    static final Object NONRESUMABLE_CONDITION = 'retry-condition:nonresumable'
    static final String TIMER = 'hudson.triggers.TimerTrigger$TimerTriggerCause'
    static final String USER = 'hudson.model.Cause$UserIdCause'

    private static final Map<String, Class> COMPILED = [:]
    private static final Map<String, String> PLAN_CACHE = [:]
    private static GroovyClassLoader loader

    /** One recorded step call. */
    static class Call {
        int seq
        String step
        List args
        Map named          // the first argument when it is a Map (named arguments)
        List<String> ctx   // enclosing blocks, outermost first: 'node:gpu', 'stage:Build', 'lock:x', ...
        Map extra = [:]    // per-step facts: sh script/argv/env, node label, ...

        String toString() { "${seq}:${step}${named ?: args.findAll { !(it instanceof Closure) }} in ${ctx}" }
    }

    /**
     * What a "CPS thread" sees: its enclosing blocks, environment overlays, workspaces and dir() blocks.
     * Parallel branches of the executing mode run in threads that start from a copy of their parent's frame.
     */
    static class Frame {
        final List<String> ctx = []
        final List<Map<String, String>> overlays = []
        final List<File> workspaces = []
        final List<String> dirs = []

        Frame copy() {
            Frame f = new Frame()
            f.ctx.addAll(ctx)
            f.overlays.addAll(overlays)
            f.workspaces.addAll(workspaces)
            f.dirs.addAll(dirs)
            return f
        }
    }

    /** The `env` global: withEnv/withCredentials/node push overlays (per thread). */
    static class MockEnv extends GroovyObjectSupport {
        Map<String, String> base = Collections.synchronizedMap(new LinkedHashMap<String, String>())
        final PipelineHarness harness

        MockEnv(PipelineHarness harness) { this.@harness = harness }

        Object getProperty(String name) {
            if (name == 'base') {
                return base
            }
            List<Map<String, String>> overlays = harness.frame().overlays
            if (name == 'overlays') {
                return overlays
            }
            for (int i = overlays.size() - 1; i >= 0; i--) {
                if (overlays[i].containsKey(name)) {
                    return overlays[i][name]
                }
            }
            return base[name]
        }

        void setProperty(String name, Object value) { this.@base[name] = value as String }

        Map<String, String> snapshot() {
            Map<String, String> out = new LinkedHashMap(base)
            harness.frame().overlays.each { out.putAll(it) }
            return out
        }
    }

    /** The `currentBuild` global. */
    static class MockBuild {
        String description
        String result
        List<String> causes = []

        List getBuildCauses(String cls) {
            return causes.findAll { it == cls }.collect { [_class: it, shortDescription: it] }
        }
    }

    final Binding binding = new Binding()
    final MockEnv env = new MockEnv(this)
    final MockBuild currentBuild = new MockBuild()
    final List<Call> calls = Collections.synchronizedList([])
    final List<String> unexpected = []
    private final ThreadLocal<Frame> frames = new ThreadLocal<Frame>()
    /** The fake workspace: path relative to the workspace -> content. */
    final Map<String, String> files = [:]
    final Map<String, Map<String, String>> stashes = [:]
    /** The commit the recording mode's checkout returns (the Git plugin's GIT_COMMIT). */
    static final String FIXTURE_COMMIT = 'c0ffee' * 6 + 'c0ff'

    /** Jenkins credentials: id -> [kind: 'aws'|'usernamePassword'|'string'|'file', values...]. */
    final Map<String, Map> credentials = [:]
    final List<List> handlers = []
    /** Labels whose next node allocation loses the agent (one entry per loss). */
    final List<String> agentLoss = []
    final Map<String, Closure> mocks = [:]
    File workspace = new File(FIXTURES, 'service')
    boolean htmlPublisher = true
    Closure inputAction = { Map q -> null }
    /** Config file values the scan must never find in a sh script (filled from `mlci config show`). */
    final Set<String> scanValues = [] as Set
    /** The executing mode (null: recording). */
    Executing exec
    /** The ordinal of the last milestone passed in this build (milestones must increase). */
    int lastMilestone = 0

    PipelineHarness() {
        binding.setVariable('__harness', this)
        binding.setVariable('env', env)
        binding.setVariable('currentBuild', currentBuild)
        binding.setVariable('scm', [type: 'GitSCM', marker: 'scm'])
        binding.setVariable('params', [:])
        // MLCI_RUNNER_IMAGE: the global environment variable an administrator sets once (docs/jenkins.md).
        env.base.putAll([WORKSPACE: workspace.path, HOME: '/home/jenkins', BUILD_NUMBER: '7', JOB_NAME: 'svc/develop',
                         MLCI_RUNNER_IMAGE: 'registry.example.com/ci/mlci:' + org.mlci.Mlci.VERSION])
        installMocks()
        installFakeMlci()
    }

    /**
     * A harness whose steps act for real under `root` (agents, workspaces, stashes, archives): no fake mlci, no
     * mocked files. The test adds agents (`exec.agent(...)`), an origin (`exec.originUrl`) and starts builds.
     */
    static PipelineHarness executing(File root) {
        PipelineHarness h = new PipelineHarness()
        h.exec = new Executing(h, root)
        h.handlers.clear()
        h.env.base.clear()
        h.env.base.putAll([PATH: System.getenv('PATH'), LANG: 'C.UTF-8', JENKINS_URL: 'http://jenkins.invalid/'])
        return h
    }

    // ---------------------------------------------------------------- configuring a scenario

    /** A multibranch build of `branch` started by `cause` (push, timer, user, pr). */
    PipelineHarness branch(String name, String cause = 'push', String target = '') {
        env.base.BRANCH_NAME = name
        if (cause == 'pr') {
            env.base.CHANGE_ID = '42'
            env.base.CHANGE_TARGET = target ?: 'develop'
        }
        if (cause == 'timer') {
            currentBuild.causes << TIMER
        }
        if (cause == 'user') {
            currentBuild.causes << USER
        }
        return this
    }

    /** Answer sh calls whose mlci argv starts with `prefix` (List) or whose script matches a Pattern. */
    PipelineHarness on(Object match, Closure answer) {
        handlers.add(0, [match, answer])
        return this
    }

    /** A secret-holding credential; its values join the scan. */
    PipelineHarness credential(String id, Map values) {
        credentials[id] = values
        return this
    }

    /** Credentials matching the fixture service's ml-ci.yaml. */
    PipelineHarness fixtureCredentials() {
        credential('s3 cred`uname`', [kind: 'aws', AWS_ACCESS_KEY_ID: 'AKIAFIXTURE0000SECRET',
                                      AWS_SECRET_ACCESS_KEY: 'wJalr+secret/Key$(id)'])
        credential("reg'cred;\$(id)", [kind: 'usernamePassword', user: 'robot-user-secret', password: 'Pa55"word$HOME'])
        credential('tok"en$HOME', [kind: 'string', value: 'ghp_secretTOKEN0123456789abcdef'])
        credential('kube$(id)', [kind: 'file', path: '/secret/kubeconfig-file-secret'])
        return this
    }

    // ---------------------------------------------------------------- running

    /** Runs a vars step; fails on any unexpected step and scans every sh script. */
    Object run(String step, Map args = [:]) {
        Object out = dispatch(step, [args] as Object[])
        assertClean()
        return out
    }

    /** Runs a step that must fail; returns the exception (the catch-all and the scan still apply). */
    Throwable runFailing(String step, Map args = [:]) {
        try {
            dispatch(step, [args] as Object[])
        } catch (UnexpectedStep e) {
            throw e
        } catch (Throwable t) {
            assertClean()
            return t
        }
        throw new AssertionError((Object) "${step} was expected to fail; calls:\n${calls.join('\n')}".toString())
    }

    void assertClean() {
        assert !unexpected: "unexpected steps: ${unexpected}"
        scanShell()
    }

    /** Where steps are looked up (a test may add a directory of its own fixture steps). */
    final List<File> varsDirs = [VARS]

    Object dispatch(String name, Object[] a) {
        File source = varsDirs.collect { new File(it, name + '.groovy') }.find { it.exists() }
        if (source) {
            record(name, a as List, [var: true])
            Script s = InvokerHelper.createScript(compiled(source), binding)
            return s.invokeMethod('call', a)
        }
        Closure mock = mocks[name]
        if (mock == null) {
            unexpected << name
            throw new UnexpectedStep(name)
        }
        return mock.call(a as List)
    }

    static Class compiled(String name) { compiled(new File(VARS, name + '.groovy')) }

    /** Calls a helper method of a vars step script directly (for unit tests of its pure functions). */
    Object callIn(String step, String method, Object... args) {
        return InvokerHelper.createScript(compiled(step), binding).invokeMethod(method, args)
    }

    static synchronized Class compiled(File source) {
        String name = source.canonicalPath
        if (!COMPILED.containsKey(name)) {
            if (loader == null) {
                CompilerConfiguration cc = new CompilerConfiguration()
                cc.scriptBaseClass = 'MockPipelineScript'
                loader = new GroovyClassLoader(PipelineHarness.classLoader, cc)
                loader.addClasspath(new File(ROOT, 'src').path)
            }
            COMPILED[name] = loader.parseClass(source)
        }
        return COMPILED[name]
    }

    synchronized Call record(String step, List args, Map extra = [:]) {
        Call c = new Call(seq: calls.size(), step: step, args: args,
                          named: (args && args[0] instanceof Map) ? (Map) args[0] : null,
                          ctx: new ArrayList<String>(ctx), extra: extra)
        calls << c
        return c
    }

    /** This thread's frame (the test thread's, or a parallel branch's). */
    Frame frame() {
        Frame f = frames.get()
        if (f == null) {
            f = new Frame()
            frames.set(f)
        }
        return f
    }

    /** The enclosing blocks of the calling thread, outermost first. */
    List<String> getCtx() { frame().ctx }

    Object within(String name, Closure body) {
        List<String> ctx = frame().ctx
        ctx.add(name)
        try {
            return body()
        } finally {
            ctx.remove(ctx.size() - 1)
        }
    }

    Object withOverlay(Map<String, String> vars, Closure body) {
        List<Map<String, String>> overlays = frame().overlays
        overlays.add(vars)
        try {
            return body()
        } finally {
            overlays.remove(overlays.size() - 1)
        }
    }

    /** Runs each branch in its own thread (a copy of this thread's frame), waits for all; the first error wins. */
    void concurrently(Map<Object, Closure> branches) {
        Frame parent = frame()
        Map<Object, Throwable> errors = Collections.synchronizedMap([:])
        List<Thread> threads = branches.collect { k, body ->
            Thread.start("parallel:${k}") {
                frames.set(parent.copy())
                try {
                    within("parallel:${k}".toString(), body)
                } catch (Throwable t) {
                    errors[k] = t
                }
            }
        }
        threads*.join()
        Object failed = branches.keySet().find { errors.containsKey(it) }
        if (failed != null) {
            throw errors[failed]
        }
    }

    // ---------------------------------------------------------------- queries for assertions

    List<Call> calls(String step) { calls.findAll { it.step == step } }

    List<String> steps() { calls*.step }

    /** Every sh call that ran mlci, as its argv. */
    List<List<String>> mlci() { calls('sh').findAll { it.extra.argv != null }*.extra.argv }

    Call mlciCall(List prefix) { calls('sh').find { it.extra.argv != null && startsWith(it.extra.argv, prefix) } }

    static boolean startsWith(List argv, List prefix) {
        return argv.size() >= prefix.size() && argv.subList(0, prefix.size()) == prefix
    }

    int indexOf(Closure pred) { calls.findIndexOf(pred) }

    // ---------------------------------------------------------------- the scan

    /**
     * No sh script contains a secret or a config value: values reach the shell only
     * through the environment. Runs after every step run.
     */
    void scanShell() {
        Set<String> secrets = [] as Set
        credentials.values().each { m -> m.each { k, v -> if (k != 'kind' && v) secrets << (v as String) } }
        Set<String> values = new LinkedHashSet<String>(scanValues)
        values.addAll(secrets)
        values.addAll(credentials.keySet())
        ['BRANCH_NAME', 'CHANGE_TARGET'].each { if (env.base[it]) values << env.base[it] }
        for (Call c : calls('sh')) {
            // The label is display text (never executed) and names the command: only the script is checked.
            String text = c.extra.script as String
            for (String v : values) {
                if (v && text.contains(v)) {
                    throw new AssertionError((Object) "sh script contains the value '${v}':\n${text}".toString())
                }
            }
            // Docker gets variables by NAME: `-e NAME`, never `-e NAME=value` (only the constant HOME=/tmp).
            def m = text =~ /-e\s+([A-Za-z_][A-Za-z0-9_]*)=/
            m.each { all, name -> assert name == 'HOME': "sh passes ${name} by value:\n${text}" }
        }
    }

    /** Adds every string of the fixture config (resolved, via the real `mlci config show`) to the scan. */
    PipelineHarness scanConfig(String config = 'ml-ci.yaml') {
        String json = mlciProcess(['config', 'show', '--json', '-c', config], [:]).stdout
        Map cfg = new JsonSlurper().parseText(json) as Map
        collectStrings(cfg, scanValues)
        // Names of user-defined entries (suites, environments, datasets) are config values too.
        scanValues.addAll((cfg.accuracy.suites as Map).keySet())
        scanValues.addAll((cfg.deploy.environments as Map).keySet())
        scanValues.addAll((cfg.artifacts.data as Map).keySet())
        // Fixed vocabulary, not user text: pipeline.runner's choice 'docker' names the tool the script runs.
        scanValues.remove('docker')
        scanValues.removeAll(scanValues.findAll { it.length() < 4 })
        return this
    }

    static void collectStrings(Object v, Set<String> out) {
        if (v instanceof Map) {
            v.each { k, x -> collectStrings(x, out) }
        } else if (v instanceof List) {
            v.each { collectStrings(it, out) }
        } else if (v instanceof String) {
            out << v
        }
    }

    // ---------------------------------------------------------------- the real mlci (plan, config, docs)

    private static Process server
    private static BufferedWriter serverIn
    private static BufferedReader serverOut

    /**
     * Runs the real mlci CLI with argv in cwd. One long-lived Python process (lib/mlci_server.py) serves
     * every call: same `mlci.cli.main`, without paying the interpreter start and imports per call.
     */
    static synchronized Map mlciProcess(List<String> argv, Map<String, String> extraEnv,
                                        File cwd = new File(FIXTURES, 'service')) {
        if (server == null) {
            File venvPython = new File(ROOT, '.venv/bin/python')
            String python = venvPython.exists() ? venvPython.path : 'python3'
            ProcessBuilder pb = new ProcessBuilder([python, new File(ROOT, 'tests/groovy/lib/mlci_server.py').path])
            pb.environment().put('PYTHONPATH', new File(ROOT, 'python').path)
            pb.redirectError(ProcessBuilder.Redirect.INHERIT)
            server = pb.start()
            serverIn = new BufferedWriter(new OutputStreamWriter(server.outputStream, 'UTF-8'))
            serverOut = new BufferedReader(new InputStreamReader(server.inputStream, 'UTF-8'))
        }
        serverIn.write(JsonOutput.toJson([argv: argv, cwd: cwd.path, env: extraEnv]) + '\n')
        serverIn.flush()
        String line = serverOut.readLine()
        assert line != null: 'the mlci server (tests/groovy/lib/mlci_server.py) died; see stderr'
        return new JsonSlurper().parseText(line) as Map
    }

    /** The real `mlci pipeline plan` for the argv the Groovy built (cached: the CLI is pure). */
    Map realPlan(List<String> argv, Map<String, String> envNow) {
        Map<String, String> e = [:]
        if (envNow.MLCI_CONFIG) {
            e.MLCI_CONFIG = envNow.MLCI_CONFIG
        }
        String key = workspace.path + '|' + e + '|' + argv
        if (!PLAN_CACHE.containsKey(key)) {
            Map r = mlciProcess(argv, e, workspace)
            if (r.status != 0) {
                return r
            }
            PLAN_CACHE[key] = r.stdout
        }
        return [status: 0, stdout: PLAN_CACHE[key]]
    }

    // ---------------------------------------------------------------- fake mlci for everything else

    static String argAfter(List<String> argv, String flag) {
        int i = argv.indexOf(flag)
        return i >= 0 && i + 1 < argv.size() ? argv[i + 1] : null
    }

    void writeAccuracy(String out, String suite, String verdict) {
        files["${out}/accuracy/${suite}/accuracy.json".toString()] = JsonOutput.toJson(
            [schema: 'mlci.accuracy/1', suite: suite, verdict: verdict])
        files["${out}/accuracy/${suite}/junit-accuracy.xml".toString()] = '<testsuite/>'
    }

    static final Map<Integer, String> VERDICTS = [0: 'PASS', 1: 'FAIL', 3: 'INCONCLUSIVE']

    /** Default answers; a test's `on(...)` handlers come first. */
    void installFakeMlci() {
        on(['pipeline', 'plan']) { Call c -> realPlan(c.extra.argv as List<String>, c.extra.env as Map) }
        on(['build']) { Call c ->
            files['.mlci/build.json'] = JsonOutput.toJson([schema: 'mlci.build/1', image: [
                name: 'registry.example.com:5000/ml/svc', digest: 'sha256:' + 'a' * 64]])
            0
        }
        on(['test', 'unit']) { Call c -> files['.mlci/junit/unit.xml'] = '<testsuite/>'; 0 }
        on(['test', 'acceptance']) { Call c -> files['.mlci/junit/acceptance.xml'] = '<testsuite/>'; 0 }
        on(['test', 'accuracy']) { Call c -> writeAccuracy('.mlci', argAfter(c.extra.argv, '--suite'), 'PASS'); 0 }
        on(['accuracy', 'run']) { Call c ->
            writeAccuracy(argAfter(c.extra.argv, '--out'), argAfter(c.extra.argv, '--suite'), 'PASS'); 0
        }
        on(['accuracy', 'merge']) { Call c ->
            assert argAfter(c.extra.argv, '--out') == '.mlci'
            List<String> dirs = c.extra.argv.drop(4)
            dirs.each { assert files.keySet().any { f -> f.startsWith(it + '/') }: "merge input ${it} was never unstashed" }
            // Shard inputs are .mlci/shards/<suite>/<k>/.mlci (each shard's own output directory).
            String suite = dirs[0].tokenize('/')[-3]
            writeAccuracy('.mlci', suite, 'PASS'); 0
        }
        on(['report', 'render']) { Call c -> files['.mlci/report/report.html'] = '<html/>'; 0 }
        on(['report', 'post']) { Call c -> 0 }
        on(['report', 'record']) { Call c -> 0 }
        on(['deploy']) { Call c -> files['.mlci/deploy.json'] = '{}'; 0 }
    }

    /** Sets the exit status of an mlci command (and, for accuracy, the verdict in its record). */
    PipelineHarness exit(List prefix, int status) {
        on(prefix) { Call c ->
            if ('accuracy' in prefix.take(2) && VERDICTS[status]) {
                String suite = argAfter(c.extra.argv, '--suite')
                writeAccuracy(argAfter(c.extra.argv, '--out') ?: '.mlci', suite, VERDICTS[status])
            }
            status
        }
    }

    Map answer(Call c) {
        for (List h : handlers) {
            Object match = h[0]
            boolean hit = match instanceof Pattern ? (c.extra.script =~ (Pattern) match).find()
                : (c.extra.argv != null && startsWith(c.extra.argv as List, match as List))
            if (hit) {
                Object r = ((Closure) h[1]).call(c)
                return r instanceof Map ? (Map) r : [status: (r ?: 0) as int, stdout: '']
            }
        }
        return [status: 0, stdout: '']
    }

    /** Decodes the argv of an mlci call from MLCI_ARG_1..n, the way the shell would expand it. */
    static List<String> argv(String script, Map<String, String> envNow) {
        def m = script =~ Pattern.compile('"\\$MLCI_ARG_(\\d+)"')
        if (!m.find()) {
            return null
        }
        int n = 0
        m.reset()
        while (m.find()) {
            n = Math.max(n, m.group(1) as int)
        }
        return (1..n).collect { i ->
            assert envNow.containsKey("MLCI_ARG_${i}".toString()): "MLCI_ARG_${i} is not set for:\n${script}"
            envNow["MLCI_ARG_${i}".toString()]
        }
    }

    // ---------------------------------------------------------------- mock steps

    static Map named(List a) { a && a[0] instanceof Map ? (Map) a[0] : [:] }

    static Closure body(List a) { a && a[-1] instanceof Closure ? (Closure) a[-1] : null }

    static Set<String> matching(Map<String, String> fs, String includes, String excludes = '') {
        return AntGlob.select(fs.keySet(), includes, excludes, false) as Set
    }

    /** readJSON(returnPojo: true) answers plain LinkedHashMap / ArrayList (serializable, as CPS needs). */
    static Object pojo(Object v) {
        if (v instanceof Map) {
            LinkedHashMap out = new LinkedHashMap()
            ((Map) v).each { k, x -> out.put(k, pojo(x)) }
            return out
        }
        if (v instanceof List) {
            ArrayList out = new ArrayList()
            ((List) v).each { out.add(pojo(it)) }
            return out
        }
        return v
    }

    void installMocks() {
        mocks.echo = { List a -> record('echo', a); exec?.say("[Pipeline] echo ${a[0]}") }
        mocks.error = { List a -> record('error', a); exec?.say("ERROR: ${a[0]}"); throw new StepFailure(a[0] as String) }
        mocks.unstable = { List a ->
            record('unstable', a)
            exec?.say("WARNING: ${a[0]}")
            if (currentBuild.result in [null, 'SUCCESS']) {
                currentBuild.result = 'UNSTABLE'
            }
        }
        mocks.sh = { List a ->
            Map m = a[0] instanceof Map ? (Map) a[0] : [script: a[0]]
            Map<String, String> envNow = env.snapshot()
            String script = m.script as String
            Call c = record('sh', a, [script: script, label: m.label, env: envNow, argv: argv(script, envNow)])
            Map r
            if (exec) {
                c.extra.cwd = exec.workspace().path
                exec.say("[Pipeline] sh${m.label ? ' (' + m.label + ')' : ''}")
                long t0 = System.currentTimeMillis()
                r = exec.sh(script, envNow)
                c.extra.seconds = (System.currentTimeMillis() - t0) / 1000.0
                exec.log << r.stderr
                if (!m.returnStdout) {
                    exec.log << r.stdout
                }
                c.extra.stdout = r.stdout
                c.extra.stderr = r.stderr
            } else {
                r = answer(c)
            }
            c.extra.status = r.status
            if (m.returnStatus) {
                return r.status
            }
            if (r.status != 0) {
                throw new StepFailure("script returned exit code ${r.status}".toString())
            }
            return m.returnStdout ? r.stdout : null
        }
        mocks.stage = { List a -> record('stage', a); exec?.say("[Pipeline] stage ${a[0]}"); within("stage:${a[0]}".toString(), body(a)) }
        mocks.node = { List a ->
            String label = a.size() > 1 ? a[0] as String : ''
            Call c = record('node', a, [label: label])
            // An unlabelled node may be the controller: the library always names an agent label.
            assert label: "node {} without a label may run on the controller: ${c}"
            if (agentLoss.remove((Object) label)) {
                throw new AgentLost(label)
            }
            within("node:${label}".toString()) {
                if (exec) {
                    return exec.node(label) {
                        c.extra.workspace = exec.workspace().path
                        c.extra.agent = env.NODE_NAME
                        body(a).call()
                    }
                }
                withOverlay([NODE_NAME: label]) { body(a).call() }
            }
        }
        mocks.dir = { List a ->
            record('dir', a)
            List<String> dirs = frame().dirs
            dirs.add(a[0] as String)
            try {
                within("dir:${a[0]}".toString(), body(a))
            } finally {
                dirs.remove(dirs.size() - 1)
            }
        }
        mocks.deleteDir = { List a ->
            record('deleteDir', a)
            if (exec) {
                exec.workspace().deleteDir()
            } else {
                String prefix = frame().dirs.join('/') + '/'
                files.keySet().removeAll(files.keySet().findAll { it.startsWith(prefix) })
            }
        }
        mocks.retry = { List a ->
            Map opts = a[0] instanceof Map ? (Map) a[0] : [count: a[0]]
            record('retry', a)
            assert opts.conditions: 'retry without conditions would also retry a failed gate'
            for (int attempt = 1; ; attempt++) {
                try {
                    return within('retry') { body(a).call() }
                } catch (AgentLost e) {
                    if (!(AGENT_CONDITION in opts.conditions) || attempt >= (opts.count as int)) {
                        throw e
                    }
                    record('retry-attempt', [attempt + 1])
                }
            }
        }
        mocks.agent = { List a -> AGENT_CONDITION }
        mocks.nonresumable = { List a -> NONRESUMABLE_CONDITION }
        mocks.timeout = { List a ->
            Map m = named(a)
            record('timeout', a)
            assert m.unit == 'MINUTES' && (m.time as int) > 0: "bad timeout ${m}"
            within("timeout:${m.time}".toString(), body(a))
        }
        mocks.parallel = { List a ->
            Map branches = [:]
            branches.putAll((Map) a[0])
            boolean failFast = branches.remove('failFast') as boolean
            record('parallel', a, [branches: branches.keySet() as List])
            if (exec) {
                // Jenkins runs the branches at the same time: so does the executing mode.
                concurrently(branches as Map<Object, Closure>)
                return
            }
            Throwable first = null
            for (Object k : branches.keySet()) {
                try {
                    within("parallel:${k}".toString(), (Closure) branches[k])
                } catch (Throwable t) {
                    first = first ?: t
                    if (failFast) {
                        break
                    }
                }
            }
            if (first) {
                throw first
            }
        }
        // Pipeline: Milestone Step: ordinals must increase within a build ("Invalid ordinal").
        mocks.milestone = { List a ->
            Map m = named(a)
            record('milestone', a)
            int ordinal = m.containsKey('ordinal') ? (m.ordinal as int) : lastMilestone + 1
            if (ordinal <= lastMilestone) {
                throw new StepFailure("Invalid ordinal ${ordinal}, as the previous one was ${lastMilestone}".toString())
            }
            lastMilestone = ordinal
        }
        mocks.input = { List a ->
            Map m = named(a)
            record('input', a)
            if (m.id) {
                assert calls('input').count { it.named?.id == m.id } == 1: "input id '${m.id}' used twice in one build"
            }
            inputAction.call(m)
        }
        mocks.lock = { List a ->
            Map m = named(a)
            record('lock', a)
            within("lock:${m.resource ?: a[0]}".toString(), body(a))
        }
        mocks.withEnv = { List a ->
            Map<String, String> vars = [:]
            (a[0] as List).each { String kv ->
                int i = kv.indexOf('=')
                assert i > 0: "withEnv entry without '=': ${kv}"
                vars[kv.substring(0, i)] = kv.substring(i + 1)
            }
            record('withEnv', a, [vars: vars])
            within('withEnv') { withOverlay(vars, body(a)) }
        }
        mocks.usernamePassword = { List a -> [binding: 'usernamePassword'] + named(a) }
        mocks.string = { List a -> [binding: 'string'] + named(a) }
        mocks.file = { List a -> [binding: 'file'] + named(a) }
        // Git plugin: the symbol and its two parameters; binds like the plugin (GitUsernamePasswordBinding).
        mocks.gitUsernamePassword = { List a ->
            Map m = named(a)
            assert m.keySet() == ['credentialsId', 'gitToolName'] as Set: "gitUsernamePassword(${m.keySet()})"
            [binding: 'gitUsernamePassword'] + m
        }
        mocks.withCredentials = { List a ->
            Map<String, String> vars = [:]
            List<File> written = []
            (a[0] as List).each { Map b ->
                Map cred = credentials[b.credentialsId as String]
                if (cred == null) {
                    throw new StepFailure("Could not find credentials entry with ID '${b.credentialsId}'".toString())
                }
                if (b.'$class' == 'AmazonWebServicesCredentialsBinding') {
                    assert cred.kind == 'aws'
                    vars[b.accessKeyVariable as String] = cred.AWS_ACCESS_KEY_ID
                    vars[b.secretKeyVariable as String] = cred.AWS_SECRET_ACCESS_KEY
                } else if (b.binding == 'usernamePassword') {
                    assert cred.kind == 'usernamePassword'
                    vars[b.usernameVariable as String] = cred.user
                    vars[b.passwordVariable as String] = cred.password
                } else if (b.binding == 'string') {
                    assert cred.kind == 'string'
                    vars[b.variable as String] = cred.value
                } else if (b.binding == 'gitUsernamePassword') {
                    assert cred.kind == 'usernamePassword'
                    vars.GIT_USERNAME = cred.user
                    vars.GIT_PASSWORD = cred.password
                    if (exec) {
                        // The plugin's askpass script answers git's prompts from the two variables.
                        File f = exec.secretFile('pass.sh', '#!/bin/sh\ncase "$1" in\n  Username*) echo "$GIT_USERNAME" ;;\n' +
                                                            '  *) echo "$GIT_PASSWORD" ;;\nesac\n', true)
                        written << f
                        vars.GIT_ASKPASS = f.path
                    } else {
                        vars.GIT_ASKPASS = "${env.WORKSPACE}@tmp/secretFiles/0a1b/auth1.sh".toString()
                    }
                    vars.GIT_TERMINAL_PROMPT = 'false'
                } else if (b.binding == 'file') {
                    assert cred.kind == 'file'
                    if (exec) {
                        File f = exec.secretFile((cred.fileName ?: 'secret') as String, cred.content as String)
                        written << f
                        vars[b.variable as String] = f.path
                    } else {
                        vars[b.variable as String] = cred.path
                    }
                } else {
                    throw new AssertionError((Object) "unknown credentials binding ${b}".toString())
                }
            }
            record('withCredentials', a, [vars: vars.keySet() as List])
            try {
                within('withCredentials') { withOverlay(vars, body(a)) }
            } finally {
                written.each { it.parentFile.deleteDir() }
            }
        }
        mocks.properties = { List a -> record('properties', a) }
        mocks.pipelineTriggers = { List a -> [pipelineTriggers: a[0]] }
        mocks.cron = { List a -> [cron: a[0]] }
        mocks.checkout = { List a ->
            Call c = record('checkout', a)
            assert a[0] != null && a[0].is(binding.getVariable('scm')): "checkout of something else than scm: ${a[0]}"
            if (exec) {
                Map scm = exec.checkout()
                c.extra.result = scm
                return scm
            }
            return [GIT_BRANCH: env.BRANCH_NAME ?: 'main', GIT_COMMIT: FIXTURE_COMMIT,
                    GIT_URL: 'https://git.example.com/ml/svc.git']
        }
        mocks.junit = { List a ->
            Call c = record('junit', a)
            if (exec) {
                c.extra.putAll(exec.junit(named(a)))
            }
        }
        mocks.archiveArtifacts = { List a ->
            Call c = record('archiveArtifacts', a)
            if (exec) {
                c.extra.files = exec.archive(named(a))
            }
        }
        mocks.publishHTML = { List a ->
            if (!htmlPublisher) {
                record('publishHTML-missing', a)
                throw new NoSuchMethodError("No such DSL method 'publishHTML' found among steps")
            }
            Call c = record('publishHTML', a)
            if (exec) {
                c.extra.files = exec.publishHTML(named(a).target as Map)
            }
        }
        mocks.fileExists = { List a ->
            return exec ? new File(exec.workspace(), a[0] as String).exists() : files.containsKey(a[0] as String)
        }
        mocks.readJSON = { List a ->
            Map m = named(a)
            record('readJSON', a)
            assert m.returnPojo == true: 'readJSON without returnPojo: true turns null into a truthy JSONNull'
            String text = m.containsKey('text') ? m.text : exec ? readWorkspace(m.file as String) : files[m.file as String]
            if (text == null) {
                throw new StepFailure("readJSON: ${m.file} does not exist".toString())
            }
            return pojo(new JsonSlurper().parseText(text))
        }
        mocks.stash = { List a ->
            Map m = named(a)
            if (exec) {
                record('stash', a, [files: exec.stash(m)])
                return
            }
            Set<String> hit = matching(files, m.includes as String, m.excludes as String)
            record('stash', a, [files: hit])
            if (!hit && !m.allowEmpty) {
                throw new StepFailure("No files included in stash '${m.name}'".toString())
            }
            stashes[m.name as String] = files.subMap(hit)
        }
        mocks.unstash = { List a ->
            String name = a[0] instanceof Map ? a[0].name : a[0]
            Call c = record('unstash', a)
            if (exec) {
                c.extra.cwd = exec.workspace().path
                c.extra.files = exec.unstash(name)
                return
            }
            if (!stashes.containsKey(name)) {
                throw new StepFailure("No such saved stash '${name}'".toString())
            }
            String prefix = frame().dirs ? frame().dirs.join('/') + '/' : ''
            stashes[name].each { k, v -> files[prefix + k] = v }
        }
    }

    /** A workspace file's text in the executing mode (null when missing). */
    String readWorkspace(String path) {
        File f = new File(exec.workspace(), path)
        return f.isFile() ? f.getText('UTF-8') : null
    }
}
