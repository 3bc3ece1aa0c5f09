import org.junit.Test

/** accuracyTests: shards and merge, verdicts to build results, publishing in finally, report, description. */
class AccuracyTest {
    static final String HEAVY = 'heavy-q.x_1'

    PipelineHarness timer() { new PipelineHarness().branch('develop', 'timer').fixtureCredentials().scanConfig() }

    PipelineHarness push(String branch = 'feature/acc') { new PipelineHarness().branch(branch).fixtureCredentials().scanConfig() }

    @Test
    void heavy_suite_runs_N_shards_on_the_label_then_unstashes_all_before_one_merge() {
        PipelineHarness h = timer()
        Map verdicts = h.run('accuracyTests')
        assert verdicts == [(HEAVY): 'PASS', 'weekly-extra': 'PASS']

        def par = h.calls('parallel')[0]
        assert par.extra.branches == (1..3).collect { "${HEAVY} ${it}/3".toString() }
        assert par.named.failFast == true
        // Each shard runs its part inside the built image, in its own workspace (.mlci of that workspace).
        List shards = h.calls('sh').findAll { it.extra.argv?.take(2) == ['test', 'accuracy'] && '--shard' in it.extra.argv }
        assert shards*.extra.argv == (1..3).collect {
            ['test', 'accuracy', '--suite', HEAVY, '--shard', "${it}/3".toString()]
        }
        shards.eachWithIndex { c, i ->
            assert c.ctx.contains("node:gpu && !flaky'node".toString())
            assert c.ctx.contains("parallel:${HEAVY} ${i + 1}/3".toString())
            assert c.ctx.contains('withCredentials')
        }
        // Each shard stashes on its own agent; the merge runs after every unstash, outside the shard nodes.
        List stashes = h.calls('stash')
        assert stashes*.named*.name == (1..3).collect { "mlci-shard-${HEAVY}-${it}".toString() }
        stashes.each {
            assert it.ctx.any { f -> f.startsWith('node:gpu') } && it.extra.files
            assert it.named.includes == ".mlci/accuracy/${HEAVY}/**".toString() && it.named.excludes == org.mlci.Publish.SECRETS
        }
        int merge = h.indexOf { it.step == 'sh' && it.extra.argv?.take(2) == ['accuracy', 'merge'] }
        List unstash = h.calls('unstash')
        assert unstash.size() == 3 && unstash.every { it.seq < merge && !it.ctx.any { f -> f.startsWith('node:gpu') } }
        unstash.eachWithIndex { u, i -> assert u.ctx.contains("dir:.mlci/shards/${HEAVY}/${i + 1}".toString()) }
        assert h.calls[merge].extra.argv.drop(2) == ['--out', '.mlci'] + (1..3).collect { ".mlci/shards/${HEAVY}/${it}/.mlci".toString() }
        assert h.currentBuild.description == "accuracy: ${HEAVY} PASS, weekly-extra PASS".toString()
    }

    @Test
    void shards_test_the_image_this_build_made() {
        PipelineHarness h = timer()
        h.files['.mlci/build.json'] = '{"image": {"name": "reg/svc", "digest": "sha256:' + 'c' * 64 + '"}}'
        h.run('accuracyTests')
        // The build record goes to every shard's workspace: `mlci test accuracy` runs that image.
        assert h.calls('stash').find { it.named.name == "mlci-build-${HEAVY}".toString() }.extra.files == ['.mlci/build.json'] as Set
        List shards = h.calls('sh').findAll { it.extra.argv?.take(2) == ['test', 'accuracy'] && '--shard' in it.extra.argv }
        assert shards.size() == 3
        shards.each { c ->
            String branch = c.ctx.find { it.startsWith('parallel:') }
            def unstash = h.calls('unstash').find { it.args[0] == "mlci-build-${HEAVY}".toString() && branch in it.ctx }
            assert unstash && unstash.seq < c.seq
        }
    }

    @Test
    void a_shard_whose_gate_fails_still_goes_to_the_merge_which_decides() {
        PipelineHarness h = timer().exit(['test', 'accuracy', '--suite', HEAVY], 1).exit(['accuracy', 'merge'], 1)
        Throwable t = h.runFailing('accuracyTests')
        assert t instanceof StepFailure && t.message == "accuracy suite ${HEAVY}: FAIL".toString()
        assert h.mlciCall(['accuracy', 'merge'])
        assert h.calls('junit') && h.calls('archiveArtifacts')
    }

