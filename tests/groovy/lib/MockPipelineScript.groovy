/**
 * Base class of every vars/*.groovy script loaded by the harness: any call that is not a method of the
 * script goes to the harness, which runs a recorded mock step, another vars step, or FAILS the test
 * (the catch-all: an unexpected step is recorded even when the code under test catches the error).
 */
abstract class MockPipelineScript extends Script {
    def methodMissing(String name, Object args) {
        PipelineHarness h = (PipelineHarness) binding.getVariable('__harness')
        return h.dispatch(name, args as Object[])
    }
}
