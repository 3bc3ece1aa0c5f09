import org.junit.Test

/** deploy: approval ordering outside any node, lock, milestones, timeouts, credentials, refusals. */
class DeployTest {
    static final String IMAGE = 'registry.example.com:5000/ml/svc@sha256:' + 'b' * 64

    PipelineHarness h(String branch = 'main') { new PipelineHarness().branch(branch).fixtureCredentials().scanConfig() }

    @Test
    void production_is_milestone_input_lock_milestone_then_node() {
        PipelineHarness h = h()
        assert h.run('deploy', [image: IMAGE]) == [environment: 'production', image: IMAGE]
        List order = h.calls.findAll { it.step in ['milestone', 'input', 'lock', 'node'] && !it.ctx.any { f -> f.startsWith('node:') } }
        // The plan is read on a first node; the deploy proper starts after it.
        int first = h.indexOf { it.step == 'milestone' }
        List seq = h.calls.findAll { it.seq >= first && it.step in ['milestone', 'input', 'lock', 'node'] }*.step
        assert seq == ['milestone', 'input', 'lock', 'milestone', 'node']
        def input = h.calls('input')[0]
        assert !input.ctx.any { it.startsWith('node:') }: "input holds an executor: ${input.ctx}"
        assert input.ctx.contains('timeout:45')
        assert input.named.submitter == "release-leads,o'brien"
        assert input.named.message == 'Deploy svc-q to production?'
        def lock = h.calls('lock')[0]
        assert lock.named.resource == 'mlci-svc-q-production' && !lock.ctx.any { it.startsWith('node:') }
        assert h.calls('milestone')[1].ctx.contains('lock:mlci-svc-q-production')
        def run = h.mlciCall(['deploy'])
        assert run.extra.argv == ['deploy', '--env', 'production', '--image', IMAGE]
        assert run.ctx.containsAll(['lock:mlci-svc-q-production', 'timeout:33', 'withCredentials'])
        assert run.extra.env.KUBECONFIG == '/secret/kubeconfig-file-secret'
        assert h.calls('archiveArtifacts')*.named*.artifacts == ['.mlci/deploy.json']
        assert h.currentBuild.description == 'deployed to production'
        assert order.size() >= 4
    }

    @Test
    void rejected_approval_deploys_nothing() {
        PipelineHarness h = h()
        h.inputAction = { Map q -> throw new StepFailure('Rejected by release-leads') }
        Throwable t = h.runFailing('deploy', [image: IMAGE])
        assert t.message == 'Rejected by release-leads'
        assert !h.calls('lock') && !h.mlciCall(['deploy'])
    }

    @Test
    void staging_needs_no_approval_but_still_locks() {
        PipelineHarness h = h('develop')
        h.run('deploy', [image: IMAGE])
        assert !h.calls('input')
        assert h.calls('lock')*.named*.resource == ['mlci-svc-q-staging']
        assert h.mlciCall(['deploy']).extra.argv[2] == 'staging'
        assert !h.mlciCall(['deploy']).extra.env.KUBECONFIG
    }

    @Test
    void approval_inside_a_node_is_refused() {
        PipelineHarness h = h()
        h.env.base.NODE_NAME = 'agent-1'
        Throwable t = h.runFailing('deploy', [image: IMAGE])
        assert t.message.contains('call deploy outside node { }')
        assert !h.calls('input') && !h.mlciCall(['deploy'])
    }

    @Test
    void image_is_required_and_environment_must_exist() {
        PipelineHarness a = h()
        assert a.runFailing('deploy').message.startsWith('deploy: `image` is required')
        assert !a.calls('node')
        PipelineHarness b = h()
        Throwable t = b.runFailing('deploy', [image: IMAGE, environment: 'qa'])
        assert t.message == "deploy: unknown environment 'qa'; configured: production, staging"
    }

    @Test
    void a_branch_without_environment_skips_and_an_explicit_one_is_honoured() {
        PipelineHarness a = h('feature/x')
        assert a.run('deploy', [image: IMAGE]) == [:]
        assert !a.mlciCall(['deploy'])
        PipelineHarness b = h('feature/x')
        b.run('deploy', [image: IMAGE, environment: 'staging'])
        assert b.mlciCall(['deploy']).extra.argv[2] == 'staging'
    }

    @Test
    void mlPipeline_hands_records_to_the_deploy_node() {
        PipelineHarness h = h()
        h.run('mlPipeline')
        def stash = h.calls('stash').find { it.named.name == 'mlci-records' }
        assert stash.extra.files.contains('.mlci/build.json') && stash.extra.files.contains('.mlci/accuracy/smoke/accuracy.json')
        def unstash = h.calls('unstash')[0]
        assert unstash.args[0] == 'mlci-records' && unstash.ctx.contains('lock:mlci-svc-q-production')
        assert unstash.seq < h.mlciCall(['deploy']).seq
        assert h.calls('stage')*.args*.getAt(0).last() == 'Deploy: production'
        // The approval wait sits in the Deploy stage, after the build node was released.
        def input = h.calls('input')[0]
        assert input.ctx == ['stage:Deploy: production', 'timeout:45']
    }

    @Test
    void milestones_have_explicit_ordinals_per_environment_and_the_lock_serves_the_newest_build_first() {
        PipelineHarness h = h()
        h.run('deploy', [image: IMAGE])
        // production is the 2nd of deploy.environments: ordinals 21 (approval) and 22 (inside the lock).
        assert h.calls('milestone')*.named == [[ordinal: 21, label: 'approve production'],
                                               [ordinal: 22, label: 'deploy production']]
        assert h.calls('lock')[0].named == [resource: 'mlci-svc-q-production', inversePrecedence: true]
        assert h.calls('input')[0].named.id == 'MlciDeploy2production'
    }

    @Test
    void one_build_can_deploy_to_each_environment_in_turn_with_its_own_input_id() {
        PipelineHarness both = h()
        both.run('deploy', [image: IMAGE, environment: 'staging'])
        both.run('deploy', [image: IMAGE, environment: 'production'])
        assert both.calls('milestone')*.named*.ordinal == [12, 21, 22]
        assert both.mlci().findAll { it[0] == 'deploy' }*.getAt(2) == ['staging', 'production']
        // Out of order, the milestone step refuses, as Jenkins does ("Invalid ordinal").
        PipelineHarness back = h()
        back.run('deploy', [image: IMAGE, environment: 'production'])
        assert back.runFailing('deploy', [image: IMAGE, environment: 'staging']).message == 'Invalid ordinal 12, as the previous one was 22'
    }

    @Test
    void a_hostile_environment_name_stays_out_of_the_input_id() {
        PipelineHarness h = h()
        assert h.callIn('deploy', 'inputId', 3, "prod'<b>\$(id)") == 'MlciDeploy3prodbid'
    }
}
