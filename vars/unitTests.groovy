import org.mlci.InImage

/** Unit tests inside the built image (`mlci test unit`); see unitTests.txt. */
def call(Map args = [:]) {
    InImage.run(this, args, 'unitTests', 'unit')
}
