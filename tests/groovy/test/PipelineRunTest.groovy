import groovy.json.JsonSlurper
import org.junit.AfterClass
import org.junit.BeforeClass
import org.junit.FixMethodOrder
import org.junit.Test
import org.junit.runners.MethodSorters

/**
 * `mlPipeline()` run for real, as Jenkins would run it: the executing harness (lib/Executing.groovy) on the
 * digits example with the REAL runtime image (`mlci build --runtime`), the real Docker engine and the S3
 * server, two agents, workspaces reused from build to build like Jenkins does. Four builds of one multibranch
 * project: a feature-branch push, a develop push (deploys to staging through a scripted kubectl), a develop
 * timer build (the sharded heavy suite on both agents, stash -> merge, no deploy) and main (approval answered,
 * deploys to production). Every build runs with GIT_COMMIT/GIT_BRANCH/GIT_URL naming the shared library's own
 * checkout (jenkinsci/workflow-job-plugin#788): the records must cite the service's commit from `checkout scm`.
 */
@FixMethodOrder(MethodSorters.NAME_ASCENDING)
class PipelineRunTest {
    static final String DOCKER = RuntimeImage.DOCKER
    static final String LIBRARY_COMMIT = 'feedface' * 5
    static final String SECRET_KEY = 'groovy-test-secret-Key/9q'
    static final String KUBE_TOKEN = 'kube-token-secret-7c1d'
    static File root
    static Map service
    static String runtime
    /** The runtime image plus a scripted kubectl (no Kubernetes API server can run here). */
    static String withKubectl
    static File kubectlState
    static Map<String, List<String>> history = [:]
    static int builds = 0

    @BeforeClass
    static void setUp() {
        root = File.createTempDir('mlci-pipeline-run-', '')
        runtime = RuntimeImage.tag()
        String tag = UUID.randomUUID().toString().take(8)
        Map r = python(['setup', root.path, tag])
        service = new JsonSlurper().parseText(r.stdout.readLines()[-1]) as Map
        kubectlState = new File(root, 'cache/fake-kubectl')
        kubectlState.mkdirs()
        File ctx = new File(root, 'kubectl-image')
        ctx.mkdirs()
        new File(ctx, 'fake_kubectl.py').text = new File(PipelineHarness.ROOT, 'tests/python/deploy/fake_kubectl.py').text
        new File(ctx, 'kubectl').text = "#!/opt/mlci/bin/python\nimport runpy\n" +
                                        "runpy.run_path('/opt/mlci-test/fake_kubectl.py', run_name='__main__')\n"
        new File(ctx, 'Dockerfile').text = """FROM ${runtime}
COPY fake_kubectl.py /opt/mlci-test/fake_kubectl.py
COPY --chmod=755 kubectl /usr/local/bin/kubectl
ENV FAKE_KUBECTL_DIR=${kubectlState.path}
"""
        withKubectl = "mlci-groovytest-kubectl-${tag}:test".toString()
        Map b = RuntimeImage.run([DOCKER, 'build', '-q', '-t', withKubectl, ctx.path])
        assert b.status == 0: b.output
    }

    @AfterClass
    static void tearDown() {
        if (service) {
            python(['cleanup', service.bucket as String, service.image_prefix as String])
        }
        if (withKubectl) {
            RuntimeImage.run([DOCKER, 'rmi', '-f', withKubectl])
        }
        if (!Boolean.getBoolean('mlci.keep')) {
            root?.deleteDir()
        }
    }

    static Map python(List<String> args) {
        File venv = new File(PipelineHarness.ROOT, '.venv/bin/python')
        ProcessBuilder pb = new ProcessBuilder([venv.exists() ? venv.path : 'python3',
                                                new File(PipelineHarness.ROOT, 'tests/groovy/lib/digits_service.py').path] + args)
        pb.environment().PYTHONPATH = new File(PipelineHarness.ROOT, 'python').path
        Map r = Proc.run(pb)
        assert r.status == 0: "digits_service.py ${args[0]} failed:\n${r.stdout}\n${r.stderr}"
        return r
    }

