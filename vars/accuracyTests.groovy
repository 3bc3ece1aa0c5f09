import org.mlci.Creds
import org.mlci.Mlci
import org.mlci.Nodes
import org.mlci.Plan
import org.mlci.Publish
import org.mlci.Steps
import org.mlci.Verdict

/**
 * Accuracy suites with statistical gates; returns [suite: 'PASS'|'FAIL'|'INCONCLUSIVE'|'ERROR'].
 * Unsharded suites run here inside the built image (`mlci test accuracy`); a suite with shards > 1 runs as a
 * parallel of N branches on its agent label (`mlci accuracy run --shard k/N`), then merges. See accuracyTests.txt.
 */
Map call(Map args = [:]) {
    Steps.check(this, 'accuracyTests', args)
    Mlci mlci = Mlci.fromArgs(this, args)
    Map plan = Plan.load(this, args, mlci)
    mlci = mlci.forPlan(plan)
    List suites = pick(plan, args)
    if (!suites) {
        echo('accuracyTests: no accuracy suite applies to this build')
        return [:]
    }
    Map rcs = [:]
    String policy = plan.accuracy.inconclusive as String
    int minutes = args.suites ? sumTimeouts(suites) + (plan.stage_timeout as int) : Plan.minutes(plan, 'accuracy')
    timeout(time: minutes, unit: 'MINUTES') {
        try {
            for (int i = 0; i < suites.size(); i++) {
                Map suite = suites[i] as Map
                timeout(time: suite.timeout as int, unit: 'MINUTES') {
                    if ((suite.shards as int) > 1) {
                        rcs[suite.name] = sharded(mlci, plan, suite)
                    } else {
                        List cmd = ['test', 'accuracy', '--suite', suite.name]
                        if (args.containsKey('forceAccuracy') && args.forceAccuracy) {
                            // Run even when the result cache would re-issue a stored PASS (same model/data/code).
                            cmd.add('--force')
                        }
                        Creds.with(this, plan, ['artifacts']) {
                            rcs[suite.name] = mlci.status(cmd)
                        }
                    }
                }
            }
        } finally {
            report(mlci, plan)
            Publish.junit(this, Mlci.OUT + '/accuracy/**/junit-*.xml')
            Publish.archive(this, Mlci.OUT + '/**')
            Publish.html(this)
            Publish.describe(this, describe(suites, rcs))
        }
    }
    Map verdicts = [:]
    for (int i = 0; i < suites.size(); i++) {
        String name = (suites[i] as Map).name
        verdicts[name] = Verdict.name(rcs[name] as int)
    }
    // Worst verdict decides: FAIL and errors fail the build, INCONCLUSIVE follows accuracy.inconclusive.
    for (int rank = 3; rank >= 1; rank--) {
        for (int i = 0; i < suites.size(); i++) {
            String name = (suites[i] as Map).name
            int rc = rcs[name] as int
            if (Verdict.rank(rc) == rank) {
                Verdict.apply(this, "accuracy suite ${name}", rc, policy)
            }
        }
    }
    return verdicts
}

/** The plan's suites for this build, or the named ones (any configured suite). */
List pick(Map plan, Map args) {
    if (!args.suites) {
        return plan.accuracy.suites as List
    }
    Map known = plan.accuracy.available as Map
    List out = []
    for (Object n : args.suites as List) {
        if (!known.containsKey(n as String)) {
            error("accuracyTests: unknown suite '${n}'; configured: ${known.keySet().join(', ')}")
        }
        out.add(known[n as String])
    }
    return out
}

int sumTimeouts(List suites) {
    int total = 0
    for (int i = 0; i < suites.size(); i++) {
        total += (suites[i] as Map).timeout as int
    }
    return total
}

/**
 * N shard branches on the suite's agent label, each in its own workspace: `mlci test accuracy --shard k/N` runs
 * its part of the sample inside this build's image (its record goes along in a stash), and stashes the shard's
 * records; then every shard is unstashed under .mlci/shards/<suite>/<k>/ and merged into one verdict.
 */
