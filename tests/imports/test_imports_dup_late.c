/*
 * test_imports_dup_late.c: a duplicate that arrives after ms_init. The program links
 * imp_dup_a (dup_who answers 1) and, once initialised, dlopen()s imp_dup_b_plugin, which
 * defines dup_who again. That is logged (both definitions named) and ignored: calls keep
 * reaching the first definition, before and after the plugin is closed and reloaded.
 */
#include <ms/ms.h>

#include "msi.h"

#include <dlfcn.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

int imp_dup_a_line(void);

MS_CLIENT(int32_t, dup_who)

/* dlopen()s the plugin with stderr sent to a temporary file; returns what was written. */
static void *
load_capturing(char *log, size_t cap)
{
    FILE *tmp = tmpfile();
    assert_non_null(tmp);
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    assert_true(saved >= 0);
    assert_true(dup2(fileno(tmp), STDERR_FILENO) >= 0);
    void *h = dlopen(IMP_DUP_PLUGIN_PATH, RTLD_NOW | RTLD_LOCAL);
    const char *why = h ? NULL : dlerror();
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    if (!h)
        fail_msg("dlopen %s: %s", IMP_DUP_PLUGIN_PATH, why);
    rewind(tmp);
    size_t n = fread(log, 1, cap - 1, tmp);
    log[n] = '\0';
    fclose(tmp);
    fputs(log, stderr); /* keep it visible in the test output */
    return h;
}

static void
assert_first_used(void)
{
    char a[64];
    snprintf(a, sizeof a, "dup_a.c:%d", imp_dup_a_line());
    for (int i = 0; i < 3; i++)
        assert_int_equal(dup_who(), 1);
    int32_t r = 0;
    assert_int_equal(dup_who_try(&r), MS_OK);
    assert_int_equal(r, 1);
    ms__service *svc = msi_registry_find("dup_who", NULL);
    assert_non_null(svc);
    assert_non_null(strstr(svc->file, "dup_a.c"));
    assert_int_equal(svc->line, imp_dup_a_line());
}

static void
test_dup_late_logged_and_ignored(void **state)
{
    (void)state;
    char log[2048];
    assert_first_used();
    for (int round = 0; round < 2; round++) {
        void *h = load_capturing(log, sizeof log);
        assert_non_null(strstr(log, "duplicate service 'dup_who'"));
        assert_non_null(strstr(log, "dup_a.c:"));
        assert_non_null(strstr(log, "dup_b.c:"));
        assert_first_used();
        assert_int_equal(dlclose(h), 0);
        assert_first_used();
    }
}

int
main(int argc, char **argv)
{
    if (ms_init(&argc, &argv) != MS_OK) {
        fprintf(stderr, "ms_init: %s\n", ms_last_error());
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dup_late_logged_and_ignored),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    ms_shutdown();
    return rc;
}