    /** One build of the multibranch job for `branch`, started by `cause`, on a Jenkins with two agents. */
    static PipelineHarness build(String branch, String cause, String image = runtime) {
        PipelineHarness h = PipelineHarness.executing(root)
        h.exec.history.putAll(history)
        h.exec.agent('agent-1', ['linux', 'docker'])
        h.exec.agent('agent-2', ['linux', 'docker'])
        h.exec.originUrl = service.origin
        h.branch(branch, cause)
        h.env.base.putAll([
            // The administrator's global environment and the agents' node properties.
            MLCI_RUNNER_IMAGE: image, MLCI_BASE_IMAGE: System.getenv('MLCI_BASE_IMAGE') ?: 'mlci-base:bookworm',
            MLCI_CACHE: new File(root, 'cache').path, MLCI_DOCKER: DOCKER,
            AWS_ENDPOINT_URL: System.getenv('AWS_ENDPOINT_URL'), AWS_DEFAULT_REGION: 'us-east-1',
            DOCKER_BUILDKIT: '1',
            // What a shared library's checkout leaves in a build's environment (workflow-job-plugin#788).
            GIT_COMMIT: LIBRARY_COMMIT, GIT_BRANCH: 'master', GIT_URL: 'https://git.example.com/jenkins/mlci-library.git',
        ])
        h.credential('s3-artifacts', [kind: 'aws', AWS_ACCESS_KEY_ID: 'AKIAGROOVYTEST0000001', AWS_SECRET_ACCESS_KEY: SECRET_KEY])
        ['staging', 'production'].each { String env ->
            h.credential("kube-${env}".toString(), [kind: 'file', fileName: 'kubeconfig', content: kubeconfig(env)])
        }
        h.exec.startBuild("digits/${branch.replace('/', '%2F')}".toString(), branch, ++builds)
        return h
    }

    static String kubeconfig(String env) {
        return groovy.json.JsonOutput.toJson([
            apiVersion: 'v1', kind: 'Config', 'current-context': "${env}-ctx".toString(),
            clusters: [[name: 'c1', cluster: [server: 'https://10.0.0.1:6443']]],
            contexts: [[name: "${env}-ctx".toString(), context: [cluster: 'c1', user: 'ci']]],
            users: [[name: 'ci', user: [token: KUBE_TOKEN]]]])
    }

    /** Runs mlPipeline; on failure the assertion carries the end of the build log. */
    static Map run(PipelineHarness h) {
        long t0 = System.currentTimeMillis()
        try {
            Map out = h.run('mlPipeline') as Map
            return out
        } catch (Throwable t) {
            AssertionError e = new AssertionError((Object) "mlPipeline failed: ${t}\n--- build log (tail) ---\n${h.exec.logTail(80)}".toString())
            e.initCause(t)
            throw e
        } finally {
            File log = new File(h.exec.archive().parentFile, 'log')
            log.parentFile.mkdirs()
            log.text = h.exec.log.toString()
            h.exec.endBuild()
            history.putAll(h.exec.history)
            String slowest = h.calls('sh').findAll { it.extra.seconds }.sort { -it.extra.seconds }.take(4)
                              .collect { "${it.extra.label} ${it.extra.seconds}s" }.join(', ')
            System.err.println(String.format('  %s #%s: %.0fs (%s)', h.env.base.JOB_NAME, h.env.base.BUILD_NUMBER,
                                             (System.currentTimeMillis() - t0) / 1000.0, slowest))
        }
    }

    static Map json(File f) {
        assert f.isFile(): "${f} was not written"
        return PipelineHarness.pojo(new JsonSlurper().parse(f)) as Map
    }

    /** The main node's workspace (where the stages ran). */
    static File mainWorkspace(PipelineHarness h) {
        String ws = h.calls('sh').find { it.extra.argv?.getAt(0) == 'build' }.extra.cwd
        return new File(ws)
    }

    static List<String> stages(PipelineHarness h) { h.calls('stage')*.args*.getAt(0) as List<String> }

    /** What every build must show: provenance from the checkout, published records, no secret anywhere. */
    static void assertCommon(PipelineHarness h, String branch) {
        Map build = archived(h, '.mlci/build.json')
        // a Jenkins checkout is clean: the branch tag, records that can be recorded and become a baseline
        assert build.git == [commit: h.exec.commit, branch: branch, dirty: false]
        assert build.git.commit != LIBRARY_COMMIT && build.run.id
        String image = "${build.image.name}@${build.image.digest}"
        Map inspect = (new JsonSlurper().parseText(RuntimeImage.run([DOCKER, 'image', 'inspect', build.image.id as String]).output) as List)[0] as Map
        Map labels = inspect.Config.Labels as Map
        assert labels['org.opencontainers.image.revision'] == h.exec.commit
        assert labels['org.opencontainers.image.source'] == service.origin
        assert labels['org.mlci.git.branch'] == branch
        // Archived: the records, never a secret-shaped file; nothing archived or logged holds a secret.
        List<String> archived = AntGlob.files(h.exec.archive())
        assert '.mlci/build.json' in archived
        assert !archived.any { AntGlob.matches(it, org.mlci.Publish.SECRETS) }
        archived.each {
            String text = new File(h.exec.archive(), it).getText('ISO-8859-1')
            assert !text.contains(SECRET_KEY): it
            // Records, seeds and the report never cite the library's commit that GIT_COMMIT held.
            assert !text.contains(LIBRARY_COMMIT): it
        }
        assert !h.exec.log.toString().contains(SECRET_KEY) && !h.exec.log.toString().contains(KUBE_TOKEN)
        assert image.contains('@sha256:')
    }

