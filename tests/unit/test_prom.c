/* test_prom.c: reading Prometheus text (src/base/prom.c), as instances write it. */
#include "prom.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

static void
test_prom_values(void **state)
{
    (void)state;
    const char *text = "# HELP ms_calls_total Calls.\n# TYPE ms_calls_total counter\n"
                       "ms_calls_total{service=\"a b\"} 42\n"
                       "ms_calls_total_x{service=\"a\"} 7\n"
                       "ms_busy_ratio{service=\"a\"} 0.750000\n"
                       "plain 9\n"
                       "broken{service=\"a\"}\n";
    assert_int_equal(msi_prom_value(text, "ms_calls_total"), 42); /* a label with a space */
    assert_int_equal(msi_prom_value(text, "ms_calls_total_x"), 7);
    assert_int_equal(msi_prom_value(text, "ms_busy_ratio"), 0);
    assert_int_equal(msi_prom_value(text, "plain"), 9);
    assert_int_equal(msi_prom_value(text, "ms_calls"), -1); /* a prefix is not a name */
    assert_int_equal(msi_prom_value(text, "absent"), -1);
    assert_int_equal(msi_prom_value(text, "broken"), -1);
    assert_int_equal(msi_prom_value("", "x"), -1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_prom_values)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
