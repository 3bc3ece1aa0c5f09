import org.junit.Test

/** The CPS lint over vars/ and src/, and proof that it finds what it is for. */
class LintTest {
    static Set<String> stepNames() {
        Set<String> names = new PipelineHarness().mocks.keySet() + org.mlci.Steps.names()
        // Steps the library does not use but a future change might: still steps.
        names.addAll(['bat', 'powershell', 'sleep', 'waitUntil', 'writeFile', 'readFile', 'build', 'dir', 'deleteDir',
                      'mail', 'emailext', 'writeJSON', 'readYaml', 'git', 'tool', 'catchError', 'warnError'])
        return names
    }

    static Set<String> libraryClasses() {
        new File(PipelineHarness.ROOT, 'src/org/mlci').listFiles()*.name.findAll { it.endsWith('.groovy') }
            .collect { it - '.groovy' } as Set
    }

    CpsLint lint = new CpsLint(stepNames(), libraryClasses())

    @Test
    void vars_and_src_are_clean() {
        List<String> found = lint.lintTree([PipelineHarness.VARS, new File(PipelineHarness.ROOT, 'src')])
        assert found == []
    }

    @Test
    void finds_a_step_inside_a_NonCPS_method() {
        List<String> found = lint.lintSource('vars/bad.groovy', '''
            @NonCPS
            def names(Map m) {
                echo 'sorting'
                return m.keySet().toList()
            }
            def call() { names([:]) }
        ''')
        assert found == ["vars/bad.groovy:4: step 'echo' called in @NonCPS method names()"]
    }

    @Test
    void finds_steps_through_a_steps_receiver_in_src_classes() {
        List<String> found = lint.lintSource('src/Bad.groovy', '''
            class Bad implements Serializable {
                def steps
                @com.cloudbees.groovy.cps.NonCPS
                String render() { steps.sh('date'); return 'x' }
                String fine() { steps.sh('date'); return 'y' }
            }
        ''')
        assert found == ["src/Bad.groovy:5: step 'sh' called in @NonCPS method render()"]
    }

    @Test
    void finds_steps_in_closures_passed_to_sort_and_toSorted() {
        List<String> found = lint.lintSource('vars/sorted.groovy', '''
            def call(List suites) {
                suites.sort { a, b -> sh(script: 'true', returnStatus: true) <=> 0 }
                def s = suites.toSorted { it -> readJSON(text: it, returnPojo: true).rank }
                suites.each { sh 'fine: each is CPS-translated' }
            }
        ''')
        assert found == ["vars/sorted.groovy:3: step 'sh' called in closure passed to sort()",
                         "vars/sorted.groovy:4: step 'readJSON' called in closure passed to toSorted()"]
    }

    @Test
    void finds_a_CPS_method_called_from_NonCPS_code() {
        List<String> found = lint.lintSource('vars/mixed.groovy', '''
            def publish() { junit 'x.xml' }
            @NonCPS
            def bad() { publish() }
            def call() { bad() }
        ''')
        assert found == ["vars/mixed.groovy:4: CPS method 'publish' called in @NonCPS method bad()"]
    }

    @Test
    void finds_a_step_in_a_constructor() {
        List<String> found = lint.lintSource('src/Ctor.groovy', '''
            class Ctor implements Serializable {
                def steps
                Ctor(def steps, String kind) {
                    this.steps = steps
                    if (!kind) { steps.error('no kind') }
                }
            }
        ''')
        assert found == ["src/Ctor.groovy:6: step 'error' called in constructor of Ctor"]
    }

    @Test
    void plain_sort_without_steps_is_fine() {
        assert lint.lintSource('vars/ok.groovy', '''
            def call(List xs) { xs.sort { a, b -> a.size() <=> b.size() }; sh 'true' }
        ''') == []
    }

    // ---------------------------------------------------------------- the sandbox rules

    @Test
    void finds_constructors_the_sandbox_would_hold_for_approval() {
        List<String> found = lint.lintSource('vars/copy.groovy', '''
            def call(Map args = [:]) {
                Map a = new LinkedHashMap(args)
                Map<String, String> b = new LinkedHashMap<String, String>()
                List c = new ArrayList()
                File d = new File('x')
                List ok1 = new ArrayList(args.keySet())
                StringBuilder ok2 = new StringBuilder()
                Map ok3 = [:]
                ok3.putAll(args)
                return Mlci.of(this, 'docker', '', '', false)
            }
        ''')
        assert found == ['vars/copy.groovy:3: new LinkedHashMap(1 argument(s)) needs script approval in the sandbox (use [:] / [] literals)',
                         'vars/copy.groovy:4: new LinkedHashMap(0 argument(s)) needs script approval in the sandbox (use [:] / [] literals)',
                         'vars/copy.groovy:5: new ArrayList(0 argument(s)) needs script approval in the sandbox (use [:] / [] literals)',
                         'vars/copy.groovy:6: new File(1 argument(s)) needs script approval in the sandbox (use [:] / [] literals)']
    }

    @Test
    void finds_an_unqualified_call_in_a_closure_of_a_static_method() {
        List<String> found = lint.lintSource('src/Train.groovy', '''
            class Train implements Serializable {
                static Map run(def steps) {
                    Map out = [:]
                    Nodes.on(steps, 'x') {
                        out = here(steps)
                        out = Train.here(steps)
                        steps.node('y') { config(steps) }
                    }
                    return here(steps)
                }
                static Map here(def steps) { [:] }
                static Map config(def steps) { [:] }
            }
        ''')
        assert found == ['src/Train.groovy:6: unqualified call here() in a closure of static method run(): write Train.here(...)',
                         'src/Train.groovy:8: unqualified call config() in a closure of static method run(): write Train.config(...)']
    }

    @Test
    void finds_static_jdk_calls_and_metaprogramming() {
        List<String> found = lint.lintSource('vars/env.groovy', '''
            def call() {
                String home = System.getenv('HOME')
                Thread.sleep(10)
                'id'.execute()
                this.metaClass.foo = 1
                int fine = (int) Math.ceil(1.5)
                return String.valueOf(fine) + Verdict.name(0)
            }
        ''')
        assert found == ['vars/env.groovy:3: static call System.getenv needs script approval in the sandbox',
                         'vars/env.groovy:4: static call Thread.sleep needs script approval in the sandbox',
                         'vars/env.groovy:5: execute() is never allowed in the sandbox',
                         'vars/env.groovy:6: .metaClass is never allowed in the sandbox']
    }
}
