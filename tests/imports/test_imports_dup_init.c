/*
 * test_imports_dup_init.c: two shared libraries linked at build time (imp_dup_a, imp_dup_b)
 * define the same service name. Both register before main(); ms_init must report the
 * duplicate: MS_EDUPLICATE, with ms_last_error() naming both file:line definitions. The
 * program calls dup_who through its own MS_CLIENT stub, which finds the first definition.
 */
#include <ms/ms.h>

#include "msi.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

int imp_dup_a_line(void);
int imp_dup_b_line(void);

MS_CLIENT(int32_t, dup_who)

static ms_status init_status;
static char init_error[512];

static void
test_dup_init_reports_both(void **state)
{
    (void)state;
    char a[64], b[64];
    snprintf(a, sizeof a, "dup_a.c:%d", imp_dup_a_line());
    snprintf(b, sizeof b, "dup_b.c:%d", imp_dup_b_line());
    assert_int_equal(init_status, MS_EDUPLICATE);
    assert_non_null(strstr(init_error, "dup_who"));
    assert_non_null(strstr(init_error, a));
    assert_non_null(strstr(init_error, b));
}

/* The first registered definition is the one used; the other is never called. */
static void
test_dup_init_first_definition_used(void **state)
{
    (void)state;
    ms__service *first = msi_registry_find("dup_who", NULL);
    assert_non_null(first);
    int32_t want = strstr(first->file, "dup_a.c") ? 1 : 2;
    assert_non_null(strstr(init_error, first->file)); /* it is one of the two named */
    for (int i = 0; i < 3; i++)
        assert_int_equal(dup_who(), want);
}

int
main(int argc, char **argv)
{
    init_status = ms_init(&argc, &argv);
    snprintf(init_error, sizeof init_error, "%s", ms_last_error());
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dup_init_reports_both),
        cmocka_unit_test(test_dup_init_first_definition_used),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    ms_shutdown();
    return rc;
}
