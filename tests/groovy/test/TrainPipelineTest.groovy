import groovy.json.JsonOutput
import org.junit.Test

/**
 * mlPipeline's Train stage (train.in_pipeline) with the REAL `mlci pipeline plan` deciding on the
 * train-pipeline fixture: present only on timer builds of train.branches and on user builds that ask for it,
 * after Accuracy, on the training label (never the controller, never inside the main node), one properties()
 * holding every cron, the git push credentials bound by the Git plugin's binding, and the sh scan clean.
 */
class TrainPipelineTest {
    static final File WS = new File(PipelineHarness.FIXTURES, 'train-pipeline')
    static final String CONFIG_JSON = PipelineHarness.mlciProcess(['config', 'show', '--json'], [:], WS).stdout
    static final String TRAIN_LABEL = "gpu && train'q"
    static final String GIT_CRED = 'git\'push$(id)'
    static final List<String> FULL = ['Build', 'Unit tests', 'Acceptance tests', 'Accuracy']
    static final String ALL_CRONS = 'H 2 * * *\nH 4 * * 2\nH 5 * * 6'

    PipelineHarness harness(String branch, String cause, Map params = [:]) {
        PipelineHarness h = new PipelineHarness()
        h.workspace = WS
        h.env.base.WORKSPACE = WS.path
        h.binding.setVariable('params', params)
        h.branch(branch, cause).fixtureCredentials()
        h.credential(GIT_CRED, [kind: 'usernamePassword', user: 'git-bot-secret', password: 'ghp_GITpush"SECRET$HOME'])
        h.scanConfig(new File(WS, 'ml-ci.yaml').path)
        h.on(['config', 'show']) { c -> [status: 0, stdout: CONFIG_JSON] }
        h.on(['train']) { c ->
            h.files['.mlci/train.json'] = JsonOutput.toJson([status: 'published', published: [tag: 'svc-q-model-2'],
                                                              reason: "suite 'smoke' passed"])
            0
        }
        return h
    }

    static List stages(PipelineHarness h) { h.calls('stage')*.args*.getAt(0) }

    static List planArgv(PipelineHarness h) { h.mlci().find { it.take(2) == ['pipeline', 'plan'] } }

    static void assertTrainedOnItsOwnAgent(PipelineHarness h, String trigger) {
        def train = h.mlciCall(['train'])
        assert train.extra.argv == ['train', '--trigger', trigger]
        // Outside the main node: exactly one node around it, the training label; never a label-less node.
        assert train.ctx.findAll { it.startsWith('node:') } == ["node:${TRAIN_LABEL}".toString()]
        assert train.ctx.contains('stage:Train')
        // The plan's timeout: ceil(train.timeout 44.5) + 30 minutes of overhead.
        assert train.ctx.contains('timeout:75')
        List trainNodes = h.calls('node').findAll { it.ctx.contains('stage:Train') }
        assert trainNodes*.extra*.label == [TRAIN_LABEL]
        // The pipeline's one properties() call holds train.schedule: the train code must not call it again.
        assert h.calls('properties').size() <= 1
        assert !h.calls('properties').any { it.ctx.contains('stage:Train') }
        // Git push credentials: the Git plugin's binding, by id, values reach the container by NAME only.
        assert train.ctx.contains('withCredentials')
        def bind = h.calls('withCredentials').find { it.ctx.contains('stage:Train') }
        Map git = bind.args[0].find { it.binding == 'gitUsernamePassword' } as Map
        assert git == [binding: 'gitUsernamePassword', credentialsId: GIT_CRED, gitToolName: 'Default']
        assert (bind.extra.vars as List).containsAll(['GIT_USERNAME', 'GIT_PASSWORD', 'GIT_ASKPASS'])
        String script = train.extra.script as String
        ['GIT_ASKPASS', 'GIT_USERNAME', 'GIT_PASSWORD', 'GIT_TERMINAL_PROMPT'].each { assert script.contains(" -e ${it} ") }
        assert h.currentBuild.description.contains('train: published svc-q-model-2')
    }

    static void assertOneCron(PipelineHarness h, String crons) {
        List props = h.calls('properties')
        assert props.size() == 1
        assert props[0].args[0] == [[pipelineTriggers: [[cron: crons]]]]
        // Registered before any stage runs.
        assert h.indexOf { it.step == 'properties' } < h.indexOf { it.step == 'stage' }
    }

