import groovy.json.JsonOutput
import groovy.json.JsonSlurper

/**
 * The executing mode of PipelineHarness: the steps do what Jenkins' do, for real, on this machine.
 *
 * - Agents are directories (`agents/<name>/`, each with its labels and its own HOME); `node(label)` picks one
 *   whose labels satisfy the expression (a label that could match the controller fails the test) and runs the
 *   body in its workspace for this job (`workspace/<job>`, `@2` when the agent is already busy with this job).
 * - `sh` writes the script under `$WORKSPACE@tmp` and runs it as the durable-task plugin does (`sh -xe script`,
 *   or its `#!` interpreter) in the workspace, with the environment of the enclosing withEnv/withCredentials/
 *   node blocks; exit status and stdout are honoured; stdout and stderr go to the build log.
 * - `checkout scm` fetches the job's branch from a real git origin into the workspace, checks out the build's
 *   commit (pinned when the build starts, as multibranch does) on a detached HEAD, and returns the map the Git
 *   plugin returns (GIT_BRANCH, GIT_COMMIT, GIT_URL, GIT_PREVIOUS_COMMIT / GIT_PREVIOUS_SUCCESSFUL_COMMIT after a
 *   first build of the job).
 * - `stash`/`unstash` copy real files (Ant includes/excludes); `archiveArtifacts`, `junit` and `publishHTML`
 *   check their patterns against the files the run produced, as the plugins do (nothing matched fails unless
 *   allowed; JUnit files older than the build are ignored and none new fails); archived files land in
 *   `archive/`, the HTML report in `archive/htmlreports/`.
 * - Credentials come from the harness' store by id and kind; file credentials and the Git askpass script are
 *   written under `$WORKSPACE@tmp/secretFiles/` for the block and removed after it, as the bindings do.
 */
class Executing {
    static final String CONTROLLER_LABEL = 'built-in'

    static class Agent {
        String name
        Set<String> labels
        File dir
        int busy

        File home() { new File(dir, 'home') }
    }

    final PipelineHarness h
    final File root
    final List<Agent> agents = []
    /** The service repository Jenkins checks out: origin URL and the job's branch. */
    String originUrl
    String branch
    /** Pinned at build start (`startBuild`). */
    String commit
    /** Per job: the commits of its previous builds (GIT_PREVIOUS_COMMIT). */
    final Map<String, List<String>> history = [:]
    final StringBuffer log = new StringBuffer()
    long buildStart
    /** Workspaces held by a node block in any thread (a second holder of the same one gets @2). */
    final Set<File> inUse = [] as Set
    boolean verbose = Boolean.getBoolean('mlci.harness.verbose')

    Executing(PipelineHarness h, File root) {
        this.h = h
        this.root = root
        root.mkdirs()
    }

    File archive() { new File(root, "builds/${h.env.base.JOB_NAME}/${h.env.base.BUILD_NUMBER}/archive") }

    File stashes() { new File(root, "builds/${h.env.base.JOB_NAME}/${h.env.base.BUILD_NUMBER}/stashes") }

    Agent agent(String name, List<String> labels) {
        Agent a = new Agent(name: name, labels: ([name] + labels) as Set, dir: new File(root, "agents/${name}"))
        a.home().mkdirs()
        agents << a
        return a
    }

    /** A new build of the job for `branchName` at the origin's current head of that branch. */
    void startBuild(String jobName, String branchName, int number) {
        h.env.base.JOB_NAME = jobName
        h.env.base.BUILD_NUMBER = number as String
        h.env.base.BUILD_TAG = "jenkins-${jobName.replace('/', '-')}-${number}".toString()
        h.env.base.BUILD_URL = "http://jenkins.invalid/job/${jobName.replace('/', '/job/')}/${number}/".toString()
        branch = branchName
        commit = git(root, ['ls-remote', originUrl, "refs/heads/${branchName}".toString()]).tokenize()[0]
        assert commit: "origin has no branch ${branchName}"
        buildStart = System.currentTimeMillis()
    }

