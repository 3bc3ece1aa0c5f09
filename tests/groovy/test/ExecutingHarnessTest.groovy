import org.codehaus.groovy.runtime.InvokerHelper
import org.junit.After
import org.junit.Test
import org.mlci.Nodes
import org.mlci.Publish

/**
 * The executing mode behaves like Jenkins where the library depends on it, and can fail: sh status/stdout/env,
 * agents and the controller, checkout's map, stash/unstash between workspaces, archive/junit/publishHTML on real
 * files (empty matches, stale reports, secret-shaped files), readJSON's types and file credentials' lifetime.
 */
class ExecutingHarnessTest {
    File root = File.createTempDir('mlci-exec-harness-', '')

    @After
    void cleanUp() { root.deleteDir() }

    PipelineHarness h() {
        PipelineHarness h = PipelineHarness.executing(root)
        h.exec.agent('agent-1', ['linux'])
        h.exec.agent('agent-2', ['linux', 'gpu'])
        h.env.base.JOB_NAME = 'svc/main'
        h.exec.buildStart = System.currentTimeMillis()
        return h
    }

    /** The steps object the library's classes receive (a vars script routed to the harness). */
    static Object steps(PipelineHarness h) { InvokerHelper.createScript(PipelineHarness.compiled('unitTests'), h.binding) }

    static Object step(PipelineHarness h, String name, Object... args) { h.dispatch(name, args) }

    static Object onNode(PipelineHarness h, String label, Closure body) { step(h, 'node', label, body) }

    static Throwable failure(Closure c) {
        try {
            c()
        } catch (Throwable t) {
            return t
        }
        throw new AssertionError((Object) 'expected a failure')
    }

    @Test
    void sh_runs_the_script_in_the_workspace_with_the_environment_and_honours_status_and_stdout() {
        PipelineHarness h = h()
        onNode(h, 'linux') {
            step(h, 'withEnv', ['GREETING=it\'s $(id)'], {
                String out = step(h, 'sh', [script: 'printf "%s|%s" "$GREETING" "$(pwd)"', returnStdout: true])
                assert out == "it's \$(id)|${h.env.WORKSPACE}".toString()
            })
            assert step(h, 'sh', [script: 'exit 3', returnStatus: true]) == 3
            Throwable t = failure { step(h, 'sh', [script: 'echo to-the-log; exit 4', label: 'four']) }
            assert t instanceof StepFailure && t.message == 'script returned exit code 4'
            assert h.calls('sh')[-1].extra.label == 'four'
        }
        assert h.exec.log.toString().contains('to-the-log')
        assert h.env.WORKSPACE == null: 'the node block ended'
    }

    @Test
    void nodes_never_land_on_the_controller_and_need_a_matching_agent() {
        PipelineHarness h = h()
        assert failure { onNode(h, '', {}) }.message.contains('may run on the controller')
        assert failure { onNode(h, '!gpu', {}) }.message.contains('may run on the controller')
        assert failure { onNode(h, 'windows && !built-in', {}) }.message.contains("no agent matches 'windows && !built-in'")
        onNode(h, 'gpu && !built-in') { assert h.env.NODE_NAME == 'agent-2' }
        onNode(h, Nodes.NOT_CONTROLLER) {
            onNode(h, 'linux && !built-in') {
                assert h.env.NODE_NAME == 'agent-2'   // agent-1 is busy: the other one
            }
            onNode(h, 'agent-1') {
                assert h.env.WORKSPACE.endsWith('svc_main@2')   // the same job twice on one agent
            }
        }
    }

    @Test
    void stash_and_unstash_copy_real_files_between_workspaces_and_a_missing_stash_fails() {
        PipelineHarness h = h()
        onNode(h, 'agent-1') {
            step(h, 'sh', 'mkdir -p out/a && echo one > out/a/x.json && echo two > out/b.txt && mkdir -p .git && touch .git/HEAD')
            step(h, 'stash', [name: 's', includes: 'out/**', excludes: '**/*.txt'])
            assert failure { step(h, 'stash', [name: 'none', includes: 'nothing/**']) }.message == "No files included in stash 'none'"
            step(h, 'stash', [name: 'empty-ok', includes: 'nothing/**', allowEmpty: true])
        }
        onNode(h, 'agent-2') {
            assert !new File(h.env.WORKSPACE as String, 'out').exists()
            step(h, 'unstash', 's')
            assert new File(h.env.WORKSPACE as String, 'out/a/x.json').text == 'one\n'
            assert !new File(h.env.WORKSPACE as String, 'out/b.txt').exists()
            assert failure { step(h, 'unstash', 'never') }.message == "No such saved stash 'never'"
        }
    }