    /** The accuracy record, JUnit and report this build published (archived, as a Jenkins user sees them). */
    static void assertAccuracy(PipelineHarness h, String suite, String branch) {
        Map rec = archived(h, ".mlci/accuracy/${suite}/accuracy.json")
        assert rec.verdict == 'PASS' && rec.suite == suite
        assert rec.git.commit == h.exec.commit && rec.git.branch == branch
        assert rec.image.digest == archived(h, '.mlci/build.json').image.digest
        assert rec.run.id == archived(h, '.mlci/build.json').run.id && rec.git.dirty == false  // this run's record
        assert h.calls('junit').any { it.extra.tests > 0 && it.extra.files.any { f -> f.contains("accuracy/${suite}/") } }
        File html = new File(h.exec.archive(), 'htmlreports/mlci report/report.html')
        assert html.isFile() && html.text.contains(suite) && html.text.contains(h.exec.commit.take(7))
        assert '.mlci/report/report.html' in AntGlob.files(h.exec.archive())
    }

    static Map archived(PipelineHarness h, String path) { json(new File(h.exec.archive(), path)) }

    @Test
    void a_feature_branch_push_builds_tests_and_gates_without_deploying() {
        PipelineHarness h = build('feature/x', 'push')
        Map out = run(h)
        assert stages(h) == ['Build', 'Unit tests', 'Acceptance tests', 'Accuracy']
        File ws = mainWorkspace(h)
        assertCommon(h, 'feature/x')
        Map built = archived(h, '.mlci/build.json')
        assert out.image == "${built.image.name}@${built.image.digest}"
        ['unit', 'acceptance'].each { kind ->
            def call = h.calls('junit').find { it.named.testResults == ".mlci/junit/${kind}.xml".toString() }
            assert call.extra.tests > 0 && call.extra.failures == 0: "${kind}: ${call.extra}"
        }
        assertAccuracy(h, 'smoke', 'feature/x')
        assert archived(h, '.mlci/accuracy/smoke/accuracy.json').seed_source == 'inputs'  // suite, data, model, code: no commit at all
        assert h.currentBuild.description == 'accuracy: smoke PASS'
        assert h.currentBuild.result == null
        assert !h.calls('input') && !h.calls('lock') && !new File(ws, '.mlci/deploy.json').exists()
        // Every mlci call ran in the runtime image with the service's commit and branch from the checkout map.
        h.calls('sh').findAll { it.extra.argv }.each {
            assert it.extra.env.MLCI_GIT_COMMIT == h.exec.commit && it.extra.env.MLCI_GIT_BRANCH == 'feature/x'
            assert it.extra.env.MLCI_RUNNER_IMAGE == runtime && it.extra.status in [0, null]
        }
    }

    @Test
    void b_a_develop_push_deploys_to_staging_through_kubectl() {
        new File(kubectlState, 'calls.jsonl').delete()
        PipelineHarness h = build('develop', 'push', withKubectl)
        run(h)
        assert stages(h) == ['Build', 'Unit tests', 'Acceptance tests', 'Accuracy', 'Deploy: staging']
        assertCommon(h, 'develop')
        assertAccuracy(h, 'smoke', 'develop')
        def deployCall = h.mlciCall(['deploy'])
        File deployWs = new File(deployCall.extra.cwd as String)
        Map deployed = json(new File(deployWs, '.mlci/deploy.json'))
        Map built = archived(h, '.mlci/build.json')
        assert deployed.environment == 'staging'
        assert deployed.image.toString().contains(built.image.digest as String)
        assert '.mlci/deploy.json' in AntGlob.files(h.exec.archive())
        assert deployCall.ctx.contains('lock:mlci-' + service.service + '-staging')
        assert h.calls('lock')[0].named.inversePrecedence == true
        assert h.calls('milestone')*.named*.ordinal == [12]
        // The unstashed records in the deploy workspace: this build's, and the kubeconfig credential by name.
        assert deployCall.extra.env.KUBECONFIG.contains('@tmp/secretFiles/')
        List<Map> kubectl = new File(kubectlState, 'calls.jsonl').readLines().collect { new JsonSlurper().parseText(it) as Map }
        List<String> applied = kubectl.findAll { 'apply' in it.argv }*.stdin as List<String>
        assert applied && applied[0].contains(built.image.digest as String) && applied[0].contains('ml-staging')
        assert kubectl.every { it.kubeconfig_set }
        assert h.currentBuild.description == 'accuracy: smoke PASS; deployed to staging'
    }

