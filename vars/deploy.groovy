import org.mlci.Creds
import org.mlci.Mlci
import org.mlci.Nodes
import org.mlci.Plan
import org.mlci.Publish
import org.mlci.Steps

/**
 * Deploys an image by digest with `mlci deploy`. Call OUTSIDE node {}: with approval the order is
 * milestone -> input (with a timeout, holding no executor) -> lock -> milestone -> node. See deploy.txt.
 */
Map call(Map args = [:]) {
    Steps.check(this, 'deploy', args)
    if (!args.image) {
        error('deploy: `image` is required: the image reference with digest that buildImage returns (.image)')
    }
    Mlci mlci = Mlci.fromArgs(this, args)
    Map state = [plan: args.plan]
    if (!state.plan) {
        Nodes.checkedOut(this, (args.agent ?: '') as String) {
            state.plan = Plan.load(this, args, mlci)
        }
    }
    Map plan = state.plan as Map
    mlci = mlci.forPlan(plan)
    Map target = target(plan, args)
    if (!target) {
        echo("deploy: skipped: ${Plan.skipReason(plan, 'deploy')}")
        return [:]
    }
    String where = target.environment as String
    int position = (target.order ?: 1) as int
    // Explicit ordinals per environment: the same milestone means the same thing in every build, whatever
    // path a build took to get there (deploy to environments in their deploy.environments order).
    int ordinal = 10 * position
    if (target.approval) {
        if (env.NODE_NAME) {
            error("deploy: ${where} needs approval: call deploy outside node { } so the wait holds no executor")
        }
        milestone(ordinal: ordinal + 1, label: "approve ${where}".toString())
        timeout(time: target.approval_timeout as int, unit: 'MINUTES') {
            Map question = [message: "Deploy ${plan.service} to ${where}?".toString(), ok: 'Deploy',
                            id: inputId(position, where)]
            if (target.approvers) {
                question.submitter = target.approvers
            }
            input(question)
        }
    }
    // inversePrecedence: the newest waiting build gets the environment next; the milestone then aborts the
    // older ones still waiting, so a stale image never rolls out after a newer one.
    lock(resource: target.lock as String, inversePrecedence: true) {
        // Inside the lock: a newer build that got here first makes this older one abort instead of rolling back.
        milestone(ordinal: ordinal + 2, label: "deploy ${where}".toString())
        Nodes.checkedOut(this, (args.agent ?: plan.agent ?: '') as String) {
            if (args.records) {
                // The promotion gate reads this build's records only, never an earlier build's left here.
                Publish.clean(this, Mlci.OUT)
                unstash(args.records as String)
            }
            timeout(time: target.timeout as int, unit: 'MINUTES') {
                Creds.withKube(this, plan, ['artifacts'], target.kubeconfig_credentials as String) {
                    try {
                        mlci.run(['deploy', '--env', where, '--image', args.image])
                    } finally {
                        Publish.archive(this, Mlci.OUT + '/deploy.json')
                    }
                }
            }
        }
    }
    Publish.describe(this, "deployed to ${where}".toString())
    return [environment: where, image: args.image]
}

/** The named environment, else the one the plan picked for this branch, else null. */
Map target(Map plan, Map args) {
    if (args.environment) {
        Map all = plan.environments as Map
        if (!all.containsKey(args.environment as String)) {
            error("deploy: unknown environment '${args.environment}'; configured: ${all.keySet().join(', ')}")
        }
        return all[args.environment as String] as Map
    }
    return plan.deploy.enabled ? plan.deploy as Map : null
}

/** A unique input id per environment (letters and digits: it becomes part of the input's URL). */
String inputId(int position, String where) {
    return 'MlciDeploy' + position + where.replaceAll('[^A-Za-z0-9]', '')
}
