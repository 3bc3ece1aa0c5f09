import org.junit.Test

/** docs/jenkins.md and plugins.txt stay complete: every plugin, every credentials key, no invented version tag. */
class JenkinsDocsTest {
    static final File ROOT = PipelineHarness.ROOT
    static final String DOC = new File(ROOT, 'docs/jenkins.md').text

    @Test
    void plugins_txt_is_in_jenkins_plugin_cli_format_and_lists_every_documented_plugin() {
        List<String> lines = new File(ROOT, 'plugins.txt').readLines().findAll { it.trim() && !it.startsWith('#') }
        lines.each { assert it ==~ /[a-z0-9][a-z0-9-]*:(latest|[0-9][\w.-]*)/: "not jenkins-plugin-cli format: ${it}" }
        Set<String> listed = lines.collect { it.split(':')[0] } as Set
        // The plugin table names each plugin's id in backticks inside parentheses: "Git (`git`)".
        Set<String> documented = (DOC =~ /\(`([a-z0-9-]+)`\)/).collect { it[1] as String } as Set
        assert documented.size() >= 15
        assert listed == documented
    }

    @Test
    void every_credentials_key_of_the_schema_has_its_type_documented() {
        String readme = new File(ROOT, 'README.md').text
        // The ml-ci.yaml reference table (generated from the schema): rows whose key ends in credentials.
        List<String> keys = (readme =~ /(?m)^\| `([a-z_.<>]*credentials)` \|/).collect { it[1] as String }
        assert keys.size() >= 6
        keys.each { assert DOC.contains("`${it}`"): "docs/jenkins.md does not say which credentials type ${it} is" }
    }

    @Test
    void no_document_shows_a_version_tag_the_repository_does_not_have() {
        List<File> docs = [new File(ROOT, 'README.md'), new File(ROOT, 'docs/jenkins.md'),
                           new File(ROOT, 'Jenkinsfile.example')] + new File(ROOT, 'vars').listFiles().findAll { it.name.endsWith('.txt') }
        docs.each { f -> assert !(f.text =~ /@Library\('mlci@/): "${f.name} pins the library to a version that does not exist" }
        assert new File(ROOT, 'README.md').text.contains('(docs/jenkins.md)')
    }
}
