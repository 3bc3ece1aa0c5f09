import groovy.json.JsonOutput
import org.junit.Test

/**
 * vars/train.groovy with the harness: the training agent label comes from ml-ci.yaml (read by the REAL
 * `mlci config show` on the fixture), no node ever runs on the controller, credentials are bound by name,
 * and the exit code + train.json decide the build result.
 */
class TrainStepTest {
    static final File WS = new File(PipelineHarness.FIXTURES, 'train-service')
    static final String CONFIG_JSON = PipelineHarness.mlciProcess(['config', 'show', '--json'], [:], WS).stdout

    PipelineHarness harness(String branch = 'main', String cause = 'timer') {
        PipelineHarness h = new PipelineHarness()
        h.workspace = WS
        h.env.base.WORKSPACE = WS.path
        h.branch(branch, cause).fixtureCredentials().scanConfig(new File(WS, 'ml-ci.yaml').path)
        h.on(['config', 'show']) { c -> [status: 0, stdout: CONFIG_JSON] }
        return h
    }

    static void trainAnswers(PipelineHarness h, int rc, Map result) {
        h.on(['train']) { c ->
            if (result != null) {
                h.files['.mlci/train.json'] = JsonOutput.toJson(result)
            }
            rc
        }
    }

    static List<String> nodeLabels(PipelineHarness h) { h.calls('node')*.extra*.label }

    @Test
    void trains_on_the_configured_label_and_never_on_the_controller() {
        PipelineHarness h = harness()
        trainAnswers(h, 0, [status: 'published', published: [tag: 'svc-train-model-4'], reason: "suite 'change' passed"])
        Map out = h.run('train') as Map

        assert out == [status: 'published', tag: 'svc-train-model-4', reason: "suite 'change' passed", exitCode: 0]
        // first a short read of ml-ci.yaml on any agent but the controller, then train.agent
        assert nodeLabels(h) == ['!built-in && !master', "gpu && linux'q"]
        assert h.calls('node').every { it.extra.label }
        def train = h.mlciCall(['train'])
        assert train.extra.argv == ['train', '--trigger', 'timer']
        assert train.ctx.contains("node:gpu && linux'q") && train.ctx.contains('timeout:120')
        assert train.ctx.contains('withCredentials')
        List bound = h.calls('withCredentials')[-1].extra.vars as List
        assert bound.containsAll(['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'MLCI_REPORT_TOKEN', 'KUBECONFIG'])
        assert h.calls('archiveArtifacts')[0].named.artifacts.contains('.mlci/train.json')
        assert h.currentBuild.description == 'train: published svc-train-model-4'
        assert h.currentBuild.result == null
        // scheduled retraining: the cron from train.schedule, set before training
        assert h.calls('properties')*.args*.getAt(0) == [[[pipelineTriggers: [[cron: 'H 3 * * 1']]]]]
        assert h.indexOf { it.step == 'properties' } < h.indexOf { it.step == 'sh' && it.extra.argv?.getAt(0) == 'train' }
    }

    @Test
    void job_properties_are_kept_and_triggers_false_leaves_them_alone() {
        PipelineHarness h = harness()
        trainAnswers(h, 0, [status: 'published', published: [tag: 't'], reason: 'ok'])
        h.run('train', [jobProperties: [[parameters: 'FORCE_RETRAIN']]])
        assert h.calls('properties')[0].args[0] == [[pipelineTriggers: [[cron: 'H 3 * * 1']]], [parameters: 'FORCE_RETRAIN']]

        PipelineHarness h2 = harness()
        trainAnswers(h2, 0, [status: 'published', published: [tag: 't'], reason: 'ok'])
        h2.run('train', [triggers: false])
        assert !h2.calls('properties')
    }

    @Test
    void explicit_agent_force_and_trigger_for_on_demand_runs() {
        PipelineHarness h = harness('develop', 'user')
        trainAnswers(h, 0, [status: 'unchanged', reason: 'identical'])
        Map out = h.run('train', [agent: 'big-gpu', force: true, trigger: 'drift']) as Map

        assert nodeLabels(h) == ['big-gpu']
        assert h.mlciCall(['train']).extra.argv == ['train', '--trigger', 'drift', '--force']
        assert out.status == 'unchanged' && out.tag == ''
    }

    @Test
    void a_run_started_by_driftCheck_records_drift_as_its_trigger() {
        PipelineHarness h = harness('main', 'push')
        h.binding.setVariable('params', [DRIFT_REASON: 'pixel_12 drifted (KS p=0.001)', DRIFT_FEATURES: 'pixel_12'])
        trainAnswers(h, 0, [status: 'published', published: [tag: 't'], reason: 'ok'])
        h.run('train')
        assert h.mlciCall(['train']).extra.argv == ['train', '--trigger', 'drift']
    }

    @Test
    void a_rejected_model_marks_the_build_unstable_and_publishes_nothing() {
        PipelineHarness h = harness()
        trainAnswers(h, 1, [status: 'rejected', published: null, reason: 'accuracy change vs baseline -> FAIL'])
        Map out = h.run('train') as Map

        assert out.status == 'rejected' && out.exitCode == 1
        assert h.currentBuild.result == 'UNSTABLE'
        assert h.calls('unstable')[0].args[0].contains('accuracy change vs baseline -> FAIL')
        assert !h.calls('error')
    }

    @Test
    void a_failed_training_run_fails_the_build_after_archiving() {
        PipelineHarness h = harness()
        trainAnswers(h, 1, null)
        Throwable t = h.runFailing('train')

        assert t instanceof StepFailure && t.message.contains('mlci train failed (exit 1)')
        assert h.indexOf { it.step == 'archiveArtifacts' } < h.indexOf { it.step == 'error' }
        assert h.currentBuild.description == 'train: error'
    }

    @Test
    void unknown_arguments_fail_before_any_agent_is_taken() {
        PipelineHarness h = harness()
        Throwable t = h.runFailing('train', [agnet: 'gpu'])
        assert t.message.contains("unknown argument(s) agnet") && t.message.contains('train.txt')
        assert !h.calls('node')
    }

    /** Jenkins renders descriptions as HTML (Safe HTML formatter): a tag mlci read from git goes in escaped. */
    @Test
    void a_hostile_tag_reaches_the_build_description_escaped() {
        PipelineHarness h = harness()
        String tag = 'svc-model-1<img src=x onerror="alert(1)">&\'<script>'
        trainAnswers(h, 0, [status: 'published', published: [tag: tag], reason: 'ok'])
        h.run('train')
        String d = h.currentBuild.description
        assert d == 'train: published svc-model-1&lt;img src=x onerror=&quot;alert(1)&quot;&gt;&amp;&#39;&lt;script&gt;'
        assert !d.contains('<') && !d.contains('>') && !d.contains('"')
    }
}
