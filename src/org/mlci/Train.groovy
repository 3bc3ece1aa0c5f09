package org.mlci

/**
 * Retraining with `mlci train`: the ONE implementation behind the `train` step and mlPipeline's Train stage, so
 * both run on the same label rules (never the controller), with the same credentials, timeout and verdicts.
 */
class Train implements Serializable {
    private static final long serialVersionUID = 1L

    /** Minutes on top of train.timeout for the image build, data pull, evaluation and publishing. */
    static final int OVERHEAD_MINUTES = 30

    /**
     * Takes its own executor (call OUTSIDE node {}): args.agent, else train.agent / pipeline.agent read from
     * ml-ci.yaml on any agent but the controller, else any agent but the controller.
     * Options (not step arguments): minutes = the plan's train timeout (mlPipeline), else computed from config.
     */
    static Map run(def steps, Mlci mlci, Map args, Map opts = [:]) {
        String label = (args.agent ?: '') as String
        if (!label) {
            Nodes.checkedOut(steps, '') {
                Map cfg = Train.config(steps, mlci)
                label = ((cfg.train as Map)?.agent ?: (cfg.pipeline as Map)?.agent ?: '') as String
            }
        }
        Map out = [:]
        Nodes.checkedOut(steps, label) {
            out = Train.here(steps, mlci, args, opts)
        }
        return out
    }

    static Map config(def steps, Mlci mlci) {
        return steps.readJSON(text: mlci.output(['config', 'show', '--json']), returnPojo: true) as Map
    }

    /** On the training agent: config, plan (runner, credentials), `mlci train`, records, verdict. */
    static Map here(def steps, Mlci mlci, Map args, Map opts) {
        Map t = config(steps, mlci).train as Map
        if (!t) {
            steps.error('train: ml-ci.yaml has no train: section (see train.txt)')
        }
        schedule(steps, t, args)
        // train.json and the evaluation records of an earlier run in this workspace must not pass for this one's.
        Publish.clean(steps, Mlci.OUT)
        Map plan = Plan.load(steps, args, mlci)
        mlci = mlci.forPlan(plan)
        // Started by driftCheck (its build parameters carry DRIFT_REASON): the trigger is drift.
        String trigger = (args.trigger ?: (steps.params?.DRIFT_REASON ? 'drift' : Plan.cause(steps))) as String
        List cmd = ['train', '--trigger', trigger]
        if (args.force) {
            cmd.add('--force')
        }
        int minutes = opts.minutes ? (opts.minutes as int) : ((int) Math.ceil(t.timeout as double)) + OVERHEAD_MINUTES
        String kubeconfig = t.runner == 'kubernetes' ? (t.kubeconfig_credentials ?: '') as String : ''
        int rc = 2
        steps.timeout(time: minutes, unit: 'MINUTES') {
            try {
                // git: the model branch and tag push (train.git_credentials), bound by the Git plugin.
                Creds.withKube(steps, plan, ['artifacts', 'report_token', 'git'], kubeconfig) {
                    rc = mlci.status(cmd)
                }
            } finally {
                Publish.archive(steps, Mlci.OUT + '/train.json,' + Mlci.OUT + '/train/eval/**,' + Mlci.OUT + '/train/job.yaml')
            }
        }
        Map result = steps.fileExists(Mlci.OUT + '/train.json') ?
            steps.readJSON(file: Mlci.OUT + '/train.json', returnPojo: true) as Map : [status: 'error']
        String tag = ((result.published as Map)?.tag ?: '') as String
        String status = (rc == 0 || result.status == 'rejected') ? result.status as String : 'error'
        Publish.describe(steps, "train: ${status}${tag ? ' ' + tag : ''}")
        if (rc == 3 || (rc == 1 && status == 'rejected')) {
            // A model that did not beat the current one is an answer, not a broken build: nothing was published.
            steps.unstable("train: new model not published: ${result.reason}")
        } else if (rc != 0) {
            steps.error("train: mlci train failed (exit ${rc}); see the log above")
        }
        return [status: status, tag: tag, reason: result.reason ?: '', exitCode: rc]
    }

    /**
     * The job's cron from train.schedule (none when unset, so a removed schedule stops firing). properties()
     * replaces every job property, so the job's other properties (e.g. the FORCE_RETRAIN parameter of on-demand
     * runs) come in through jobProperties; triggers: false leaves the job's properties alone (mlPipeline passes
     * it: its own single properties() call already holds train.schedule).
     */
    static void schedule(def steps, Map t, Map args) {
        boolean enabled = args.containsKey('triggers') ? (args.triggers as boolean) : true
        if (!enabled) {
            return
        }
        List props = [steps.pipelineTriggers(t.schedule ? [steps.cron(t.schedule as String)] : [])]
        if (args.jobProperties) {
            props.addAll(args.jobProperties as List)
        }
        steps.properties(props)
    }
}