    @Test
    void c_a_develop_timer_build_runs_the_sharded_heavy_suite_on_two_agents_and_never_deploys() {
        new File(kubectlState, 'calls.jsonl').delete()
        PipelineHarness h = build('develop', 'timer', withKubectl)
        run(h)
        assert stages(h) == ['Build', 'Accuracy']
        File ws = mainWorkspace(h)
        assertCommon(h, 'develop')
        List shardRuns = h.calls('sh').findAll { it.extra.argv?.take(2) == ['test', 'accuracy'] && '--shard' in it.extra.argv }
        assert shardRuns*.extra*.argv*.getAt(5).sort() == ['1/2', '2/2']
        Set<String> shardAgents = shardRuns.collect { h.exec.agentOf(it.extra.cwd as String) } as Set
        assert shardAgents == ['agent-1', 'agent-2'] as Set: "shards ran on ${shardAgents}"
        assert shardRuns.every { it.extra.cwd != ws.path }: 'each shard runs in its own workspace'
        // The build record goes to each shard's workspace; each shard's records come back for the merge.
        assert h.calls('stash')*.named*.name.sort() == ['mlci-build-full', 'mlci-shard-full-1', 'mlci-shard-full-2']
        List unstashed = h.calls('unstash')
        assert unstashed.findAll { it.args[0] == 'mlci-build-full' }*.extra*.cwd as Set == shardRuns*.extra*.cwd as Set
        assert unstashed.findAll { it.args[0].startsWith('mlci-shard-') }*.args*.getAt(0) == ['mlci-shard-full-1', 'mlci-shard-full-2']
        assert unstashed.every { it.extra.files }
        assertAccuracy(h, 'full', 'develop')
        Map merged = archived(h, '.mlci/accuracy/full/accuracy.json')
        assert merged.gates*.metric == ['accuracy', 'macro_f1']
        assert !h.calls('lock') && !h.mlciCall(['deploy']) && !new File(kubectlState, 'calls.jsonl').exists()
        // The push build's records in this reused workspace were cleaned: only this build's are archived.
        assert !('.mlci/deploy.json' in AntGlob.files(h.exec.archive()))
        assert !AntGlob.files(h.exec.archive()).any { it.contains('accuracy/smoke') }
        assert h.currentBuild.description == 'accuracy: full PASS'
        // The Git plugin's map: the develop job built this commit before (the push build).
        assert h.calls('checkout').every { it.extra.result.GIT_PREVIOUS_COMMIT == h.exec.commit }
    }

    @Test
    void d_main_deploys_to_production_after_approval() {
        new File(kubectlState, 'calls.jsonl').delete()
        PipelineHarness h = build('main', 'push', withKubectl)
        List<Map> asked = []
        h.inputAction = { Map q -> asked << q; null }
        run(h)
        assert stages(h) == ['Build', 'Unit tests', 'Acceptance tests', 'Accuracy', 'Deploy: production']
        assertCommon(h, 'main')
        assertAccuracy(h, 'smoke', 'main')
        assert asked.size() == 1 && asked[0].id == 'MlciDeploy2production' && asked[0].submitter == 'release-leads'
        def input = h.calls('input')[0]
        assert !input.ctx.any { it.startsWith('node:') }: 'the approval waits without holding an executor'
        assert h.calls('milestone')*.named*.ordinal == [21, 22]
        def deployCall = h.mlciCall(['deploy'])
        Map deployed = json(new File(deployCall.extra.cwd as String, '.mlci/deploy.json'))
        assert deployed.environment == 'production'
        List<Map> kubectl = new File(kubectlState, 'calls.jsonl').readLines().collect { new JsonSlurper().parseText(it) as Map }
        assert kubectl.find { 'apply' in it.argv }.stdin.contains('ml-prod')
        assert h.currentBuild.description == 'accuracy: smoke PASS; deployed to production'
    }
}
