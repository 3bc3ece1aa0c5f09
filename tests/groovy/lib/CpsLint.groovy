import org.codehaus.groovy.ast.ASTNode
import org.codehaus.groovy.ast.ClassNode
import org.codehaus.groovy.ast.CodeVisitorSupport
import org.codehaus.groovy.ast.MethodNode
import org.codehaus.groovy.ast.expr.ArgumentListExpression
import org.codehaus.groovy.ast.expr.ClosureExpression
import org.codehaus.groovy.ast.expr.Expression
import org.codehaus.groovy.ast.expr.MethodCallExpression
import org.codehaus.groovy.ast.expr.PropertyExpression
import org.codehaus.groovy.ast.expr.TupleExpression
import org.codehaus.groovy.ast.expr.VariableExpression
import org.codehaus.groovy.control.CompilationUnit
import org.codehaus.groovy.control.Phases
import org.codehaus.groovy.control.SourceUnit

/**
 * The CPS lint: Jenkins runs pipeline code through the CPS transformer, except @NonCPS methods and closures
 * handed to plain Java/Groovy methods (sort, toSorted, min, max, ...). A step (or a CPS-transformed method)
 * called from there (or from a constructor, which is never transformed) fails at run time or silently runs
 * once. This finds such calls in vars/ and src/ by
 * walking the Groovy AST (parsed, not resolved, so it needs no Jenkins classes).
 */
class CpsLint {
    /** Methods that take a closure but are not CPS-translated: their closure must not call steps. */
    static final Set<String> NON_CPS_METHODS = ['sort', 'toSorted', 'min', 'max', 'unique', 'toUnique', 'sum',
                                                'withDefault', 'removeAll', 'retainAll', 'takeWhile', 'dropWhile',
                                                'toSpreadMap', 'countBy'] as Set
    /** Receivers through which src/ classes call steps. */
    static final Set<String> STEP_RECEIVERS = ['this', 'steps', 'script', 'dsl'] as Set

    final Set<String> steps

    CpsLint(Set<String> steps) { this.steps = steps }

    /** Violations ('file:line: message') in every .groovy file under the given directories. */
    List<String> lintTree(List<File> dirs) {
        List<String> out = []
        dirs.each { d ->
            d.eachFileRecurse { f ->
                if (f.name.endsWith('.groovy')) {
                    out.addAll(lintSource(f.path, f.text))
                }
            }
        }
        return out
    }

    List<String> lintSource(String name, String text) {
        CompilationUnit cu = new CompilationUnit()
        SourceUnit su = cu.addSource(name, text)
        cu.compile(Phases.CONVERSION)
        List<String> out = []
        for (ClassNode cls : su.AST.classes) {
            Set<String> cpsMethods = cls.methods.findAll { !isNonCps(it) && !it.synthetic }*.name as Set
            cpsMethods.remove('run')
            // Jenkins never CPS-transforms constructors: a step there fails at run time.
            for (MethodNode ctor : cls.declaredConstructors) {
                if (ctor.code != null) {
                    scan(ctor.code, cpsMethods, out, name, "constructor of ${cls.nameWithoutPackage}")
                }
            }
            for (MethodNode m : cls.methods) {
                if (m.code == null) {
                    continue
                }
                if (isNonCps(m)) {
                    scan(m.code, cpsMethods, out, name, "@NonCPS method ${m.name}()")
                }
                m.code.visit(new CodeVisitorSupport() {
                    void visitMethodCallExpression(MethodCallExpression call) {
                        if (NON_CPS_METHODS.contains(call.methodAsString)) {
                            closures(call.arguments).each { c ->
                                scan(c.code, cpsMethods, out, name, "closure passed to ${call.methodAsString}()")
                            }
                        }
                        super.visitMethodCallExpression(call)
                    }
                })
            }
        }
        return out
    }

    static boolean isNonCps(MethodNode m) {
        return m.annotations.any { it.classNode.name in ['NonCPS', 'com.cloudbees.groovy.cps.NonCPS'] }
    }

    static List<ClosureExpression> closures(Expression args) {
        if (args instanceof ClosureExpression) {
            return [(ClosureExpression) args]
        }
        if (args instanceof TupleExpression) {
            return ((TupleExpression) args).expressions.findAll { it instanceof ClosureExpression } as List<ClosureExpression>
        }
        return []
    }

    boolean isStepCall(MethodCallExpression call) {
        if (!steps.contains(call.methodAsString)) {
            return false
        }
        Expression recv = call.objectExpression
        if (call.implicitThis) {
            return true
        }
        if (recv instanceof VariableExpression) {
            return STEP_RECEIVERS.contains(((VariableExpression) recv).name)
        }
        if (recv instanceof PropertyExpression) {
            return STEP_RECEIVERS.contains(((PropertyExpression) recv).propertyAsString)
        }
        return false
    }

    void scan(ASTNode code, Set<String> cpsMethods, List<String> out, String file, String where) {
        code.visit(new CodeVisitorSupport() {
            void visitMethodCallExpression(MethodCallExpression call) {
                if (isStepCall(call)) {
                    out << "${file}:${call.lineNumber}: step '${call.methodAsString}' called in ${where}".toString()
                } else if (call.implicitThis && cpsMethods.contains(call.methodAsString)) {
                    out << "${file}:${call.lineNumber}: CPS method '${call.methodAsString}' called in ${where}".toString()
                }
                super.visitMethodCallExpression(call)
            }
        })
    }
}
