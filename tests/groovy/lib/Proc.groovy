import java.util.concurrent.TimeUnit

/** Runs a process to its end (or a time limit) and collects stdout and stderr separately. */
class Proc {
    /** [status:, stdout:, stderr:]; status 143 when the time limit killed it. */
    static Map run(ProcessBuilder pb, long minutes = 60) {
        Process p = pb.start()
        p.outputStream.close()
        StringBuffer err = new StringBuffer()
        Thread t = Thread.start { err << p.errorStream.getText('UTF-8') }
        String out = p.inputStream.getText('UTF-8')
        boolean done = p.waitFor(minutes, TimeUnit.MINUTES)
        if (!done) {
            p.destroyForcibly()
        }
        t.join()
        return [status: done ? p.exitValue() : 143, stdout: out, stderr: err.toString()]
    }
}
