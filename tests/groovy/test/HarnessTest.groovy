import org.junit.Test

/** The harness itself must be able to fail: catch-all, the sh scan, readJSON without returnPojo. */
class HarnessTest {
    PipelineHarness h() {
        PipelineHarness h = new PipelineHarness()
        h.varsDirs << new File(PipelineHarness.FIXTURES, 'badvars')
        return h
    }

    @Test
    void an_unexpected_step_fails_the_test_even_when_the_step_swallows_the_error() {
        PipelineHarness h = h()
        try {
            h.run('sneakyStep')
            assert false: 'the catch-all did not fire'
        } catch (AssertionError e) {
            assert e.message.contains('unexpected steps: [slackSend]')
        }
    }

    @Test
    void the_scan_finds_an_interpolated_config_value() {
        PipelineHarness h = h().branch('main').scanConfig()
        h.on(~/mlci pipeline plan/) { c -> [status: 0, stdout: '{"deploy": {"namespace": "ml-prod-q"}}'] }
        try {
            h.run('leakyStep')
            assert false: 'the scan did not fire'
        } catch (AssertionError e) {
            assert e.message.contains("sh script contains the value 'ml-prod-q'")
        }
    }

    @Test
    void the_scan_finds_a_secret_in_a_script() {
        PipelineHarness h = h().credential('tok', [kind: 'string', value: 'sekrit-token-value'])
        try {
            h.run('leakySecret')
            assert false: 'the scan did not fire'
        } catch (AssertionError e) {
            assert e.message.contains("sh script contains the value 'sekrit-token-value'")
        }
    }

    @Test
    void the_scan_rejects_env_passed_to_docker_by_value() {
        PipelineHarness h = h()
        h.dispatch('sh', ['docker run -e AWS_SECRET_ACCESS_KEY="$X" img'] as Object[])
        try {
            h.scanShell()
            assert false
        } catch (AssertionError e) {
            assert e.message.contains('passes AWS_SECRET_ACCESS_KEY by value')
        }
    }

    @Test
    void readJSON_must_ask_for_plain_objects() {
        PipelineHarness h = h()
        try {
            h.dispatch('readJSON', [[text: '{"a": null}']] as Object[])
            assert false
        } catch (AssertionError e) {
            assert e.message.contains('returnPojo')
        }
    }

    @Test
    void unknown_credentials_fail_like_jenkins() {
        PipelineHarness h = h()
        Throwable t = h.runFailing('leakySecret')
        assert t.message == "Could not find credentials entry with ID 'tok'"
    }
}
