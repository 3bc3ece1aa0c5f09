import groovy.transform.Field
import org.mlci.Creds
import org.mlci.Mlci
import org.mlci.Nodes
import org.mlci.Plan
import org.mlci.Publish
import org.mlci.Steps

/**
 * Scheduled production drift check (`mlci drift check`); on drift starts the retraining job with
 * `build job:` and says why in the build description. See driftCheck.txt.
 *
 * Call OUTSIDE node {}: the check takes an executor on an agent (never the controller), and the retraining job
 * is queued after the executor is released. The branch policy (register drift.schedule as cron only on
 * drift.branches, default main) and the job come from `mlci drift plan` (Python, unit-tested); this step only
 * wires Jenkins to it. Values reach sh only as MLCI_ARG_n environment variables (org.mlci.Mlci).
 */
@Field static final String RECORD = Mlci.OUT + '/drift/drift.json'

Map call(Map args = [:]) {
    Steps.check(this, 'driftCheck', args)
    Mlci mlci = Mlci.fromArgs(this, args)
    Map out = [:]
    Nodes.checkedOut(this, (args.agent ?: '') as String) {
        out = checkHere(mlci, args)
    }
    return conclude(out, args)
}

/** On the agent: the drift plan (cron, job), the check with S3 credentials, the archived report. */
Map checkHere(Mlci mlci, Map args) {
    List planCmd = ['drift', 'plan', '--json']
    if (env.BRANCH_NAME) {
        planCmd.addAll(['--branch', env.BRANCH_NAME])
    }
    Map dp = readJSON(text: mlci.output(planCmd), returnPojo: true) as Map
    if (args.triggers != false && dp.cron) {
        // properties() replaces every job property: keep the caller's alongside the trigger.
        List props = []
        props.addAll((args.jobProperties ?: []) as List)
        props.add(pipelineTriggers([cron(dp.cron as String)]))
        properties(props)
    }
    Map plan = Plan.load(this, args, mlci)
    mlci = mlci.forPlan(plan)
    List cmd = ['drift', 'check']
    for (String flag : ['reference', 'logs', 'window']) {
        if (args[flag]) {
            cmd.addAll(['--' + flag, args[flag] as String])
        }
    }
    int rc = 2
    // drift.json of an earlier check in this workspace must not pass for this one's.
    Publish.clean(this, Mlci.OUT + '/drift')
    try {
        Creds.with(this, plan, ['artifacts']) {
            rc = mlci.status(cmd)
        }
    } finally {
        Publish.archive(this, Mlci.OUT + '/drift/**')
    }
    Map rec = fileExists(RECORD) ? readJSON(file: RECORD, returnPojo: true) as Map : [:]
    Map logs = (rec.logs ?: [:]) as Map
    return [exitCode: rc, verdict: (rec.verdict ?: 'ERROR') as String, summary: (rec.summary ?: '') as String,
            drifted: (rec.drifted ?: []) as List, window: "${logs.from}..${logs.to}".toString(),
            retrain: (dp.retrain ?: [:]) as Map]
}

/** After the executor is released: start retraining on drift, describe the build, map the exit code. */
Map conclude(Map out, Map args) {
    int rc = out.exitCode as int
    String summary = out.summary as String
    String job = (args.trainJob ?: (out.retrain as Map).job ?: '') as String
    Map result = [verdict: out.verdict, summary: summary, drifted: out.drifted, exitCode: rc, job: '']
    if (rc == 0) {
        Publish.describe(this, 'drift: none')
    } else if (rc == 1 && job) {
        Map<String, String> values = [:]
        Map configured = ((out.retrain as Map).parameters ?: [:]) as Map
        for (Object k : configured.keySet()) {
            values[k as String] = configured[k] as String
        }
        Map extra = (args.parameters ?: [:]) as Map
        for (Object k : extra.keySet()) {
            values[k as String] = extra[k] as String
        }
        values.DRIFT_REASON = summary
        values.DRIFT_FEATURES = (out.drifted as List).join(',')
        values.DRIFT_WINDOW = out.window as String
        values.DRIFT_BUILD = (env.BUILD_URL ?: '') as String
        List params = []
        for (String k : values.keySet()) {
            params.add(string(name: k, value: values[k]))
        }
        build(job: job, parameters: params, wait: false)
        Publish.describe(this, "drift: retraining ${job} started: ${plain(summary)}")
        result.job = job
    } else if (rc == 1) {
        Publish.describe(this, "drift: ${plain(summary)} (no retrain job configured)")
        unstable("driftCheck: drift detected and no drift.retrain.job / trainJob to start: ${summary}")
    } else if (rc == 3) {
        Publish.describe(this, 'drift: inconclusive')
        unstable("driftCheck: ${summary ?: 'too few log rows in the window'}")
    } else {
        Publish.describe(this, 'drift: error')
        error("driftCheck: mlci drift check failed (exit ${rc}); see the log above")
    }
    return result
}

/** Feature names come from production traffic: a bounded summary (Publish.describe escapes it). */
String plain(String text) {
    return text.length() > 500 ? text.substring(0, 500) + '...' : text
}
