/*
 * test_imports_link.c: services reach the registry from every place a program links them
 * from: the main executable, a static library and (IMP_WITH_SHARED) a shared library linked
 * at build time. Built three times by CMakeLists.txt:
 *   test_imports_link           libms shared + imp_static + imp_shared
 *   test_imports_link_static    libms static + imp_static (everything in one executable)
 *   test_imports_link_whole     as _static, imp_static linked whole (IMP_WHOLE_ARCHIVE)
 * ctest runs each with MS_MODE=zero and MS_MODE=zero-checked.
 */
#include "libsvc.h"

#include "msi.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

MS_SERVICE(int64_t, main_plus1, (int64_t, x)) { return x + 1; }

static void
test_link_main_executable(void **state)
{
    (void)state;
    assert_int_equal(main_plus1(41), 42);
    ms__service *svc = msi_registry_find("main_plus1", NULL);
    assert_non_null(svc);
    assert_non_null(strstr(svc->file, "test_imports_link.c"));
}

static void
test_link_static_library(void **state)
{
    (void)state;
    assert_int_equal(static_twice(21), 42);
    char *t = static_tag("x");
    assert_string_equal(t, "[x]");
    free(t);
    ms__service *svc = msi_registry_find("static_tag", NULL);
    assert_non_null(svc);
    assert_non_null(strstr(svc->file, "lib_static_used.c"));
}

static void
test_link_unreferenced_member(void **state)
{
    (void)state;
#ifdef IMP_WHOLE_ARCHIVE
    ms__service *svc = msi_registry_find("static_unref", NULL);
    assert_non_null(svc);
    assert_non_null(strstr(svc->file, "lib_static_unref.c"));
#else
    /* The archive member was never linked: nothing registered it. */
    assert_null(msi_registry_find("static_unref", NULL));
#endif
}

static void
test_link_shared_library(void **state)
{
    (void)state;
#ifdef IMP_WITH_SHARED
    assert_int_equal(shared_thrice(14), 42);
    int64_t r = 0;
    assert_int_equal(shared_calls_main_try(&r, 3), MS_OK);
    assert_int_equal(r, 40);
    ms__service *svc = msi_registry_find("shared_thrice", NULL);
    assert_non_null(svc);
    assert_non_null(strstr(svc->file, "lib_shared.c"));
#else
    skip();
#endif
}

int
main(int argc, char **argv)
{
    if (ms_init(&argc, &argv) != MS_OK)
        return 1;
    const char *mode = getenv("MS_MODE");
    if (mode && strcmp(mode, ms_mode_name(ms_current_mode())) != 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_link_main_executable),
        cmocka_unit_test(test_link_static_library),
        cmocka_unit_test(test_link_unreferenced_member),
        cmocka_unit_test(test_link_shared_library),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    ms_shutdown();
    return rc;
}
