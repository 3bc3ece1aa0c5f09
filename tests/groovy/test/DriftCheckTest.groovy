import groovy.json.JsonOutput
import org.junit.Test

/**
 * vars/driftCheck.groovy with the harness: `mlci drift plan` and `mlci pipeline plan` are the REAL CLI on the
 * drift fixture; `mlci drift check` is scripted per exit code (0 no drift, 1 drift, 2 bad input, 3 too few
 * rows) with the drift.json it would write. On drift the training job is queued with `build job:` (wait:
 * false) after the executor is released, with the configured parameters plus why it was started.
 */
class DriftCheckTest {
    static final File WS = new File(PipelineHarness.FIXTURES, 'drift-service')
    static final String SUMMARY = "2 of 65 feature(s) drifted: x.3 (KS p=1e-09), <b>chan'nel</b> (new category)"

    PipelineHarness harness(String branch = 'main', String cause = 'timer') {
        PipelineHarness h = new PipelineHarness()
        h.workspace = WS
        h.env.base.WORKSPACE = WS.path
        h.env.base.BUILD_URL = 'https://ci.example.com/job/drift/12/'
        h.branch(branch, cause)
        h.credential("drift s3`cred`", [kind: 'aws', AWS_ACCESS_KEY_ID: 'AKIADRIFT0000SECRET', AWS_SECRET_ACCESS_KEY: 'dr1ft/Secret$(id)'])
        h.scanConfig(new File(WS, 'ml-ci.yaml').path)
        h.scanValues.removeAll(['drift'])  // the TRIGGER parameter's value is also a fixed word of the CLI
        h.on(['drift', 'plan']) { c -> PipelineHarness.mlciProcess(c.extra.argv as List<String>, [:], WS) }
        h.mocks.build = { List a -> h.record('build', a); null }
        return h
    }

    static void checkAnswers(PipelineHarness h, int rc, String verdict, List drifted = []) {
        h.on(['drift', 'check']) { c ->
            if (verdict) {
                h.files['.mlci/drift/drift.json'] = JsonOutput.toJson([
                    schema : 'mlci.drift/1', verdict: verdict, exit_code: rc, drifted: drifted,
                    summary: rc == 1 ? SUMMARY : 'no drift in 65 feature(s)',
                    logs   : [from: '2026-11-16', to: '2026-11-22']])
            }
            rc
        }
    }

    static Map params(def build) {
        Map out = [:]
        (build.named.parameters as List).each { Map p -> out[p.name] = p.value }
        return out
    }

    @Test
    void drift_starts_the_training_job_with_why_after_releasing_the_agent() {
        PipelineHarness h = harness()
        checkAnswers(h, 1, 'DRIFT', ['x.3', "<b>chan'nel</b>"])
        Map out = h.run('driftCheck') as Map

        def check = h.mlciCall(['drift', 'check'])
        assert check.extra.argv == ['drift', 'check']
        assert check.ctx.contains('node:!built-in && !master') && check.ctx.contains('withCredentials')
        assert h.calls('withCredentials')[0].extra.vars == ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY']
        assert h.calls('archiveArtifacts')[0].named.artifacts == '.mlci/drift/**'

        List builds = h.calls('build')
        assert builds.size() == 1
        def build = builds[0]
        assert build.named.job == 'ml/drift-svc-train' && build.named.wait == false
        assert !build.ctx.any { it.startsWith('node') }: 'the retraining job is queued after the executor is released'
        assert params(build) == [DATASET      : 'fresh-$(id)', TRIGGER: 'drift', DRIFT_REASON: SUMMARY,
                                 DRIFT_FEATURES: "x.3,<b>chan'nel</b>", DRIFT_WINDOW: '2026-11-16..2026-11-22',
                                 DRIFT_BUILD  : 'https://ci.example.com/job/drift/12/']
        assert h.currentBuild.description.startsWith('drift: retraining ml/drift-svc-train started: 2 of 65')
        assert h.currentBuild.description.contains('&lt;b&gt;chan') && !h.currentBuild.description.contains('<b>')
        assert h.currentBuild.result == null
        assert out == [verdict: 'DRIFT', summary: SUMMARY, drifted: ['x.3', "<b>chan'nel</b>"], exitCode: 1,
                       job: 'ml/drift-svc-train']
    }

