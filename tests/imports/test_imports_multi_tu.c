/*
 * test_imports_multi_tu.c: one header of MS_DECLAREs (shapes.h) included from several
 * translation units: this file, multi_tu_other.c and the two files that implement the
 * services (shapes_a.c, shapes_b.c, linked as a static library). That it links at all shows
 * the header defines no duplicate symbols; the tests show calls across every pair of files.
 * ctest runs it with MS_MODE=zero and with MS_MODE=zero-checked.
 */
#include "shapes.h"

#include "msi.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

int other_tu_label_ok(void);
ms_status other_tu_name_try(char **out, int32_t sides);

static void
test_multi_tu_structs_across_files(void **state)
{
    (void)state;
    shape_reset();
    struct imp_rect r = {{1, 2}, {4, 6}};
    assert_true(rect_area(r) == 12.0);
    struct imp_point m = point_mid(r.lo, r.hi);
    assert_true(m.x == 2.5 && m.y == 4.0);
    struct imp_rect sq = {{-1, -1}, {1, 1}};
    assert_true(rect_is_square(sq)); /* shapes_b.c calls rect_area of shapes_a.c */
    assert_false(rect_is_square(r));
    assert_int_equal(shape_count(), 4); /* rect_area x3 (once directly, once per rect_is_square), point_mid */
}

static void
test_multi_tu_strings_and_try(void **state)
{
    (void)state;
    char *s = shape_name(3);
    assert_string_equal(s, "triangle");
    free(s);
    char *t = NULL;
    assert_int_equal(other_tu_name_try(&t, 6), MS_OK);
    assert_string_equal(t, "hexagon");
    free(t);
    assert_int_equal(other_tu_label_ok(), 1);
}

static void
test_multi_tu_eight_types(void **state)
{
    (void)state;
    assert_true(shape_mix(200, -300, 4000000000u, -5, 1.25f, 2.5, true, "abcd") ==
                UINT64_C(4400999920));
    uint64_t r = 1;
    assert_int_equal(shape_mix_try(&r, 0, 0, 0, 0, 0, 0, false, ""), MS_OK);
    assert_true(r == 0);
}

/* Every service of the header is registered once, by the file that defines it. */
static void
test_multi_tu_registered_once(void **state)
{
    (void)state;
    static const char *const want[][2] = {
        {"rect_area", "shapes_a.c"},   {"point_mid", "shapes_a.c"},
        {"shape_count", "shapes_a.c"}, {"shape_reset", "shapes_a.c"},
        {"shape_name", "shapes_b.c"},  {"rect_is_square", "shapes_b.c"},
        {"shape_label", "shapes_b.c"}, {"shape_mix", "shapes_b.c"},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        ms__service *svc = msi_registry_find(want[i][0], NULL);
        assert_non_null(svc);
        assert_non_null(strstr(svc->file, want[i][1]));
    }
    ms__service *area = msi_registry_find("rect_area", NULL);
    assert_true(msi_svc_of(area)->opts.idempotent);
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
        cmocka_unit_test(test_multi_tu_structs_across_files),
        cmocka_unit_test(test_multi_tu_strings_and_try),
        cmocka_unit_test(test_multi_tu_eight_types),
        cmocka_unit_test(test_multi_tu_registered_once),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    ms_shutdown();
    return rc;
}
