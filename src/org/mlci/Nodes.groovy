package org.mlci

/**
 * Agents. `retry` only for infrastructure failures: the agent() condition retries when the agent is lost,
 * never when a step inside failed (a failed gate is an answer, not an accident).
 */
class Nodes implements Serializable {
    private static final long serialVersionUID = 1L

    static final int ATTEMPTS = 2

    static void on(def steps, String label, Closure body) {
        steps.retry(count: ATTEMPTS, conditions: [steps.agent(), steps.nonresumable()]) {
            if (label) {
                steps.node(label) {
                    body()
                }
            } else {
                steps.node {
                    body()
                }
            }
        }
    }

    /** The service sources in this workspace (multibranch `scm`). */
    static void checkout(def steps) {
        steps.checkout(steps.scm)
    }
}