    @Test
    void a_shard_that_errors_stops_the_suite_before_the_merge() {
        PipelineHarness h = timer().exit(['test', 'accuracy', '--suite', HEAVY], 2)
        Throwable t = h.runFailing('accuracyTests')
        assert t.message.contains("shard 1/3: mlci exited 2")
        assert !h.mlciCall(['accuracy', 'merge'])
        assert h.calls('parallel')[0].named.failFast
        // Published anyway: the finally runs after a failed suite.
        assert h.calls('junit')*.named*.testResults == ['.mlci/accuracy/**/junit-*.xml']
    }

    @Test
    void fail_verdict_fails_the_build_after_publishing() {
        PipelineHarness h = push().exit(['test', 'accuracy'], 1)
        Throwable t = h.runFailing('accuracyTests')
        assert t.message == 'accuracy suite smoke: FAIL'
        int error = h.indexOf { it.step == 'error' }
        ['junit', 'archiveArtifacts', 'publishHTML'].each { s -> assert h.indexOf { it.step == s } in 0..<error }
        assert h.currentBuild.description == 'accuracy: smoke FAIL'
        assert h.calls('junit')[0].named.allowEmptyResults == true
    }

    @Test
    void inconclusive_marks_unstable_by_default() {
        PipelineHarness h = push().exit(['test', 'accuracy'], 3)
        assert h.run('accuracyTests') == [smoke: 'INCONCLUSIVE']
        assert h.currentBuild.result == 'UNSTABLE'
        assert h.calls('unstable')[0].args[0].startsWith('accuracy suite smoke: INCONCLUSIVE')
        assert h.currentBuild.description == 'accuracy: smoke INCONCLUSIVE'
    }

    @Test
    void inconclusive_fails_when_configured() {
        PipelineHarness h = new PipelineHarness().branch('feature/x')
        h.workspace = new File(PipelineHarness.FIXTURES, 'service')
        h.on(['test', 'accuracy']) { 3 }
        Throwable t = h.runFailing('accuracyTests', [config: 'ml-ci.venv.yaml'])
        assert t.message == 'accuracy suite smoke: INCONCLUSIVE (accuracy.inconclusive: fail)'
        assert !h.calls('unstable')
    }

    @Test
    void bad_input_exit_2_is_a_failure_not_a_verdict() {
        PipelineHarness h = push().exit(['test', 'accuracy'], 2)
        Throwable t = h.runFailing('accuracyTests')
        assert t.message.contains('mlci exited 2')
        assert h.currentBuild.description == 'accuracy: smoke ERROR'
    }

    @Test
    void html_report_published_only_when_the_plugin_is_installed() {
        PipelineHarness h = push()
        h.htmlPublisher = false
        h.run('accuracyTests')
        assert h.calls('publishHTML-missing') && !h.calls('publishHTML')
        assert h.calls('echo')*.args*.getAt(0).any { it.contains('HTML Publisher plugin not installed') }
        assert h.calls('archiveArtifacts')*.named*.artifacts.contains('.mlci/**')
    }

    @Test
    void report_render_failure_is_logged_and_never_masks_the_verdict() {
        PipelineHarness h = push().exit(['report', 'render'], 1)
        assert h.run('accuracyTests') == [smoke: 'PASS']
        assert !h.calls('publishHTML')
        assert h.currentBuild.result == null
    }

    @Test
    void report_render_runs_with_the_s3_credentials_bound_for_its_history_lookups() {
        PipelineHarness h = push()
        h.run('accuracyTests')
        def render = h.mlciCall(['report', 'render'])
        assert render.ctx.contains('withCredentials')
        assert render.extra.env.AWS_SECRET_ACCESS_KEY == 'wJalr+secret/Key$(id)'
        assert render.extra.script.contains(' -e AWS_SECRET_ACCESS_KEY ')
        // Without artifacts.credentials nothing is bound (the agent's IAM role) and render still runs.
        PipelineHarness role = new PipelineHarness().branch('feature/x')
        role.run('accuracyTests', [config: 'ml-ci.venv.yaml'])
        assert !role.calls('withCredentials') && role.mlciCall(['report', 'render'])
    }

