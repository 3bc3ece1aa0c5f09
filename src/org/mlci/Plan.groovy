package org.mlci

/**
 * The branch policy comes from `mlci pipeline plan` (Python, unit-tested); this class only gathers the
 * Jenkins facts it needs (branch, build cause, pull-request target) and reads the JSON answer.
 */
class Plan implements Serializable {
    private static final long serialVersionUID = 1L

    static final String SCHEMA = 'mlci.plan/1'
    static final String TIMER = 'hudson.triggers.TimerTrigger$TimerTriggerCause'
    static final String USER = 'hudson.model.Cause$UserIdCause'
    static final int PLAN_MINUTES = 10

    /** What started this build: pr, timer, user or push. */
    static String cause(def steps) {
        if (steps.env.CHANGE_ID) {
            return 'pr'
        }
        if (steps.currentBuild.getBuildCauses(TIMER)) {
            return 'timer'
        }
        if (steps.currentBuild.getBuildCauses(USER)) {
            return 'user'
        }
        return 'push'
    }

    /** args.plan when given (mlPipeline hands it down), else `mlci pipeline plan --json` in this workspace. */
    static Map load(def steps, Map args, Mlci mlci) {
        if (args.plan) {
            return args.plan as Map
        }
        List cmd = ['pipeline', 'plan', '--json', '--cause', cause(steps)]
        if (steps.env.BRANCH_NAME) {
            cmd.addAll(['--branch', steps.env.BRANCH_NAME])
        }
        if (steps.env.CHANGE_TARGET) {
            cmd.addAll(['--change-target', steps.env.CHANGE_TARGET])
        }
        if (trainRequested(steps, args)) {
            // Only a request: the plan decides (user builds on train.branches with train.in_pipeline).
            cmd.add('--train')
        }
        String json = ''
        // The first mlci call of a build may pull the runtime image: bounded like every stage.
        steps.timeout(time: PLAN_MINUTES, unit: 'MINUTES') {
            json = mlci.output(cmd)
        }
        Map plan = steps.readJSON(text: json, returnPojo: true) as Map
        if (plan.schema != SCHEMA) {
            steps.error("mlci pipeline plan answered schema '${plan.schema}', this library reads '${SCHEMA}': " +
                        'use a runtime image that matches the library version')
        }
        return plan
    }

    /** mlPipeline(train: true) or the MLCI_TRAIN build parameter (a boolean or string parameter). */
    static boolean trainRequested(def steps, Map args) {
        if (args.containsKey('train')) {
            return args.train as boolean
        }
        Object p = steps.params?.MLCI_TRAIN
        return p != null && p.toString().trim().toLowerCase() == 'true'
    }

    /** The plan's entry for one stage, or null when the plan skips it. */
    static Map stage(Map plan, String name) {
        for (Object s : plan.stages as List) {
            if ((s as Map).name == name) {
                return s as Map
            }
        }
        return null
    }

    /** Why the plan skips a stage (for the log). */
    static String skipReason(Map plan, String name) {
        for (Object s : (plan.skipped ?: []) as List) {
            if ((s as Map).name == name) {
                return (s as Map).reason as String
            }
        }
        return "not in pipeline.stages"
    }

    /** Minutes for a stage (the plan's timeout, else pipeline.stage_timeout's default). */
    static int minutes(Map plan, String name) {
        Map s = stage(plan, name)
        return s ? (s.timeout as int) : 60
    }
}
