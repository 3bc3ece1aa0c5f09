package org.mlci

/** The Jenkins-native part after each step: JUnit, archived records, the HTML report, the description. */
class Publish implements Serializable {
    private static final long serialVersionUID = 1L

    /**
     * Never archived or stashed, whatever a pattern includes: anything secret-shaped. mlci keeps its short-lived
     * secret files out of the workspace ($MLCI_SECRETS_DIR under $WORKSPACE@tmp); this is defence in depth against
     * a file left behind (a killed process, a team's own tooling) inside .mlci/.
     */
    static final String SECRETS = '**/.mlci-aws-*/**,**/mlci-secrets/**,**/*credentials*,**/*kubeconfig*,' +
                                  '**/.git-credentials,**/.netrc,**/.docker/**,**/*.pem,**/*.key,**/secretFiles/**'
    /** Longest build description mlci writes (several steps append to it). */
    static final int DESCRIPTION_MAX = 1000

    static void junit(def steps, String pattern) {
        // allowEmptyResults: a stage that failed before writing its XML must not hide its own error.
        steps.junit(testResults: pattern, allowEmptyResults: true)
    }

    static void archive(def steps, String pattern) {
        steps.archiveArtifacts(artifacts: pattern, excludes: Mlci.OUT + '/shards/**,' + SECRETS, allowEmptyArchive: true)
    }

    /** Stashes files for another node; secret-shaped files stay behind. */
    static void stash(def steps, String name, String includes, boolean allowEmpty) {
        steps.stash(name: name, includes: includes, excludes: SECRETS, allowEmpty: allowEmpty)
    }

    /**
     * Removes a directory of this workspace (the records of an earlier build: Jenkins reuses workspaces, and a
     * stale record must never be archived, stashed or read as this build's).
     */
    static void clean(def steps, String path) {
        steps.dir(path) {
            steps.deleteDir()
        }
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

    /**
     * Appends to the build description (several steps contribute). Jenkins renders descriptions with the
     * configured markup formatter, often as HTML (Safe HTML): text from mlci's records, the config or production
     * traffic (tags, suite names, feature names) is escaped so it can never become markup.
     */
    static void describe(def steps, String text) {
        String old = steps.currentBuild.description ?: ''
        String added = escape(text)
        String all = old ? old + '; ' + added : added
        steps.currentBuild.description = all.length() > DESCRIPTION_MAX ? all.substring(0, DESCRIPTION_MAX) + '...' : all
    }

    /** HTML-escapes text (& first, so nothing is escaped twice). */
    static String escape(String text) {
        return (text ?: '').replace('&', '&amp;').replace('<', '&lt;').replace('>', '&gt;')
                           .replace('"', '&quot;').replace("'", '&#39;')
    }
}
