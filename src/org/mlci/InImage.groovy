package org.mlci

/** unitTests and acceptanceTests: the same thin shape, `mlci test <kind>` then JUnit in a finally. */
class InImage implements Serializable {
    private static final long serialVersionUID = 1L

    static void run(def steps, Map args, String step, String kind) {
        Steps.check(steps, step, args)
        Mlci mlci = Mlci.fromArgs(steps, args)
        Map plan = Plan.load(steps, args, mlci)
        mlci = mlci.forPlan(plan)
        Map st = Plan.stage(plan, kind)
        if (!st) {
            steps.echo("${step}: skipped: ${Plan.skipReason(plan, kind)}")
            return
        }
        steps.timeout(time: st.timeout as int, unit: 'MINUTES') {
            try {
                mlci.run(['test', kind])
            } finally {
                Publish.junit(steps, Mlci.OUT + '/junit/' + kind + '.xml')
                Publish.archive(steps, Mlci.OUT + '/junit/**')
            }
        }
    }
}