int sharded(Mlci mlci, Map plan, Map suite) {
    int n = suite.shards as int
    String name = suite.name as String
    String base = Mlci.OUT + '/shards/' + name
    boolean built = fileExists(Mlci.OUT + '/build.json')
    if (built) {
        Publish.stash(this, "mlci-build-${name}".toString(), Mlci.OUT + '/build.json', false)
    }
    Map branches = [failFast: true]
    for (int k = 1; k <= n; k++) {
        int shard = k
        branches["${name} ${shard}/${n}".toString()] = {
            Nodes.checkedOut(this, suite.agent as String) {
                // Records an earlier build left in this workspace must not be stashed as this shard's.
                Publish.clean(this, Mlci.OUT)
                if (built) {
                    unstash("mlci-build-${name}".toString())
                }
                int rc = -1
                Creds.with(this, plan, ['artifacts']) {
                    rc = mlci.status(['test', 'accuracy', '--suite', name, '--shard', "${shard}/${n}".toString()])
                }
                // A shard's own verdict is partial: only the merge decides. Any other exit is an error.
                if (rc != 0 && rc != 1 && rc != 3) {
                    error("accuracy suite ${name} shard ${shard}/${n}: mlci exited ${rc}")
                }
                Publish.stash(this, "mlci-shard-${name}-${shard}".toString(), Mlci.OUT + '/accuracy/' + name + '/**',
                              false)
            }
        }
    }
    parallel(branches)
    Publish.clean(this, base)
    List cmd = ['accuracy', 'merge', '--out', Mlci.OUT]
    for (int k = 1; k <= n; k++) {
        String where = base + '/' + k
        dir(where) {
            unstash("mlci-shard-${name}-${k}".toString())
        }
        cmd.add(where + '/' + Mlci.OUT)
    }
    int merged = -1
    Creds.with(this, plan, ['artifacts']) {
        merged = mlci.status(cmd)
    }
    return merged
}

/**
 * History, report, PR comment: information, not a gate. A failure to record, render or post is logged and
 * never masks a verdict.
 */
void report(Mlci mlci, Map plan) {
    if (plan.accuracy.record_history) {
        Creds.with(this, plan, ['artifacts']) {
            int recorded = mlci.status(['report', 'record', '--results', Mlci.OUT])
            if (recorded != 0) {
                echo("mlci report record exited ${recorded}: this build's records are not in the history store")
            }
        }
    }
    // The render reads the history store (baseline deltas, trend): without S3 credentials it only warns.
    Creds.with(this, plan, ['artifacts']) {
        int rc = mlci.status(['report', 'render', '--results', Mlci.OUT])
        if (rc != 0) {
            echo("mlci report render exited ${rc}: no HTML report for this build")
        }
    }
    if (plan.accuracy.post_report) {
        Creds.with(this, plan, ['report_token']) {
            int posted = mlci.status(['report', 'post'])
            if (posted != 0) {
                echo("mlci report post exited ${posted}: the pull request comment was not updated")
            }
        }
    }
}

/** 'accuracy: smoke PASS, full INCONCLUSIVE' from the records (the exit code when a record is missing). */
String describe(List suites, Map rcs) {
    List parts = []
    for (int i = 0; i < suites.size(); i++) {
        String name = (suites[i] as Map).name
        String verdict = rcs.containsKey(name) ? Verdict.name(rcs[name] as int) : 'NOT RUN'
        String file = Mlci.OUT + '/accuracy/' + name + '/accuracy.json'
        if (rcs.containsKey(name) && fileExists(file)) {
            verdict = (readJSON(file: file, returnPojo: true) as Map).verdict ?: verdict
        }
        parts.add(name + ' ' + verdict)
    }
    return 'accuracy: ' + parts.join(', ')
}
