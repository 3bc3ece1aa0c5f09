import org.junit.Test
import org.junit.runner.RunWith
import org.junit.runners.Parameterized
import org.junit.runners.Parameterized.Parameters

/**
 * mlPipeline over the branch x build-cause matrix, with the REAL `mlci pipeline plan` deciding on the fixture
 * ml-ci.yaml: stage order, suites, deploy (and approval), cron registration.
 */
@RunWith(Parameterized)
class BranchPolicyTest {
    static final List<String> FULL = ['Build', 'Unit tests', 'Acceptance tests', 'Accuracy']
    static final String BOTH_CRONS = 'H 2 * * *\nH 5 * * 6'
    static final List<List> SMOKE = [['test', 'accuracy', '--suite', 'smoke']]
    static final List<List> HEAVY = [['accuracy', 'merge', '--out', '.mlci', '.mlci/shards/heavy-q.x_1/1/.mlci',
                                      '.mlci/shards/heavy-q.x_1/2/.mlci', '.mlci/shards/heavy-q.x_1/3/.mlci'],
                                     ['test', 'accuracy', '--suite', 'weekly-extra']]

    // branch, cause, stages, suites (accuracy commands on the main node), deploy env, cron (null: properties not called)
    @Parameters(name = '{0} {1}')
    static Collection<Object[]> matrix() {
        return [
            ['feature/login$(id)', 'push', FULL, SMOKE, null, null],
            ['feature/login$(id)', 'user', FULL, SMOKE, null, null],
            ['feature/login$(id)', 'timer', ['Build', 'Accuracy'], SMOKE, null, null],
            ['PR-42', 'pr', FULL, SMOKE, null, null],
            ['develop', 'push', FULL + 'Deploy: staging', SMOKE, 'staging', BOTH_CRONS],
            ['develop', 'user', FULL + 'Deploy: staging', SMOKE, 'staging', BOTH_CRONS],
            ['develop', 'timer', ['Build', 'Accuracy'], HEAVY, null, BOTH_CRONS],
            ['release/2.0', 'push', FULL, SMOKE, null, 'H 2 * * *'],
            ['release/2.0', 'user', FULL, SMOKE, null, 'H 2 * * *'],
            ['release/2.0', 'timer', ['Build', 'Accuracy'], [HEAVY[0]], null, 'H 2 * * *'],
            ['main', 'push', FULL + 'Deploy: production', SMOKE, 'production', null],
            ['main', 'user', FULL + 'Deploy: production', SMOKE, 'production', null],
            ['main', 'timer', ['Build', 'Accuracy'], SMOKE, null, null],
        ].collect { it as Object[] }
    }

    String branch, cause
    List stages, suites
    String deployEnv, cron

    BranchPolicyTest(String branch, String cause, List stages, List suites, String deployEnv, String cron) {
        this.branch = branch; this.cause = cause; this.stages = stages; this.suites = suites
        this.deployEnv = deployEnv; this.cron = cron
    }

    @Test
    void executes_the_plan() {
        PipelineHarness h = new PipelineHarness().branch(branch, cause).fixtureCredentials().scanConfig()
        h.run('mlPipeline')

        assert h.calls('stage')*.args*.getAt(0) == stages
        // One plan per build, computed first, with the Jenkins facts.
        List plans = h.mlci().findAll { it.take(2) == ['pipeline', 'plan'] }
        assert plans.size() == 1 && h.mlci()[0] == plans[0]
        assert plans[0].contains('--cause') && plans[0][plans[0].indexOf('--cause') + 1] == cause
        assert plans[0][plans[0].indexOf('--branch') + 1] == branch

        List acc = h.mlci().findAll { it.take(2) in [['test', 'accuracy'], ['accuracy', 'merge']] && !('--shard' in it) }
        assert acc == suites
        // A sharded suite's shards: one `mlci test accuracy --shard k/N` per shard, each on its own node.
        List shards = h.calls('sh').findAll { it.extra.argv && '--shard' in it.extra.argv }
        assert shards*.extra*.argv*.getAt(5) == (suites == SMOKE ? [] : ['1/3', '2/3', '3/3'])
        shards.each { assert it.ctx.count { f -> f.startsWith('node:') } == 2 }

        // Every stage's work runs under a timeout; every node under an agent-only retry.
        h.calls('sh').each { c ->
            assert c.ctx.any { it.startsWith('timeout:') }: "no timeout around ${c}"
        }
        h.calls('node').each { assert it.ctx.last() == 'retry' }

        Object props = h.calls('properties')
        if (cron == null) {
            assert !props
        } else {
            assert props.size() == 1
            List triggers = props[0].args[0][0].pipelineTriggers
            assert triggers == [[cron: cron]]
        }

        List deploys = h.mlci().findAll { it[0] == 'deploy' }
        if (deployEnv) {
            assert deploys == [['deploy', '--env', deployEnv, '--image',
                                'registry.example.com:5000/ml/svc@sha256:' + 'a' * 64]]
            assert h.calls('input').size() == (deployEnv == 'production' ? 1 : 0)
            assert h.calls('lock')*.named*.resource == ["mlci-svc-q-${deployEnv}".toString()]
        } else {
            assert !deploys && !h.calls('input') && !h.calls('lock')
        }
        if (cause == 'pr') {
            assert h.mlciCall(['report', 'post']).ctx.contains('withCredentials')
        } else {
            assert !h.mlciCall(['report', 'post'])
        }
        assert h.currentBuild.description.startsWith('accuracy: ')
    }
}
