import java.util.regex.Pattern

/**
 * Ant-style patterns as Jenkins reads them (archiveArtifacts, stash, junit): comma-separated, `**` any number of
 * directories, `*` and `?` within one path segment, a trailing `/` means `/**`; paths relative to a base, `/`-
 * separated. Jenkins' default excludes (.git, editor backups, ...) apply unless useDefaultExcludes: false.
 */
class AntGlob {
    static final List<String> DEFAULT_EXCLUDES = ['**/*~', '**/#*#', '**/.#*', '**/%*%', '**/._*', '**/.git',
                                                  '**/.git/**', '**/.gitattributes', '**/.gitignore',
                                                  '**/.gitmodules', '**/.svn', '**/.svn/**', '**/.hg',
                                                  '**/.hg/**', '**/.DS_Store', '**/CVS', '**/CVS/**']

    static List<String> split(String patterns) {
        return (patterns ?: '').split(',')*.trim().findAll { it } as List<String>
    }

    /** The regex of one pattern. */
    static String regex(String pattern) {
        String p = pattern.replace('\\', '/')
        if (p.endsWith('/')) {
            p += '**'
        }
        StringBuilder re = new StringBuilder()
        int i = 0
        while (i < p.length()) {
            if (p.startsWith('**/', i)) {
                re << '(?:[^/]*/)*'
                i += 3
            } else if (p.startsWith('/**', i) && i + 3 == p.length()) {
                re << '(?:/.*)?'
                i += 3
            } else if (p.startsWith('**', i)) {
                re << '.*'
                i += 2
            } else if (p.charAt(i) == '*' as char) {
                re << '[^/]*'
                i++
            } else if (p.charAt(i) == '?' as char) {
                re << '[^/]'
                i++
            } else {
                re << Pattern.quote(p.charAt(i) as String)
                i++
            }
        }
        return re.toString()
    }

    static boolean matches(String path, String patterns) {
        return split(patterns).any { path ==~ regex(it) }
    }

    /** Paths (relative, '/') among `paths` selected by includes minus excludes (and the default excludes). */
    static List<String> select(Collection<String> paths, String includes, String excludes = '',
                               boolean defaultExcludes = true) {
        String ex = defaultExcludes ? ([excludes ?: ''] + DEFAULT_EXCLUDES).findAll { it }.join(',') : (excludes ?: '')
        return paths.findAll { matches(it, includes) && !matches(it, ex) }.sort()
    }

    /** Every regular file under base, as relative '/' paths. */
    static List<String> files(File base) {
        List<String> out = []
        if (!base.isDirectory()) {
            return out
        }
        int prefix = base.path.length() + 1
        base.eachFileRecurse(groovy.io.FileType.FILES) { File f ->
            out << f.path.substring(prefix).replace(File.separator, '/')
        }
        return out
    }
}
