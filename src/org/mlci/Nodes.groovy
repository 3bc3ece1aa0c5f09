package org.mlci

/**
 * Agents. `retry` only for infrastructure failures: the agent() condition retries when the agent is lost,
 * never when a step inside failed (a failed gate is an answer, not an accident). No label means any agent but
 * the controller: builds never run on the built-in node.
 */
class Nodes implements Serializable {
    private static final long serialVersionUID = 1L

    static final int ATTEMPTS = 2
    /** Any agent but the controller: its self-label is built-in (Jenkins >= 2.307) or master (older). */
    static final String NOT_CONTROLLER = '!built-in && !master'

    /** body on an agent with `label` (none: any agent but the controller). */
    static void on(def steps, String label, Closure body) {
        String where = label ?: NOT_CONTROLLER
        steps.retry(count: ATTEMPTS, conditions: [steps.agent(), steps.nonresumable()]) {
            steps.node(where) {
                body()
            }
        }
    }

    /**
     * on() plus `checkout scm`: body runs in the service's workspace with the service's commit, branch and URL
     * from the map the checkout returned in MLCI_GIT_COMMIT / MLCI_GIT_BRANCH / MLCI_GIT_URL, which the runner
     * hands to mlci (never Jenkins' GIT_* variables: they may describe this library's checkout).
     */
    static void checkedOut(def steps, String label, Closure body) {
        on(steps, label) {
            Map scm = Nodes.checkout(steps)
            steps.withEnv(Nodes.gitEnv(scm, steps.env.BRANCH_NAME as String)) {
                body()
            }
        }
    }

    /** The service sources in this workspace (multibranch `scm`); returns the SCM's variables (a Map). */
    static Map checkout(def steps) {
        Object vars = steps.checkout(steps.scm)
        return vars instanceof Map ? (Map) vars : [:]
    }

    /** MLCI_GIT_* from a checkout map; the branch of a multibranch build is its BRANCH_NAME. */
    static List<String> gitEnv(Map scm, String branchName) {
        Map<String, String> values = [MLCI_GIT_COMMIT: (scm.GIT_COMMIT ?: '') as String,
                                      MLCI_GIT_BRANCH: (branchName ?: scm.GIT_BRANCH ?: '') as String,
                                      MLCI_GIT_URL   : (scm.GIT_URL ?: scm.GIT_URL_1 ?: '') as String]
        List<String> out = []
        for (String k : values.keySet()) {
            if (values[k]) {
                out.add(k + '=' + values[k])
            }
        }
        return out
    }
}
