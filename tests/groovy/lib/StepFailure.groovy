/** What `error(...)` and a failing `sh` throw in Jenkins (hudson.AbortException). */
class StepFailure extends RuntimeException {
    StepFailure(String message) { super(message) }
}
