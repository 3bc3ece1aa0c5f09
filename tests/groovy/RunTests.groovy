/**
 * Runs every tests/groovy/test/*Test.groovy (JUnit 4) and writes one JUnit XML file per class into OUTDIR.
 * Usage (via tests/groovy/run): groovy -cp ... RunTests.groovy OUTDIR [ClassNameFilter]
 */
import groovy.xml.XmlUtil
import org.junit.runner.Description
import org.junit.runner.JUnitCore
import org.junit.runner.Request
import org.junit.runner.notification.Failure
import org.junit.runner.notification.RunListener

File out = new File(args[0])
out.mkdirs()
String only = args.length > 1 ? args[1] : ''
File root = new File(System.getProperty('mlci.root')).canonicalFile
GroovyClassLoader gcl = (GroovyClassLoader) this.class.classLoader
List<File> sources = new File(root, 'tests/groovy/test').listFiles().findAll { it.name.endsWith('Test.groovy') }
        .sort { it.name }.findAll { !only || it.name.contains(only) }

class Collector extends RunListener {
    List<Map> cases = []
    Map current
    long started

    void testStarted(Description d) { current = [name: d.methodName, failure: null, skipped: false]; started = System.nanoTime() }

    void testFinished(Description d) { current.time = (System.nanoTime() - started) / 1e9; cases << current }

    void testFailure(Failure f) {
        if (f.description.methodName == null) {   // class-level failure (e.g. @BeforeClass)
            cases << [name: 'class', failure: f, time: 0]
        } else {
            current.failure = f
        }
    }

    void testIgnored(Description d) { cases << [name: d.methodName, skipped: true, time: 0] }
}

int passed = 0, failed = 0
long t0 = System.currentTimeMillis()
for (File src : sources) {
    Class cls
    Collector col = new Collector()
    String suite = src.name - '.groovy'
    try {
        cls = gcl.parseClass(src)
        JUnitCore core = new JUnitCore()
        core.addListener(col)
        core.run(Request.aClass(cls))
    } catch (Throwable t) {
        col.cases << [name: 'compile', failure: [message: t.toString(), trace: t.toString()], time: 0]
    }
    int f = col.cases.count { it.failure } as int
    int s = col.cases.count { it.skipped } as int
    passed += col.cases.size() - f - s
    failed += f
    double time = col.cases.sum(0) { it.time ?: 0 } as double
    StringBuilder xml = new StringBuilder('<?xml version="1.0" encoding="UTF-8"?>\n')
    xml << "<testsuite name=\"groovy.${suite}\" tests=\"${col.cases.size()}\" failures=\"${f}\" errors=\"0\" skipped=\"${s}\" time=\"${String.format('%.3f', time)}\">\n"
    col.cases.each { c ->
        xml << "  <testcase classname=\"groovy.${suite}\" name=\"${XmlUtil.escapeXml(c.name as String)}\" time=\"${String.format('%.3f', (c.time ?: 0) as double)}\""
        if (c.failure) {
            String msg = c.failure instanceof Failure ? (c.failure.message ?: c.failure.exception.toString()) : c.failure.message
            String trace = c.failure instanceof Failure ? c.failure.trace : c.failure.trace
            xml << ">\n    <failure message=\"${XmlUtil.escapeXml((msg ?: '').take(2000))}\">${XmlUtil.escapeXml(trace ?: '')}</failure>\n  </testcase>\n"
            System.err.println("FAIL ${suite}.${c.name}: ${msg}")
            System.err.println((trace ?: '').readLines().take(25).join('\n'))
        } else if (c.skipped) {
            xml << "><skipped/></testcase>\n"
        } else {
            xml << "/>\n"
        }
    }
    xml << '</testsuite>\n'
    new File(out, "groovy-${suite}.xml").text = xml.toString()
    println String.format('%-28s %3d passed, %d failed  (%.1fs)', suite, col.cases.size() - f - s, f, time)
}
println "groovy: ${passed} passed, ${failed} failed in ${(System.currentTimeMillis() - t0) / 1000}s"
println "${passed} passed, ${failed} failed"
System.exit(failed == 0 && passed > 0 ? 0 : 1)