    void say(String line) {
        log << line << '\n'
        if (verbose) {
            System.err.println(line)
        }
    }

    String logTail(int lines = 60) { log.toString().readLines().takeRight(lines).join('\n') }

    // ---------------------------------------------------------------- agents and workspaces

    File workspace() {
        PipelineHarness.Frame f = h.frame()
        if (!f.workspaces) {
            throw new AssertionError((Object) 'a step that needs a workspace ran outside node {}')
        }
        File ws = f.workspaces[-1]
        return f.dirs ? new File(ws, f.dirs.join('/')) : ws
    }

    /** The node's workspace (not the dir() block's). */
    File nodeWorkspace() { h.frame().workspaces[-1] }

    /** Evaluates a Jenkins label expression (&&, ||, !, parentheses) against a set of labels. */
    static boolean satisfies(String expr, Set<String> labels) {
        LabelExpr p = new LabelExpr(tokens: (expr =~ /&&|\|\||!|\(|\)|[^\s&|!()]+/).collect { it as String },
                                    labels: labels)
        boolean result = p.or()
        assert p.pos == p.tokens.size(): "cannot parse label expression '${expr}'"
        return result
    }

    /** Recursive descent over label tokens: or := and ('||' and)*, and := atom ('&&' atom)*. */
    static class LabelExpr {
        List<String> tokens
        Set<String> labels
        int pos = 0

        boolean or() {
            boolean v = and()
            while (pos < tokens.size() && tokens[pos] == '||') {
                pos++
                boolean r = and()
                v = v || r
            }
            return v
        }

        boolean and() {
            boolean v = atom()
            while (pos < tokens.size() && tokens[pos] == '&&') {
                pos++
                boolean r = atom()
                v = v && r
            }
            return v
        }

        boolean atom() {
            String t = tokens[pos++]
            if (t == '!') {
                return !atom()
            }
            if (t == '(') {
                boolean v = or()
                assert tokens[pos++] == ')': "unbalanced label expression ${tokens}"
                return v
            }
            return labels.contains(t.replaceAll(/^"|"$/, ''))
        }
    }

    Object node(String label, Closure body) {
        assert label: 'node {} without a label may run on the controller'
        assert !satisfies(label, [CONTROLLER_LABEL, 'master'] as Set):
            "node('${label}') may run on the controller (built-in node): add !built-in"
        List<Agent> fit = agents.findAll { satisfies(label, it.labels) }
        assert fit: "no agent matches '${label}'; agents: ${agents.collect { it.name + it.labels }}"
        String job = (h.env.base.JOB_NAME as String).replaceAll('[^A-Za-z0-9_.-]', '_')
        Agent a
        File ws
        synchronized (this) {
            a = fit.min { it.busy }
            File base = new File(a.dir, "workspace/${job}")
            ws = base
            for (int n = 2; inUse.contains(ws); n++) {
                ws = new File(base.path + '@' + n)
            }
            a.busy++
            inUse << ws
        }
        ws.mkdirs()
        PipelineHarness.Frame f = h.frame()
        f.workspaces << ws
        List<String> savedDirs = new ArrayList<String>(f.dirs)
        f.dirs.clear()
        say("[Pipeline] node: Running on ${a.name} in ${ws}")
        try {
            return h.withOverlay([WORKSPACE: ws.path, NODE_NAME: a.name, NODE_LABELS: a.labels.join(' '),
                                  HOME: a.home().path]) { body.call() }
        } finally {
            f.workspaces.remove(f.workspaces.size() - 1)
            f.dirs.clear()
            f.dirs.addAll(savedDirs)
            synchronized (this) {
                inUse.remove(ws)
                a.busy--
            }
        }
    }

    /** The agent a workspace belongs to. */
    String agentOf(String workspace) {
        return agents.find { workspace.startsWith(it.dir.path + '/') }?.name
    }

