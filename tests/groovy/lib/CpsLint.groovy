import org.codehaus.groovy.ast.ASTNode
import org.codehaus.groovy.ast.ClassNode
import org.codehaus.groovy.ast.CodeVisitorSupport
import org.codehaus.groovy.ast.MethodNode
import org.codehaus.groovy.ast.expr.ArgumentListExpression
import org.codehaus.groovy.ast.expr.ClassExpression
import org.codehaus.groovy.ast.expr.ClosureExpression
import org.codehaus.groovy.ast.expr.ConstructorCallExpression
import org.codehaus.groovy.ast.expr.Expression
import org.codehaus.groovy.ast.expr.MethodCallExpression
import org.codehaus.groovy.ast.expr.PropertyExpression
import org.codehaus.groovy.ast.expr.StaticMethodCallExpression
import org.codehaus.groovy.ast.expr.TupleExpression
import org.codehaus.groovy.ast.expr.VariableExpression
import org.codehaus.groovy.control.CompilationUnit
import org.codehaus.groovy.control.Phases
import org.codehaus.groovy.control.SourceUnit

/**
 * The CPS and sandbox lint over vars/ and src/, walking the Groovy AST (parsed, not resolved, so it needs no
 * Jenkins classes).
 *
 * CPS: Jenkins runs pipeline code through the CPS transformer, except @NonCPS methods and closures handed to
 * plain Java/Groovy methods (sort, toSorted, min, max, ...). A step (or a CPS-transformed method) called from
 * there (or from a constructor, which is never transformed) fails at run time or silently runs once.
 *
 * Sandbox: the library must also load as an untrusted folder library under the script-security sandbox, where
 * anything outside its whitelists waits for an administrator's approval (and some approvals switch the sandbox
 * off for everyone). Flagged: `new` of a JDK class the generic whitelist does not list (e.g. new LinkedHashMap(m):
 * use [:] and putAll), static calls on JDK classes outside a few whitelisted ones (System.getenv, Thread.sleep),
 * a call without a receiver inside a closure of a static method (resolved through the Class object: qualify it,
 * Train.here(...)), and metaprogramming/process calls (execute, evaluate, metaClass, invokeMethod).
 */
class CpsLint {
    /** Methods that take a closure but are not CPS-translated: their closure must not call steps. */
    static final Set<String> NON_CPS_METHODS = ['sort', 'toSorted', 'min', 'max', 'unique', 'toUnique', 'sum',
                                                'withDefault', 'removeAll', 'retainAll', 'takeWhile', 'dropWhile',
                                                'toSpreadMap', 'countBy'] as Set
    /** Receivers through which src/ classes call steps. */
    static final Set<String> STEP_RECEIVERS = ['this', 'steps', 'script', 'dsl'] as Set

    /**
     * JDK constructors the script-security generic whitelist allows, by argument count (everything else needs
     * approval: new LinkedHashMap(), new ArrayList(), new LinkedHashMap(Map), new File(...), ...).
     */
    static final Map<String, List<Integer>> SANDBOX_NEW = [ArrayList: [1], HashMap: [0, 1], HashSet: [0, 1],
                                                           LinkedHashSet: [0], TreeMap: [0], TreeSet: [0],
                                                           StringBuilder: [0, 1], StringBuffer: [0, 1],
                                                           String: [0, 1], Date: [0, 1], Random: [0, 1],
                                                           Exception: [1]]
    /** JDK classes whose static methods the library may call (whitelisted ones: Math.ceil, String.valueOf, ...). */
    static final Set<String> SANDBOX_STATIC = ['Math', 'String', 'Integer', 'Boolean', 'Collections'] as Set
    /** Never in the sandbox: process execution, dynamic evaluation, metaprogramming. */
    static final Set<String> SANDBOX_FORBIDDEN = ['execute', 'evaluate', 'invokeMethod', 'getMetaClass',
                                                  'setMetaClass', 'metaClass', 'getProperties'] as Set

    final Set<String> steps
    /** Classes of the library itself (src/): constructing them and calling their statics is allowed. */
    final Set<String> libraryClasses

