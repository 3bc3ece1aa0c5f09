import org.junit.Test

/** The single steps: arguments, publishing in finally, build credentials, retry semantics, runner choice. */
class StepsTest {
    PipelineHarness h(String branch = 'feature/steps') { new PipelineHarness().branch(branch).fixtureCredentials().scanConfig() }

    @Test
    void unknown_arguments_are_rejected_early_by_every_step() {
        org.mlci.Steps.names().each { step ->
            PipelineHarness h = h()
            Throwable t = h.runFailing(step, [confg: 'x.yaml'])
            assert t instanceof StepFailure
            assert t.message.startsWith("${step}: unknown argument(s) confg; valid: ".toString())
            assert t.message.contains('config')
            assert !h.calls('sh') && !h.calls('node'): "${step} did work before rejecting its arguments"
        }
    }

    @Test
    void unit_tests_publish_junit_in_finally_when_they_fail() {
        PipelineHarness h = h().exit(['test', 'unit'], 1)
        Throwable t = h.runFailing('unitTests')
        assert t.message == 'mlci test unit failed (exit 1); see the log above'
        assert h.calls('junit')*.named*.testResults == ['.mlci/junit/unit.xml']
        assert h.calls('junit')[0].seq > h.mlciCall(['test', 'unit']).seq
        assert h.calls('archiveArtifacts')
        assert h.mlciCall(['test', 'unit']).ctx.contains('timeout:15')
    }

    @Test
    void acceptance_tests_publish_junit_and_use_their_timeout() {
        PipelineHarness h = h()
        h.run('acceptanceTests')
        assert h.calls('junit')*.named*.testResults == ['.mlci/junit/acceptance.xml']
        assert h.mlciCall(['test', 'acceptance']).ctx.contains('timeout:25')
    }

    @Test
    void a_failed_stage_inside_mlPipeline_still_publishes_and_stops_the_pipeline() {
        PipelineHarness h = h().exit(['test', 'acceptance'], 1)
        h.runFailing('mlPipeline')
        assert h.calls('junit')*.named*.testResults == ['.mlci/junit/unit.xml', '.mlci/junit/acceptance.xml']
        assert !h.mlci().any { 'accuracy' in it.take(2) }
        assert h.calls('stage')*.args*.getAt(0) == ['Build', 'Unit tests', 'Acceptance tests']
    }

    @Test
    void build_logs_in_to_the_registry_with_bound_credentials_and_returns_the_digest() {
        PipelineHarness h = h()
        Map built = h.run('buildImage')
        assert built.image == 'registry.example.com:5000/ml/svc@sha256:' + 'a' * 64
        def login = h.calls('sh').find { it.extra.label == 'docker login' }
        assert login.extra.env.MLCI_REGISTRY_PASSWORD == 'Pa55"word$HOME'
        assert login.extra.env.MLCI_REGISTRY == 'registry.example.com:5000'
        assert login.extra.script.contains('--password-stdin')
        def build = h.mlciCall(['build'])
        assert build.extra.env.DOCKER_CONFIG.endsWith('@tmp/mlci-docker')
        assert build.extra.env.AWS_SECRET_ACCESS_KEY == 'wJalr+secret/Key$(id)'
        assert h.calls('sh').last().extra.label == 'docker logout'
    }

    @Test
    void build_failure_still_removes_the_docker_login() {
        PipelineHarness h = h().exit(['build'], 1)
        h.runFailing('buildImage')
        assert h.calls('sh').last().extra.label == 'docker logout'
        assert h.calls('archiveArtifacts')*.named*.artifacts == ['.mlci/build.json']
    }

    @Test
    void without_credential_ids_nothing_is_bound_and_the_agent_role_is_used() {
        PipelineHarness h = new PipelineHarness().branch('feature/x')
        h.run('buildImage', [config: 'ml-ci.venv.yaml'])
        assert !h.calls('withCredentials')
        assert !h.calls('sh').find { it.extra.label == 'docker login' }
    }

    @Test
    void runner_from_config_is_used_unless_a_step_argument_pins_one() {
        PipelineHarness h = new PipelineHarness().branch('feature/x')
        h.run('buildImage', [config: 'ml-ci.venv.yaml'])
        // The plan itself runs with the default runner; the config then switches to its venv runner.
        assert h.calls('sh')[0].extra.script.contains('run --rm')
        assert h.mlciCall(['build']).extra.script.contains('$MLCI_VENV/bin/')
        assert h.mlciCall(['build']).extra.env.MLCI_CONFIG == 'ml-ci.venv.yaml'
        PipelineHarness pinned = new PipelineHarness().branch('feature/x')
        pinned.run('buildImage', [config: 'ml-ci.venv.yaml', runner: 'docker', runnerImage: 'reg.example/mlci:9'])
        assert pinned.mlciCall(['build']).extra.script.contains('run --rm')
        assert pinned.mlciCall(['build']).extra.env.MLCI_RUNNER_IMAGE == 'reg.example/mlci:9'
    }

    @Test
    void pipeline_agent_from_config_moves_the_stages_to_that_label() {
        PipelineHarness h = new PipelineHarness().branch('feature/x')
        h.run('mlPipeline', [config: 'ml-ci.venv.yaml'])
        // The plan is read on any agent but the controller, then the stages move to pipeline.agent.
        assert h.calls('node')*.extra*.label == [org.mlci.Nodes.NOT_CONTROLLER, 'linux && docker-q']
        assert h.mlciCall(['build']).ctx.contains('node:linux && docker-q')
        PipelineHarness arg = new PipelineHarness().branch('feature/x')
        arg.run('mlPipeline', [config: 'ml-ci.venv.yaml', agent: 'big'])
        assert arg.calls('node')*.extra*.label == ['big']
    }

