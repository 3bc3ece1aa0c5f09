package org.mlci

/** The Jenkins-native part after each step: JUnit, archived records, the HTML report, the description. */
class Publish implements Serializable {
    private static final long serialVersionUID = 1L

    static void junit(def steps, String pattern) {
        // allowEmptyResults: a stage that failed before writing its XML must not hide its own error.
        steps.junit(testResults: pattern, allowEmptyResults: true)
    }

    static void archive(def steps, String pattern) {
        steps.archiveArtifacts(artifacts: pattern, excludes: Mlci.OUT + '/shards/**', allowEmptyArchive: true)
    }

    /** Publishes report.html when the HTML Publisher plugin is installed; says so when it is not. */
    static void html(def steps) {
        if (!steps.fileExists(Mlci.OUT + '/report/report.html')) {
            return
        }
        try {
            steps.publishHTML(target: [reportDir  : Mlci.OUT + '/report', reportFiles: 'report.html',
                                       reportName : 'mlci report', keepAll: true, alwaysLinkToLastBuild: true,
                                       allowMissing: true])
        } catch (NoSuchMethodError ignored) {
            steps.echo('HTML Publisher plugin not installed: report.html is in the archived artifacts')
        }
    }

    /** Appends to the build description (several steps contribute). */
    static void describe(def steps, String text) {
        String old = steps.currentBuild.description ?: ''
        steps.currentBuild.description = old ? old + '; ' + text : text
    }
}
