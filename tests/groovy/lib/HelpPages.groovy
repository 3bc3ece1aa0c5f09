/**
 * vars/<step>.txt: generated from the step's arguments (org.mlci.Steps) and the ml-ci.yaml schema
 * (`mlci config docs --prefix SECTION --format text`), so help cannot drift from code or config.
 * Regenerate with tests/groovy/gen-help; HelpPagesTest fails when a page differs.
 */
class HelpPages {
    static String render(String step) {
        StringBuilder sb = new StringBuilder()
        sb << "${step}(Map args = [:])\n\n"
        sb << "  ${org.mlci.Steps.SUMMARY[step]}\n\n"
        org.mlci.Steps.DETAILS[step].readLines().each { sb << "  ${it}\n" }
        sb << '\nArguments (an unknown argument fails the build early):\n'
        Map<String, String> args = org.mlci.Steps.argsOf(step)
        int width = args.keySet()*.length().max()
        args.each { k, v -> sb << "  ${k.padRight(width)}  ${v}\n" }
        for (String prefix : org.mlci.Steps.CONFIG[step]) {
            sb << "\nml-ci.yaml keys under '${prefix}' (mlci config docs --prefix ${prefix} --format text):\n"
            Map r = PipelineHarness.mlciProcess(['config', 'docs', '--prefix', prefix, '--format', 'text'], [:])
            assert r.status == 0 && r.stdout.trim(): "no ml-ci.yaml keys under ${prefix}: ${r.stderr}"
            sb << r.stdout
        }
        return sb.toString()
    }

    static File page(String step) { new File(PipelineHarness.VARS, step + '.txt') }
}
