import org.mlci.Mlci
import org.mlci.Nodes
import org.mlci.Plan
import org.mlci.Publish
import org.mlci.Steps
import org.mlci.Train

/**
 * The whole pipeline from ml-ci.yaml. The branch policy is `mlci pipeline plan` (Python); this only executes
 * it: stages in order, each with its timeout, the cron trigger on integration branches, the Train stage (when
 * the plan says so) and the deploy outside any node. See mlPipeline.txt.
 */
def call(Map args = [:]) {
    Steps.check(this, 'mlPipeline', args)
    Mlci mlci = Mlci.fromArgs(this, args)
    String label = (args.agent ?: '') as String
    Map state = [plan: null, built: [:], done: false]
    Nodes.checkedOut(this, label) {
        state.plan = Plan.load(this, args, mlci)
        triggers(state.plan as Map, args)
        if ((args.agent ?: state.plan.agent ?: '') == label) {
            state.built = stages(state.plan as Map, args)
            state.done = true
        }
    }
    Map plan = state.plan as Map
    if (!state.done) {
        // pipeline.agent names another label than the one the plan was read on.
        Nodes.checkedOut(this, plan.agent as String) {
            state.built = stages(plan, args)
        }
    }
    Map trained = train(plan, args)
    if (Plan.stage(plan, 'deploy')) {
        stage("Deploy: ${plan.deploy.environment}".toString()) {
            deploy(pass(args, plan) + [image: state.built.image, records: 'mlci-records'])
        }
    }
    return [plan: plan, image: state.built.image ?: '', train: trained]
}

/**
 * The Train stage after the main node has released its executor (after Accuracy): org.mlci.Train, the train
 * step's own code, on the plan's training label or any agent but the controller, within the plan's timeout.
 * triggers: false because this build's one properties() call (triggers()) already holds train.schedule.
 */
Map train(Map plan, Map args) {
    Map t = (plan.train ?: [:]) as Map
    if (!t.enabled) {
        if (Plan.trainRequested(this, args)) {
            echo("train: skipped: ${t.reason ?: 'the plan has no train entry'}")
        }
        return [:]
    }
    Map targs = pass(args, plan)
    targs.agent = (t.agent ?: Nodes.NOT_CONTROLLER) as String
    targs.trigger = t.trigger
    targs.triggers = false
    Map out = [:]
    stage(t.stage as String) {
        out = Train.run(this, Mlci.fromArgs(this, targs), targs, [minutes: t.timeout])
    }
    return out
}

/** The arguments every step gets from mlPipeline. */
Map pass(Map args, Map plan) {
    Map out = [plan: plan]
    for (String k : ['config', 'runner', 'runnerImage']) {
        if (args.containsKey(k)) {
            out[k] = args[k]
        }
    }
    if (args.agent) {
        out.agent = args.agent
    }
    return out
}

/** Every stage but deploy, in the plan's order, on this node; the records are stashed for the deploy node. */
Map stages(Map plan, Map args) {
    // This build's records only: the workspace may hold an earlier build's .mlci/.
    Publish.clean(this, Mlci.OUT)
    Map base = pass(args, plan)
    base.remove('agent')
    Map built = [:]
    List list = plan.stages as List
    for (int i = 0; i < list.size(); i++) {
        String name = (list[i] as Map).name
        if (name == 'build') {
            stage('Build') { built = buildImage(base) }
        } else if (name == 'unit') {
            stage('Unit tests') { unitTests(base) }
        } else if (name == 'acceptance') {
            stage('Acceptance tests') { acceptanceTests(base) }
        } else if (name == 'accuracy') {
            stage('Accuracy') { accuracyTests(accuracyArgs(base, args)) }
        }
    }
    if (Plan.stage(plan, 'deploy')) {
        Publish.stash(this, 'mlci-records', Mlci.OUT + '/build.json,' + Mlci.OUT + '/accuracy/*/accuracy.json', true)
    }
    return built
}

/** accuracyTests' arguments: the common ones plus forceAccuracy (only that step takes it). */
Map accuracyArgs(Map base, Map args) {
    Map out = [:]
    out.putAll(base)
    if (args.containsKey('forceAccuracy')) {
        out.forceAccuracy = args.forceAccuracy
    }
    return out
}

/**
 * Cron only where the plan says `manage` (integration and train branches): set to the scheduled suites' specs
 * plus train.schedule (with train.in_pipeline), in ONE properties() call, or to none so a removed schedule
 * stops firing. properties() replaces all job properties, hence jobProperties, which
 * are set on every branch.
 */
void triggers(Map plan, Map args) {
    boolean enabled = args.containsKey('triggers') ? (args.triggers as boolean) : true
    boolean manage = enabled && plan.triggers.manage
    if (!manage && !args.jobProperties) {
        return
    }
    List props = []
    if (manage) {
        List specs = plan.triggers.cron as List
        props.add(pipelineTriggers(specs ? [cron(specs.join('\n'))] : []))
    }
    if (args.jobProperties) {
        props.addAll(args.jobProperties as List)
    }
    properties(props)
}