    @Test
    void timer_build_of_a_train_branch_trains_after_accuracy_and_never_deploys() {
        PipelineHarness h = harness('develop', 'timer')
        Map out = h.run('mlPipeline') as Map

        assert stages(h) == ['Build', 'Accuracy', 'Train']
        assert h.indexOf { it.step == 'stage' && it.args[0] == 'Accuracy' } < h.indexOf { it.step == 'stage' && it.args[0] == 'Train' }
        // Every accuracy command is done before training starts.
        int lastAccuracy = h.calls.findLastIndexOf { it.step == 'sh' && it.extra.argv?.take(2) in [['test', 'accuracy'], ['accuracy', 'merge']] }
        assert lastAccuracy >= 0 && lastAccuracy < h.indexOf { it.step == 'sh' && it.extra.argv?.getAt(0) == 'train' }
        assertTrainedOnItsOwnAgent(h, 'timer')
        assertOneCron(h, ALL_CRONS)
        assert !h.mlci().any { it[0] == 'deploy' } && !h.calls('input')
        assert !planArgv(h).contains('--train')
        assert out.train == [status: 'published', tag: 'svc-q-model-2', reason: "suite 'smoke' passed", exitCode: 0]
    }

    @Test
    void user_build_that_asks_trains_before_the_deploy() {
        PipelineHarness h = harness('develop', 'user')
        h.run('mlPipeline', [train: true])

        assert stages(h) == FULL + ['Train', 'Deploy: staging']
        assert planArgv(h).contains('--train')
        assertTrainedOnItsOwnAgent(h, 'user')
        assertOneCron(h, ALL_CRONS)
        assert h.indexOf { it.step == 'sh' && it.extra.argv?.getAt(0) == 'train' } < h.indexOf { it.step == 'sh' && it.extra.argv?.getAt(0) == 'deploy' }
    }

    @Test
    void the_MLCI_TRAIN_build_parameter_asks_too() {
        PipelineHarness h = harness('release/3.0', 'user', [MLCI_TRAIN: true])
        h.run('mlPipeline')
        assert stages(h) == FULL + ['Train']
        assertTrainedOnItsOwnAgent(h, 'user')
        assertOneCron(h, 'H 2 * * *\nH 4 * * 2')

        PipelineHarness s = harness('release/3.0', 'user', [MLCI_TRAIN: 'false'])
        s.run('mlPipeline')
        assert stages(s) == FULL && !s.mlciCall(['train'])
        assert !planArgv(s).contains('--train')
    }

    @Test
    void user_and_push_builds_that_do_not_ask_never_train() {
        PipelineHarness h = harness('develop', 'user')
        h.run('mlPipeline')
        assert stages(h) == FULL + ['Deploy: staging'] && !h.mlciCall(['train'])
        assertOneCron(h, ALL_CRONS)  // the schedule stays registered

        PipelineHarness p = harness('develop', 'push')
        p.run('mlPipeline', [train: true])
        assert !p.mlciCall(['train']) && !stages(p).contains('Train')
        assert p.calls('echo')*.args*.getAt(0).any { it.startsWith('train: skipped: only timer builds') }
    }

    @Test
    void pull_requests_never_train_even_when_asked() {
        PipelineHarness h = harness('PR-42', 'pr', [MLCI_TRAIN: 'true'])
        h.run('mlPipeline', [train: true])
        assert stages(h) == FULL
        assert !h.mlciCall(['train']) && !h.calls('properties')
        assert h.calls('echo')*.args*.getAt(0)*.toString().contains('train: skipped: pull requests never train')
        assert !h.calls('withCredentials').any { c -> c.args[0].any { it.binding == 'gitUsernamePassword' } }
    }

    @Test
    void branches_outside_train_branches_do_not_train_or_register_its_cron() {
        PipelineHarness h = harness('main', 'timer')
        h.run('mlPipeline')
        assert stages(h) == ['Build', 'Accuracy'] && !h.mlciCall(['train'])
        assert !h.calls('properties')

        PipelineHarness f = harness('feature/x$(id)', 'user')
        f.run('mlPipeline', [train: true])
        assert !f.mlciCall(['train']) && !stages(f).contains('Train')
    }

    @Test
    void a_failed_training_fails_the_build_before_any_deploy() {
        PipelineHarness h = harness('develop', 'user')
        h.on(['train']) { c -> 1 }
        Throwable t = h.runFailing('mlPipeline', [train: true])
        assert t instanceof StepFailure && t.message.contains('mlci train failed (exit 1)')
        assert !h.mlci().any { it[0] == 'deploy' } && !stages(h).contains('Deploy: staging')
        assert h.indexOf { it.step == 'archiveArtifacts' && it.ctx.contains('stage:Train') } < h.indexOf { it.step == 'error' }
    }

    @Test
    void the_train_step_alone_binds_the_git_credentials_and_registers_its_own_cron() {
        PipelineHarness h = harness('develop', 'user')
        h.run('train')
        def train = h.mlciCall(['train'])
        assert train.ctx.contains("node:${TRAIN_LABEL}".toString())
        Map git = h.calls('withCredentials')[-1].args[0].find { it.binding == 'gitUsernamePassword' } as Map
        assert git?.credentialsId == GIT_CRED && git.gitToolName == 'Default'
        assert h.calls('properties')*.args*.getAt(0) == [[[pipelineTriggers: [[cron: 'H 4 * * 2']]]]]
    }
}