    @Test
    void cron_is_registered_on_main_from_the_config_and_kept_with_other_properties() {
        PipelineHarness h = harness()
        checkAnswers(h, 0, 'NO_DRIFT')
        h.run('driftCheck', [jobProperties: ['keep-me']])

        assert h.calls('properties').size() == 1
        assert h.calls('properties')[0].args[0] == ['keep-me', [pipelineTriggers: [[cron: 'H 4 * * 1-5']]]]
        assert h.mlciCall(['drift', 'plan']).extra.argv == ['drift', 'plan', '--json', '--branch', 'main']
        assert !h.calls('build') && h.currentBuild.description == 'drift: none'
    }

    @Test
    void no_cron_on_other_branches_or_when_disabled() {
        PipelineHarness h = harness('feature/x', 'push')
        checkAnswers(h, 0, 'NO_DRIFT')
        h.run('driftCheck')
        assert !h.calls('properties')

        PipelineHarness off = harness()
        checkAnswers(off, 0, 'NO_DRIFT')
        off.run('driftCheck', [triggers: false])
        assert !off.calls('properties')
    }

    @Test
    void arguments_override_the_config_and_reach_mlci_through_the_environment() {
        PipelineHarness h = harness()
        checkAnswers(h, 1, 'DRIFT', ['x.3'])
        h.run('driftCheck', [trainJob: "other/train'job", parameters: [EPOCHS: '3'], window: '3d',
                             logs: 's3://other-bucket/logs;$(id)', agent: 'linux'])

        def check = h.mlciCall(['drift', 'check'])
        assert check.extra.argv == ['drift', 'check', '--logs', 's3://other-bucket/logs;$(id)', '--window', '3d']
        assert !check.extra.script.contains('other-bucket') && check.ctx.contains('node:linux')
        def build = h.calls('build')[0]
        assert build.named.job == "other/train'job"
        assert params(build).EPOCHS == '3' && params(build).DATASET == 'fresh-$(id)'
    }

    @Test
    void exit_codes_map_to_build_results() {
        PipelineHarness inconclusive = harness()
        checkAnswers(inconclusive, 3, 'INCONCLUSIVE')
        inconclusive.run('driftCheck')
        assert inconclusive.currentBuild.result == 'UNSTABLE' && !inconclusive.calls('build')
        assert inconclusive.currentBuild.description == 'drift: inconclusive'

        PipelineHarness bad = harness()
        checkAnswers(bad, 2, null)
        Throwable t = bad.runFailing('driftCheck')
        assert t instanceof StepFailure && t.message.contains('mlci drift check failed (exit 2)')
        assert bad.indexOf { it.step == 'archiveArtifacts' } < bad.indexOf { it.step == 'error' }
        assert !bad.calls('build') && bad.currentBuild.description == 'drift: error'
    }

    @Test
    void drift_without_a_job_is_unstable_and_says_so() {
        PipelineHarness h = harness()
        h.on(['drift', 'plan']) { c ->
            [status: 0, stdout: JsonOutput.toJson([schema: 'mlci.drift.plan/1', cron: null, retrain: [job: null, parameters: [:]]])]
        }
        checkAnswers(h, 1, 'DRIFT', ['x.3'])
        h.run('driftCheck')
        assert !h.calls('build') && h.currentBuild.result == 'UNSTABLE'
        assert h.calls('unstable')[0].args[0].contains('no drift.retrain.job')
    }

    @Test
    void unknown_arguments_fail_before_any_agent_is_taken() {
        PipelineHarness h = harness()
        Throwable t = h.runFailing('driftCheck', [trainjob: 'x'])
        assert t.message.contains('unknown argument(s) trainjob') && t.message.contains('driftCheck.txt')
        assert !h.calls('node')
    }
}