    // ---------------------------------------------------------------- sh

    /** Minutes of the innermost timeout blocks (the sh gets the smallest), default one hour. */
    int minutes() {
        List<Integer> t = h.ctx.findAll { it.startsWith('timeout:') }.collect { it.substring(8) as int }
        return t ? t.min() : 60
    }

    Map sh(String script, Map<String, String> envNow) {
        File ws = workspace()
        File tmp = new File(nodeWorkspace().path + "@tmp/durable-${UUID.randomUUID().toString().take(8)}")
        tmp.mkdirs()
        File file = new File(tmp, 'script.sh')
        file.text = script
        List<String> cmd = script.startsWith('#!') ? [file.path] : ['sh', '-xe', file.path]
        file.setExecutable(true)
        ProcessBuilder pb = new ProcessBuilder(cmd).directory(ws)
        pb.environment().clear()
        pb.environment().putAll(envNow.findAll { k, v -> v != null })
        Map r = Proc.run(pb, minutes())
        tmp.deleteDir()
        return r
    }

    // ---------------------------------------------------------------- checkout

    static String git(File cwd, List<String> args) {
        Process p = new ProcessBuilder(['git'] + args).directory(cwd).redirectErrorStream(true).start()
        String out = p.inputStream.getText('UTF-8')
        assert p.waitFor() == 0: "git ${args.join(' ')} failed in ${cwd}:\n${out}"
        return out.trim()
    }

    /** Git plugin: init once, fetch the branch, check out the build's commit detached; the map it returns. */
    Map checkout() {
        File ws = workspace()
        if (!new File(ws, '.git').isDirectory()) {
            git(ws, ['init', '-q'])
            git(ws, ['remote', 'add', 'origin', originUrl])
        }
        git(ws, ['fetch', '-q', '--tags', '--force', '--', originUrl,
                 "+refs/heads/${branch}:refs/remotes/origin/${branch}".toString()])
        git(ws, ['checkout', '-q', '-f', commit])
        say("[Pipeline] checkout: ${commit} (${branch}) from ${originUrl}")
        Map out = [GIT_BRANCH: branch, GIT_COMMIT: commit, GIT_URL: originUrl]
        List<String> previous = history[h.env.base.JOB_NAME as String] ?: []
        if (previous) {
            out.GIT_PREVIOUS_COMMIT = previous[-1]
            out.GIT_PREVIOUS_SUCCESSFUL_COMMIT = previous[-1]
        }
        return out
    }

    /** Ends a build: the job's next build sees this commit as GIT_PREVIOUS_COMMIT. */
    void endBuild() {
        String job = h.env.base.JOB_NAME as String
        if (!history.containsKey(job)) {
            history[job] = []
        }
        history[job] << commit
    }

    // ---------------------------------------------------------------- files: stash, archive, junit, HTML

    static void copy(File from, File to) {
        to.parentFile.mkdirs()
        java.nio.file.Files.copy(from.toPath(), to.toPath(), java.nio.file.StandardCopyOption.REPLACE_EXISTING)
    }

    List<String> stash(Map m) {
        File ws = workspace()
        List<String> hit = AntGlob.select(AntGlob.files(ws), m.includes as String ?: '**', m.excludes as String,
                                          m.useDefaultExcludes != false)
        if (!hit && !m.allowEmpty) {
            throw new StepFailure("No files included in stash '${m.name}'".toString())
        }
        File dir = new File(stashes(), m.name as String)
        dir.deleteDir()
        dir.mkdirs()
        hit.each { copy(new File(ws, it), new File(dir, it)) }
        say("[Pipeline] stash: Stashed ${hit.size()} file(s) as ${m.name}")
        return hit
    }

    List<String> unstash(String name) {
        File dir = new File(stashes(), name)
        if (!dir.isDirectory()) {
            throw new StepFailure("No such saved stash '${name}'".toString())
        }
        List<String> got = AntGlob.files(dir)
        got.each { copy(new File(dir, it), new File(workspace(), it)) }
        say("[Pipeline] unstash: ${name} (${got.size()} file(s))")
        return got
    }

