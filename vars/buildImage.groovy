import org.mlci.Creds
import org.mlci.Mlci
import org.mlci.Plan
import org.mlci.Publish
import org.mlci.Steps

/**
 * Builds (and pushes) the service image with `mlci build`; returns [image: 'name@digest', digest:, record:].
 * See buildImage.txt.
 */
Map call(Map args = [:]) {
    Steps.check(this, 'buildImage', args)
    Mlci mlci = Mlci.fromArgs(this, args)
    Map plan = Plan.load(this, args, mlci)
    mlci = mlci.forPlan(plan)
    if (!Plan.stage(plan, 'build')) {
        echo("buildImage: skipped: ${Plan.skipReason(plan, 'build')}")
        return [:]
    }
    boolean login = plan.image.push && plan.credentials.registry
    timeout(time: Plan.minutes(plan, 'build'), unit: 'MINUTES') {
        Creds.with(this, plan, login ? ['artifacts', 'registry'] : ['artifacts']) {
            if (login) {
                // A private docker config for this build, under WORKSPACE@tmp (mounted into the runner).
                withEnv(["DOCKER_CONFIG=${env.WORKSPACE}@tmp/mlci-docker", "MLCI_REGISTRY=${plan.image.registry}"]) {
                    try {
                        sh(label: 'docker login', script: '''set -eu
mkdir -p "$DOCKER_CONFIG"
printf '%s' "$MLCI_REGISTRY_PASSWORD" | "${MLCI_DOCKER:-docker}" login --username "$MLCI_REGISTRY_USER" --password-stdin ${MLCI_REGISTRY:+"$MLCI_REGISTRY"}
''')
                        build(mlci)
                    } finally {
                        sh(label: 'docker logout', script: 'rm -rf "$DOCKER_CONFIG"')
                    }
                }
            } else {
                build(mlci)
            }
        }
    }
    Map record = readJSON(file: Mlci.OUT + '/build.json', returnPojo: true) as Map
    Map image = record.image as Map
    return [image: "${image.name}@${image.digest}".toString(), digest: image.digest, record: record]
}

void build(Mlci mlci) {
    try {
        mlci.run(['build'])
    } finally {
        Publish.archive(this, Mlci.OUT + '/build.json')
    }
}
