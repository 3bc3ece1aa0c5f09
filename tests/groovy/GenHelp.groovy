/** Writes vars/<step>.txt for every step (run by tests/groovy/gen-help). */
org.mlci.Steps.names().each { step ->
    File f = HelpPages.page(step)
    String text = HelpPages.render(step)
    if (!f.exists() || f.text != text) {
        f.text = text
        println "wrote ${f}"
    }
}