    @Test
    void forceAccuracy_passes_force_to_the_in_image_suite_and_nothing_else() {
        PipelineHarness h = push()
        h.run('accuracyTests', [forceAccuracy: true])
        assert h.mlciCall(['test', 'accuracy']).extra.argv == ['test', 'accuracy', '--suite', 'smoke', '--force']
        assert !h.mlci().any { it[0] == 'report' && '--force' in it }
        [[:], [forceAccuracy: false]].each { Map a ->
            PipelineHarness off = push()
            off.run('accuracyTests', a)
            assert off.mlciCall(['test', 'accuracy']).extra.argv == ['test', 'accuracy', '--suite', 'smoke']
        }
        // Sharded suites have no result cache: the shards and the merge never get --force; the unsharded one does.
        PipelineHarness timer = timer()
        timer.run('accuracyTests', [forceAccuracy: true])
        List sharded = timer.mlci().findAll { it[0] == 'accuracy' || '--shard' in it }
        assert sharded.size() == 4 && !sharded.any { '--force' in it }
        assert timer.mlciCall(['test', 'accuracy', '--suite', 'weekly-extra']).extra.argv == ['test', 'accuracy', '--suite', 'weekly-extra', '--force']
    }

    @Test
    void mlPipeline_hands_forceAccuracy_to_the_accuracy_stage_only() {
        PipelineHarness h = push()
        h.run('mlPipeline', [forceAccuracy: true])
        assert h.mlciCall(['test', 'accuracy']).extra.argv.last() == '--force'
        assert h.mlci().findAll { '--force' in it }.size() == 1
        PipelineHarness off = push()
        off.run('mlPipeline')
        assert !off.mlci().any { '--force' in it }
    }

    @Test
    void branch_builds_record_history_before_rendering_and_pull_requests_do_not() {
        PipelineHarness h = push('develop')
        h.run('accuracyTests')
        def record = h.mlciCall(['report', 'record'])
        assert record.extra.argv == ['report', 'record', '--results', '.mlci']
        assert record.ctx.contains('withCredentials') && record.seq < h.mlciCall(['report', 'render']).seq
        PipelineHarness pr = new PipelineHarness().branch('PR-3', 'pr', 'develop').fixtureCredentials().scanConfig()
        pr.run('accuracyTests')
        assert !pr.mlciCall(['report', 'record'])
        PipelineHarness broken = push('develop').exit(['report', 'record'], 1)
        assert broken.run('accuracyTests') == [smoke: 'PASS']
        assert broken.calls('echo')*.args*.getAt(0).any { it.contains('not in the history store') }
    }

    @Test
    void pull_request_posts_the_report_with_the_token_bound_by_name() {
        PipelineHarness h = new PipelineHarness().branch('PR-9', 'pr', 'main').fixtureCredentials().scanConfig()
        h.run('accuracyTests')
        def post = h.mlciCall(['report', 'post'])
        assert post.extra.env.MLCI_REPORT_TOKEN == 'ghp_secretTOKEN0123456789abcdef'
        assert post.extra.script.contains('-e MLCI_REPORT_TOKEN ')
    }

    @Test
    void named_suites_run_on_any_build_and_unknown_ones_fail_early() {
        PipelineHarness h = push()
        assert h.run('accuracyTests', [suites: ['weekly-extra']]) == ['weekly-extra': 'PASS']
        PipelineHarness bad = push()
        Throwable t = bad.runFailing('accuracyTests', [suites: ['nope']])
        assert t.message.startsWith("accuracyTests: unknown suite 'nope'; configured: ${HEAVY}, smoke, weekly-extra".toString())
        assert !bad.mlci().any { 'accuracy' in it.take(2) }
    }

    @Test
    void a_hostile_verdict_in_a_record_is_escaped_in_the_description_and_the_description_stays_bounded() {
        PipelineHarness h = push()
        h.on(['test', 'accuracy']) { c ->
            h.files['.mlci/accuracy/smoke/accuracy.json'] = groovy.json.JsonOutput.toJson([verdict: '<b onmouseover=x>PASS</b>'])
            0
        }
        h.run('accuracyTests')
        assert h.currentBuild.description == 'accuracy: smoke &lt;b onmouseover=x&gt;PASS&lt;/b&gt;'
        h.currentBuild.description = 'x' * 990
        org.mlci.Publish.describe([currentBuild: h.currentBuild], 'y' * 50)
        assert h.currentBuild.description.length() == org.mlci.Publish.DESCRIPTION_MAX + 3
    }
}
