/*
 * plugin.c: a module (imp_plugin) that test_imports_dlopen loads with dlopen(). Its
 * services register when it is loaded and unregister when it is closed. One of them calls
 * back a service of the loading program through an MS_CLIENT stub; plugin_mismatch has a
 * signature the program declares differently.
 *
 * libms must be linked once, as the shared libms.so, by the program and by this module:
 * see the comment on imp_plugin in CMakeLists.txt.
 */
#include <ms/ms.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

MS_CLIENT(int64_t, host_offset)

MS_SERVICE(int64_t, plugin_square, (int64_t, x)) { return x * x; }

MS_SERVICE(char *, plugin_greet, (const char *, who))
{
    size_t n = strlen(who) + sizeof "plugin greets ";
    char *s = malloc(n);
    if (!s) {
        ms_fail(1, "out of memory");
        return NULL;
    }
    snprintf(s, n, "plugin greets %s", who);
    return s;
}

MS_SERVICE(int64_t, plugin_square_plus_host, (int64_t, x)) { return x * x + host_offset(); }

MS_SERVICE(int64_t, plugin_mismatch, (int64_t, x)) { return x; }
