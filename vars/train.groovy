import org.mlci.Mlci
import org.mlci.Steps
import org.mlci.Train

/**
 * Retraining with `mlci train` on the training agent label (train.agent, else pipeline.agent), never on the
 * controller. Returns [status: published|unchanged|rejected|not-evaluated|error, tag:, reason:, exitCode:].
 * See train.txt. Call OUTSIDE node {}: the step allocates its own executor on the right label.
 * The body is org.mlci.Train, shared with mlPipeline's Train stage.
 */
Map call(Map args = [:]) {
    Steps.check(this, 'train', args)
    return Train.run(this, Mlci.fromArgs(this, args), args)
}
