package org.mlci

/**
 * Exit codes to build results (docs/ARCHITECTURE.md): 0 pass, 1 FAIL -> failure, 2 bad input -> failure,
 * 3 INCONCLUSIVE -> UNSTABLE or failure per accuracy.inconclusive.
 */
class Verdict implements Serializable {
    private static final long serialVersionUID = 1L

    static String name(int rc) {
        switch (rc) {
            case 0: return 'PASS'
            case 1: return 'FAIL'
            case 3: return 'INCONCLUSIVE'
            default: return 'ERROR'
        }
    }

    /** Worst first: the order in which verdicts decide the build. */
    static int rank(int rc) {
        return rc == 0 ? 0 : rc == 3 ? 1 : rc == 1 ? 3 : 2
    }

    /** Applies one verdict to the build. */
    static void apply(def steps, String what, int rc, String inconclusive) {
        if (rc == 0) {
            return
        }
        if (rc == 3) {
            if (inconclusive == 'fail') {
                steps.error("${what}: INCONCLUSIVE (accuracy.inconclusive: fail)")
            }
            steps.unstable("${what}: INCONCLUSIVE: the evidence did not suffice within max_samples")
            return
        }
        if (rc == 1) {
            steps.error("${what}: FAIL")
        }
        steps.error("${what}: mlci exited ${rc} (2 = bad input, see the message above)")
    }
}
