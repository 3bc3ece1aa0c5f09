import org.junit.Test

/** vars/<step>.txt must equal what the step's arguments and `mlci config docs` generate (no drift). */
class HelpPagesTest {
    @Test
    void every_step_has_a_help_page_matching_code_and_schema() {
        List<String> stale = []
        org.mlci.Steps.names().each { step ->
            File page = HelpPages.page(step)
            if (!page.exists() || page.text != HelpPages.render(step)) {
                stale << step
            }
        }
        assert stale == []: "vars/*.txt out of date for ${stale}: run tests/groovy/gen-help"
    }

    @Test
    void every_vars_step_is_declared_and_documented() {
        Set<String> files = PipelineHarness.VARS.listFiles().findAll { it.name.endsWith('.groovy') }*.name*.replace('.groovy', '') as Set
        Set<String> mine = org.mlci.Steps.names() as Set
        assert mine.every { it in files }
        mine.each { step ->
            String text = HelpPages.page(step).text
            org.mlci.Steps.argsOf(step).keySet().each { arg -> assert text.contains("  ${arg} ".toString()) }
            assert text.contains("ml-ci.yaml keys under '${org.mlci.Steps.CONFIG[step][0]}'".toString())
        }
    }

    @Test
    void every_step_checks_its_arguments_against_the_same_declaration() {
        org.mlci.Steps.names().each { step ->
            String src = new File(PipelineHarness.VARS, step + '.groovy').text
            assert src.contains("Steps.check(this, '${step}', args)") || src.contains("InImage.run(this, args, '${step}'"):
                "${step} does not validate its arguments"
            assert src.contains('call(Map args = [:])')
        }
    }
}