    @Test
    void a_lost_agent_is_retried_but_a_failed_gate_never_is() {
        PipelineHarness lost = h()
        lost.agentLoss << org.mlci.Nodes.NOT_CONTROLLER
        lost.run('mlPipeline')
        assert lost.calls('retry-attempt').size() == 1
        assert lost.mlci().findAll { it == ['build'] }.size() == 1

        PipelineHarness gate = h().exit(['test', 'accuracy'], 1)
        gate.runFailing('mlPipeline')
        assert !gate.calls('retry-attempt')
        assert gate.mlci().findAll { it.take(2) == ['test', 'accuracy'] }.size() == 1
        gate.calls('retry').each { assert it.named.conditions == [PipelineHarness.AGENT_CONDITION, PipelineHarness.NONRESUMABLE_CONDITION] }
    }

    @Test
    void a_lost_shard_agent_is_retried_for_that_shard_and_twice_lost_fails_the_suite() {
        PipelineHarness once = new PipelineHarness().branch('develop', 'timer').fixtureCredentials().scanConfig()
        once.agentLoss << "gpu && !flaky'node"
        once.run('accuracyTests')
        assert once.calls('retry-attempt').size() == 1
        assert once.mlci().findAll { it.take(2) == ['test', 'accuracy'] && '--shard' in it }.size() == 3

        PipelineHarness twice = new PipelineHarness().branch('develop', 'timer').fixtureCredentials().scanConfig()
        twice.agentLoss.addAll(["gpu && !flaky'node", "gpu && !flaky'node"])
        Throwable t = twice.runFailing('accuracyTests')
        assert t instanceof AgentLost
        assert !twice.mlciCall(['accuracy', 'merge'])
        assert twice.calls('junit') && twice.calls('archiveArtifacts')
    }

    @Test
    void triggers_can_be_left_to_the_jenkinsfile_and_extra_properties_are_kept() {
        PipelineHarness off = h('develop')
        off.run('mlPipeline', [triggers: false])
        assert !off.calls('properties')
        PipelineHarness keep = h('develop')
        keep.run('mlPipeline', [jobProperties: ['discarder']])
        assert keep.calls('properties')[0].args[0] == [[pipelineTriggers: [[cron: 'H 2 * * *\nH 5 * * 6']]], 'discarder']
        PipelineHarness feature = h('feature/p')
        feature.run('mlPipeline', [jobProperties: ['discarder']])
        assert feature.calls('properties')[0].args[0] == ['discarder']
    }

    @Test
    void a_stage_the_plan_skips_is_a_logged_no_op() {
        PipelineHarness h = new PipelineHarness().branch('feature/x')
        h.run('unitTests', [config: 'ml-ci.venv.yaml'])
        assert h.mlci().size() == 1
        assert h.calls('echo')[0].args[0] == 'unitTests: skipped: not in pipeline.stages'
    }

    @Test
    void a_plan_from_another_library_version_is_refused() {
        PipelineHarness h = h()
        h.on(['pipeline', 'plan']) { c -> [status: 0, stdout: '{"schema": "mlci.plan/2"}'] }
        Throwable t = h.runFailing('unitTests')
        assert t.message.contains("answered schema 'mlci.plan/2'")
    }

    /** Provenance: every mlci call carries the service's commit, branch and URL from the checkout map. */
    @Test
    void mlci_calls_carry_the_checkout_map_and_never_jenkins_git_variables() {
        PipelineHarness h = h('develop')
        // What a shared library's checkout can leave in the build's environment (workflow-job-plugin#788).
        h.env.base.putAll([GIT_COMMIT: 'feedface' * 5, GIT_BRANCH: 'master', GIT_URL: 'https://git.example.com/lib.git'])
        h.run('mlPipeline')
        List calls = h.calls('sh').findAll { it.extra.argv }
        assert calls.size() > 5
        calls.each {
            assert it.extra.env.MLCI_GIT_COMMIT == PipelineHarness.FIXTURE_COMMIT
            assert it.extra.env.MLCI_GIT_BRANCH == 'develop'
            assert it.extra.env.MLCI_GIT_URL == 'https://git.example.com/ml/svc.git'
            assert it.extra.script.contains(' -e MLCI_GIT_COMMIT ')
            org.mlci.Mlci.JENKINS_GIT_ENV.each { v -> assert !it.extra.script.contains(" -e ${v} ".toString()) }
        }
        // The deploy node checks out again (its own map, the same commit).
        assert h.mlciCall(['deploy']).extra.env.MLCI_GIT_COMMIT == PipelineHarness.FIXTURE_COMMIT
    }

    @Test
    void without_a_runtime_image_the_docker_runner_says_how_to_set_one() {
        PipelineHarness none = h()
        none.env.base.remove('MLCI_RUNNER_IMAGE')
        Throwable t = none.runFailing('buildImage')
        assert t.message.startsWith('mlci: no runtime image: set MLCI_RUNNER_IMAGE as a global environment variable')
        assert t.message.contains('docs/jenkins.md') && !none.calls('sh')
        // pipeline.runner_image in ml-ci.yaml, or the step argument, is enough.
        PipelineHarness arg = h()
        arg.env.base.remove('MLCI_RUNNER_IMAGE')
        arg.run('buildImage', [runnerImage: 'reg.example/mlci:7'])
        assert arg.mlciCall(['build']).extra.env.MLCI_RUNNER_IMAGE == 'reg.example/mlci:7'
    }
}