    CpsLint(Set<String> steps, Set<String> libraryClasses = [] as Set) {
        this.steps = steps
        this.libraryClasses = libraryClasses
    }

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
        Set<String> own = (su.AST.classes*.nameWithoutPackage as Set) + libraryClasses
        for (ClassNode cls : su.AST.classes) {
            sandbox(cls, own, name, out)
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
        return out.unique()
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

    /** The sandbox rules for one class (see the class comment). */
    void sandbox(ClassNode cls, Set<String> own, String file, List<String> out) {
        Set<String> methods = cls.methods*.name as Set
        for (MethodNode m : cls.methods + cls.declaredConstructors) {
            // Generated code (a script's main/run plumbing) has no line: not the library's.
            if (m.code == null || m.lineNumber < 0) {
                continue
            }
            m.code.visit(new CodeVisitorSupport() {
                void visitConstructorCallExpression(ConstructorCallExpression call) {
                    String type = call.type.nameWithoutPackage
                    int n = argCount(call.arguments)
                    if (!own.contains(type) && !(SANDBOX_NEW[type]?.contains(n))) {
                        out << "${file}:${call.lineNumber}: new ${type}(${n} argument(s)) needs script approval in the sandbox (use [:] / [] literals)".toString()
                    }
                    super.visitConstructorCallExpression(call)
                }

                void visitStaticMethodCallExpression(StaticMethodCallExpression call) {
                    String type = call.ownerType.nameWithoutPackage
                    if (!own.contains(type) && !SANDBOX_STATIC.contains(type)) {
                        out << "${file}:${call.lineNumber}: static call ${type}.${call.method} needs script approval in the sandbox".toString()
                    }
                    super.visitStaticMethodCallExpression(call)
                }

                void visitMethodCallExpression(MethodCallExpression call) {
                    String type = className(call.objectExpression)
                    if (type != null) {
                        if (!own.contains(type) && !SANDBOX_STATIC.contains(type)) {
                            out << "${file}:${call.lineNumber}: static call ${type}.${call.methodAsString} needs script approval in the sandbox".toString()
                        }
                    }
                    if (SANDBOX_FORBIDDEN.contains(call.methodAsString)) {
                        out << "${file}:${call.lineNumber}: ${call.methodAsString}() is never allowed in the sandbox".toString()
                    }
                    super.visitMethodCallExpression(call)
                }

                void visitPropertyExpression(PropertyExpression p) {
                    if (SANDBOX_FORBIDDEN.contains(p.propertyAsString)) {
                        out << "${file}:${p.lineNumber}: .${p.propertyAsString} is never allowed in the sandbox".toString()
                    }
                    super.visitPropertyExpression(p)
                }

                void visitClosureExpression(ClosureExpression c) {
                    if (m.static) {
                        // In a static method, a receiver-less call in a closure goes through the Class object.
                        c.code.visit(new CodeVisitorSupport() {
                            void visitMethodCallExpression(MethodCallExpression call) {
                                if (call.implicitThis && methods.contains(call.methodAsString)) {
                                    out << "${file}:${call.lineNumber}: unqualified call ${call.methodAsString}() in a closure of static method ${m.name}(): write ${cls.nameWithoutPackage}.${call.methodAsString}(...)".toString()
                                }
                                super.visitMethodCallExpression(call)
                            }
                        })
                    }
                    super.visitClosureExpression(c)
                }
            })
        }
    }

    /**
     * The class a receiver names, or null: a ClassExpression, or (the AST is not resolved yet) a CamelCase
     * variable such as System or Mlci; constants such as KINDS or OUT are fields, not classes.
     */
    static String className(Expression recv) {
        if (recv instanceof ClassExpression) {
            return ((ClassExpression) recv).type.nameWithoutPackage
        }
        if (recv instanceof VariableExpression && ((VariableExpression) recv).name ==~ /[A-Z][a-z][A-Za-z0-9]*/) {
            return ((VariableExpression) recv).name
        }
        return null
    }

    static int argCount(Expression args) {
        return args instanceof TupleExpression ? ((TupleExpression) args).expressions.size() : 1
    }
}
