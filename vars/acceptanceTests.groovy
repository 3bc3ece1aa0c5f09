import org.mlci.InImage

/** Acceptance tests against the running image (`mlci test acceptance`); see acceptanceTests.txt. */
def call(Map args = [:]) {
    InImage.run(this, args, 'acceptanceTests', 'acceptance')
}
