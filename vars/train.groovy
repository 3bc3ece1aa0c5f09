import groovy.transform.Field
import org.mlci.Creds
import org.mlci.Mlci
import org.mlci.Nodes
import org.mlci.Plan
import org.mlci.Publish
import org.mlci.Steps

/**
 * Retraining with `mlci train` on the training agent label (train.agent, else pipeline.agent), never on the
 * controller. Returns [status: published|unchanged|rejected|not-evaluated|error, tag:, reason:, exitCode:].
 * See train.txt. Call OUTSIDE node {}: the step allocates its own executor on the right label.
 */
/** Any agent but the controller: its self-label is built-in (Jenkins >= 2.307) or master (older). */
@Field static final String NOT_CONTROLLER = '!built-in && !master'
/** Minutes on top of train.timeout for the image build, data pull, evaluation and publishing. */
@Field static final int OVERHEAD_MINUTES = 30

Map call(Map args = [:]) {
    Steps.check(this, 'train', args)
    Mlci mlci = Mlci.fromArgs(this, args)
    String label = (args.agent ?: '') as String
    if (!label) {
        // Where to train is in ml-ci.yaml: read it on any agent (not the controller), then go there.
        Nodes.on(this, NOT_CONTROLLER) {
            Nodes.checkout(this)
            Map cfg = readJSON(text: mlci.output(['config', 'show', '--json']), returnPojo: true) as Map
            label = ((cfg.train as Map)?.agent ?: (cfg.pipeline as Map)?.agent ?: '') as String
        }
    }
    Map out = [:]
    Nodes.on(this, label ?: NOT_CONTROLLER) {
        Nodes.checkout(this)
        out = trainHere(mlci, args)
    }
    return out
}

/** On the training agent: config, plan (runner, credentials), `mlci train`, records, verdict. */
Map trainHere(Mlci mlci, Map args) {
    Map cfg = readJSON(text: mlci.output(['config', 'show', '--json']), returnPojo: true) as Map
    Map t = cfg.train as Map
    if (!t) {
        error('train: ml-ci.yaml has no train: section (see train.txt)')
    }
    schedule(t, args)
    Map plan = Plan.load(this, args, mlci)
    mlci = mlci.forPlan(plan)
    // Started by driftCheck (its build parameters carry DRIFT_REASON): the trigger is drift.
    String trigger = (args.trigger ?: (params?.DRIFT_REASON ? 'drift' : Plan.cause(this))) as String
    List cmd = ['train', '--trigger', trigger]
    if (args.force) {
        cmd.add('--force')
    }
    int minutes = ((int) Math.ceil(t.timeout as double)) + OVERHEAD_MINUTES
    String kubeconfig = t.runner == 'kubernetes' ? (t.kubeconfig_credentials ?: '') as String : ''
    int rc = 2
    timeout(time: minutes, unit: 'MINUTES') {
        try {
            Creds.withKube(this, plan, ['artifacts', 'report_token', 'kubeconfig'], kubeconfig) {
                rc = mlci.status(cmd)
            }
        } finally {
            Publish.archive(this, Mlci.OUT + '/train.json,' + Mlci.OUT + '/train/eval/**,' + Mlci.OUT + '/train/job.yaml')
        }
    }
    Map result = fileExists(Mlci.OUT + '/train.json') ?
        readJSON(file: Mlci.OUT + '/train.json', returnPojo: true) as Map : [status: 'error']
    String tag = ((result.published as Map)?.tag ?: '') as String
    String status = (rc == 0 || result.status == 'rejected') ? result.status as String : 'error'
    Publish.describe(this, "train: ${status}${tag ? ' ' + tag : ''}")
    if (rc == 3 || (rc == 1 && status == 'rejected')) {
        // A model that did not beat the current one is an answer, not a broken build: nothing was published.
        unstable("train: new model not published: ${result.reason}")
    } else if (rc != 0) {
        error("train: mlci train failed (exit ${rc}); see the log above")
    }
    return [status: status, tag: tag, reason: result.reason ?: '', exitCode: rc]
}

/**
 * The job's cron from train.schedule (none when unset, so a removed schedule stops firing). properties()
 * replaces every job property, so the job's other properties (e.g. the FORCE_RETRAIN parameter of on-demand
 * runs) come in through jobProperties; triggers: false leaves the job's properties alone.
 */
void schedule(Map t, Map args) {
    boolean enabled = args.containsKey('triggers') ? (args.triggers as boolean) : true
    if (!enabled) {
        return
    }
    List props = [pipelineTriggers(t.schedule ? [cron(t.schedule as String)] : [])]
    if (args.jobProperties) {
        props.addAll(args.jobProperties as List)
    }
    properties(props)
}
