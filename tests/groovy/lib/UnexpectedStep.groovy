/** A step the harness has no mock for: the catch-all. An Error, so `catch (Exception)` in a step cannot hide it. */
class UnexpectedStep extends Error {
    UnexpectedStep(String name) { super("unexpected step '${name}': add a mock to PipelineHarness or fix the call".toString()) }
}