    List<String> archive(Map m) {
        File ws = workspace()
        List<String> hit = AntGlob.select(AntGlob.files(ws), m.artifacts as String, m.excludes as String,
                                          m.defaultExcludes != false)
        if (!hit && !m.allowEmptyArchive) {
            throw new StepFailure("No artifacts found that match the file pattern \"${m.artifacts}\". Configuration error?"
                                  .toString())
        }
        hit.each { copy(new File(ws, it), new File(archive(), it)) }
        say("[Pipeline] archiveArtifacts: Archiving ${hit.size()} artifact(s)")
        return hit
    }

    /** JUnit plugin: files newer than the build start are parsed; failures make the build UNSTABLE. */
    Map junit(Map m) {
        File ws = workspace()
        List<String> hit = AntGlob.select(AntGlob.files(ws), m.testResults as String, '', false)
        if (!hit) {
            if (m.allowEmptyResults) {
                say('[Pipeline] junit: None of the test reports contained any result')
                return [files: [], tests: 0, failures: 0]
            }
            throw new StepFailure('No test report files were found. Configuration error?')
        }
        List<String> fresh = hit.findAll { buildStart - 3000 <= new File(ws, it).lastModified() }
        if (!fresh) {
            throw new StepFailure("Test reports were found but none of them are new. Did leafNodes run? For example, ${hit[0]} is old"
                                  .toString())
        }
        int tests = 0
        int failures = 0
        for (String f : fresh) {
            def xml = new XmlSlurper().parse(new File(ws, f))
            List suites = xml.name() == 'testsuites' ? xml.testsuite.list() : [xml]
            assert xml.name() in ['testsuite', 'testsuites']: "${f} is not a JUnit report"
            suites.each { s ->
                tests += s.testcase.size()
                failures += s.testcase.findAll { it.failure.size() || it.error.size() }.size()
            }
        }
        if (!tests && !m.allowEmptyResults) {
            throw new StepFailure('None of the test reports contained any result')
        }
        if (failures && h.currentBuild.result in [null, 'SUCCESS']) {
            h.currentBuild.result = 'UNSTABLE'
        }
        say("[Pipeline] junit: ${fresh.size()} report(s), ${tests} test(s), ${failures} failure(s)")
        return [files: fresh, tests: tests, failures: failures]
    }

    List<String> publishHTML(Map t) {
        File dir = new File(workspace(), t.reportDir as String)
        List<String> files = AntGlob.split(t.reportFiles as String)
        List<String> missing = files.findAll { !new File(dir, it).isFile() }
        if (!dir.isDirectory() || missing) {
            if (t.allowMissing) {
                say("[Pipeline] publishHTML: ${dir} or ${missing} missing (allowMissing)")
                return []
            }
            throw new StepFailure("Specified HTML directory '${dir}' does not exist or lacks ${missing}".toString())
        }
        File target = new File(archive(), "htmlreports/${t.reportName}")
        AntGlob.files(dir).each { copy(new File(dir, it), new File(target, it)) }
        return files
    }

    // ---------------------------------------------------------------- credentials on disk

    /** A file under $WORKSPACE@tmp/secretFiles for the length of a withCredentials block. */
    File secretFile(String name, String content, boolean executable = false) {
        File dir = new File(nodeWorkspace().path + "@tmp/secretFiles/${UUID.randomUUID()}")
        dir.mkdirs()
        File f = new File(dir, name)
        f.text = content
        f.setReadable(false, false)
        f.setReadable(true, true)
        if (executable) {
            f.setExecutable(true, true)
        }
        return f
    }

    static String toJson(Object o) { JsonOutput.toJson(o) }

    static Object parse(String text) { PipelineHarness.pojo(new JsonSlurper().parseText(text)) }
}