    @Test
    void archive_junit_and_publishHTML_check_their_patterns_against_real_files() {
        PipelineHarness h = h()
        onNode(h, 'linux') {
            File ws = new File(h.env.WORKSPACE as String)
            assert failure { step(h, 'archiveArtifacts', [artifacts: '.mlci/**']) }.message.startsWith('No artifacts found')
            step(h, 'archiveArtifacts', [artifacts: '.mlci/**', allowEmptyArchive: true])
            assert failure { step(h, 'junit', [testResults: '.mlci/junit/*.xml']) }.message == 'No test report files were found. Configuration error?'
            step(h, 'junit', [testResults: '.mlci/junit/*.xml', allowEmptyResults: true])

            new File(ws, '.mlci/junit').mkdirs()
            File old = new File(ws, '.mlci/junit/old.xml')
            old.text = '<testsuite><testcase name="a"/></testsuite>'
            old.lastModified = h.exec.buildStart - 60000
            assert failure { step(h, 'junit', [testResults: '.mlci/junit/*.xml']) }.message.contains('none of them are new')
            new File(ws, '.mlci/junit/new.xml').text = '<testsuite><testcase name="a"/><testcase name="b"><failure/></testcase></testsuite>'
            step(h, 'junit', [testResults: '.mlci/junit/*.xml'])
            assert h.calls('junit')[-1].extra.files == ['.mlci/junit/new.xml'] && h.calls('junit')[-1].extra.tests == 2
            assert h.currentBuild.result == 'UNSTABLE'

            Map target = [reportDir: '.mlci/report', reportFiles: 'report.html', reportName: 'r']
            assert failure { step(h, 'publishHTML', [target: target]) }.message.contains('does not exist')
            step(h, 'publishHTML', [target: target + [allowMissing: true]])
        }
    }

    @Test
    void the_library_never_archives_or_stashes_a_secret_shaped_file() {
        PipelineHarness h = h()
        Object steps = steps(h)
        onNode(h, 'linux') {
            step(h, 'sh', '''set -e
mkdir -p .mlci/.mlci-aws-1a2b .mlci/mlci-secrets/x .mlci/accuracy/smoke .mlci/shards/s/1 .mlci/.docker
echo k > .mlci/.mlci-aws-1a2b/aws_credentials
echo k > .mlci/mlci-secrets/x/config
echo k > .mlci/my_credentials.json
echo k > .mlci/kubeconfig
echo k > .mlci/.docker/config.json
echo k > .mlci/tls.key
echo '{}' > .mlci/build.json
echo '{}' > .mlci/accuracy/smoke/accuracy.json
echo '{}' > .mlci/shards/s/1/accuracy.json
''')
            Publish.archive(steps, '.mlci/**')
            Publish.stash(steps, 'records', '.mlci/**', false)
        }
        assert AntGlob.files(h.exec.archive()).sort() == ['.mlci/accuracy/smoke/accuracy.json', '.mlci/build.json']
        assert h.calls('stash')[0].extra.files.sort() == ['.mlci/accuracy/smoke/accuracy.json', '.mlci/build.json',
                                                          '.mlci/shards/s/1/accuracy.json']
    }

    @Test
    void checkout_returns_the_git_plugins_map_and_leaves_a_detached_head() {
        File src = new File(root, 'src')
        src.mkdirs()
        ['init -q -b main', 'commit -q --allow-empty -m one', 'branch develop'].each {
            Executing.git(src, ['-c', 'user.name=t', '-c', 'user.email=t@t'] + it.tokenize(' '))
        }
        PipelineHarness h = h()
        h.exec.originUrl = 'file://' + src.path
        h.exec.startBuild('svc/develop', 'develop', 1)
        onNode(h, 'linux') {
            Map scm = step(h, 'checkout', h.binding.getVariable('scm')) as Map
            assert scm == [GIT_BRANCH: 'develop', GIT_COMMIT: h.exec.commit, GIT_URL: h.exec.originUrl]
            File ws = new File(h.env.WORKSPACE as String)
            assert Executing.git(ws, ['rev-parse', 'HEAD']) == h.exec.commit
            assert Executing.git(ws, ['rev-parse', '--abbrev-ref', 'HEAD']) == 'HEAD'
        }
        h.exec.endBuild()
        h.exec.startBuild('svc/develop', 'develop', 2)
        onNode(h, 'linux') {
            assert (step(h, 'checkout', h.binding.getVariable('scm')) as Map).GIT_PREVIOUS_COMMIT == h.exec.commit
            assert failure { step(h, 'checkout', [$class: 'GitSCM']) }.message.contains('checkout of something else than scm')
        }
    }

    @Test
    void readJSON_answers_plain_maps_and_lists_and_file_credentials_live_for_their_block() {
        PipelineHarness h = h()
        h.credential('kube', [kind: 'file', fileName: 'config', content: 'secret-kubeconfig'])
        onNode(h, 'linux') {
            step(h, 'sh', 'echo \'{"a": {"b": [1, {"c": null}]}}\' > r.json')
            Map r = step(h, 'readJSON', [file: 'r.json', returnPojo: true]) as Map
            assert r.getClass() == LinkedHashMap && r.a.getClass() == LinkedHashMap && r.a.b.getClass() == ArrayList
            assert r.a.b[1].containsKey('c') && r.a.b[1].c == null
            String path = null
            step(h, 'withCredentials', [[binding: 'file', credentialsId: 'kube', variable: 'KUBECONFIG']], {
                path = h.env.KUBECONFIG
                assert path.startsWith(h.env.WORKSPACE + '@tmp/secretFiles/') && new File(path).text == 'secret-kubeconfig'
            })
            assert !new File(path).exists()
            assert failure {
                step(h, 'withCredentials', [[binding: 'string', credentialsId: 'nope', variable: 'X']], {})
            }.message == "Could not find credentials entry with ID 'nope'"
        }
    }
}
