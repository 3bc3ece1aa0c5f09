package org.mlci

/**
 * Credentials from ml-ci.yaml ids, bound with withCredentials to fixed variable names that the runner passes
 * to the container by name. No id configured: nothing is bound (S3 then uses the agent's IAM role).
 */
class Creds implements Serializable {
    private static final long serialVersionUID = 1L

    /** Bindings for the wanted kinds (artifacts = S3 key pair, registry, report_token, git) and a kubeconfig file id. */
    static List bindings(def steps, Map plan, List<String> kinds, String kubeconfig = '') {
        Map ids = (plan.credentials ?: [:]) as Map
        List out = []
        if (kinds.contains('artifacts') && ids.artifacts) {
            out.add([$class           : 'AmazonWebServicesCredentialsBinding', credentialsId: ids.artifacts,
                     accessKeyVariable: 'AWS_ACCESS_KEY_ID', secretKeyVariable: 'AWS_SECRET_ACCESS_KEY'])
        }
        if (kinds.contains('registry') && ids.registry) {
            out.add(steps.usernamePassword(credentialsId: ids.registry, usernameVariable: 'MLCI_REGISTRY_USER',
                                           passwordVariable: 'MLCI_REGISTRY_PASSWORD'))
        }
        if (kinds.contains('report_token') && ids.report_token) {
            out.add(steps.string(credentialsId: ids.report_token, variable: 'MLCI_REPORT_TOKEN'))
        }
        if (kinds.contains('git') && ids.git) {
            // Git plugin binding: GIT_USERNAME/GIT_PASSWORD and a GIT_ASKPASS script under $WORKSPACE@tmp
            // (mounted at the same path by the docker runner), so `git push` authenticates without a URL secret.
            out.add(steps.gitUsernamePassword(credentialsId: ids.git, gitToolName: 'Default'))
        }
        if (kubeconfig) {
            out.add(steps.file(credentialsId: kubeconfig, variable: 'KUBECONFIG'))
        }
        return out
    }

    /** Runs body with the bindings (side effects only: assign results to variables outside the body). */
    static void with(def steps, Map plan, List<String> kinds, Closure body) {
        withKube(steps, plan, kinds, '', body)
    }

    static void withKube(def steps, Map plan, List<String> kinds, String kubeconfig, Closure body) {
        List b = bindings(steps, plan, kinds, kubeconfig)
        if (!b) {
            body()
            return
        }
        steps.withCredentials(b) {
            body()
        }
    }
}
