/*
 * test_imports_dlopen.c: services of a plugin loaded with dlopen() (plugin.c). The program
 * calls them through MS_CLIENT stubs, which find the provider in the registry:
 *   before dlopen        MS_ENOTFOUND
 *   after dlopen         the plugin's services answer, and can call back the program's
 *   after dlclose        MS_ENOTFOUND again, and a fresh registry lookup and a walk of the
 *                        whole registry find no entry of the plugin (a dangling one would
 *                        point into unmapped memory)
 *   after a second load  they answer again
 * ctest runs it with MS_MODE=zero and MS_MODE=zero-checked. IMP_PLUGIN_PATH is the module.
 */
#include <ms/ms.h>

#include "msi.h"

#include <dlfcn.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

MS_SERVICE(int64_t, host_offset) { return 1000; }

MS_CLIENT(int64_t, plugin_square, (int64_t, x))
MS_CLIENT(char *, plugin_greet, (const char *, who))
MS_CLIENT(int64_t, plugin_square_plus_host, (int64_t, x))
/* The plugin defines plugin_mismatch(int64_t x) -> int64_t. */
MS_CLIENT(int32_t, plugin_mismatch, (int32_t, x))

static const char *const plugin_services[] = {"plugin_square", "plugin_greet",
                                              "plugin_square_plus_host", "plugin_mismatch"};
#define NPLUGIN (sizeof plugin_services / sizeof plugin_services[0])

static void *
load(void)
{
    void *h = dlopen(IMP_PLUGIN_PATH, RTLD_NOW | RTLD_LOCAL);
    if (!h)
        fail_msg("dlopen %s: %s", IMP_PLUGIN_PATH, dlerror());
    return h;
}

static void
unload(void *h)
{
    assert_int_equal(dlclose(h), 0);
    /* Really unmapped (its destructors ran), not merely unreferenced. */
    void *again = dlopen(IMP_PLUGIN_PATH, RTLD_NOW | RTLD_NOLOAD);
    if (again) {
        dlclose(again);
        fail_msg("%s is still loaded after dlclose", IMP_PLUGIN_PATH);
    }
}

/* Counts registry entries whose name is a plugin service; reads every entry's name. */
static void
count_plugin_entries(ms__service *svc, void *arg)
{
    for (size_t i = 0; i < NPLUGIN; i++)
        if (strcmp(svc->name, plugin_services[i]) == 0)
            ++*(int *)arg;
}

static int
plugin_entries(void)
{
    int n = 0;
    msi_registry_each(count_plugin_entries, &n);
    return n;
}

static void
assert_plugin_absent(void)
{
    int64_t r = 7;
    assert_int_equal(plugin_square_try(&r, 3), MS_ENOTFOUND);
    assert_int_equal(r, 0);
    assert_non_null(strstr(ms_last_error(), "plugin_square"));
    char *s = (char *)"untouched";
    assert_int_equal(plugin_greet_try(&s, "x"), MS_ENOTFOUND);
    assert_null(s);
    for (size_t i = 0; i < NPLUGIN; i++)
        assert_null(msi_registry_find(plugin_services[i], NULL));
    assert_int_equal(plugin_entries(), 0);
}

static void
assert_plugin_present(void)
{
    assert_int_equal(plugin_square(12), 144);
    char *s = plugin_greet("host");
    assert_string_equal(s, "plugin greets host");
    free(s);
    assert_int_equal(plugin_square_plus_host(3), 1009); /* calls back host_offset */
    ms__service *svc = msi_registry_find("plugin_square", NULL);
    assert_non_null(svc);
    assert_non_null(strstr(svc->file, "plugin.c"));
    assert_non_null(svc->invoke);
    assert_int_equal(plugin_entries(), (int)NPLUGIN);
}

static void
test_dlopen_register_unregister_reload(void **state)
{
    (void)state;
    assert_plugin_absent();
    void *h = load();
    assert_plugin_present();
    unload(h);
    assert_plugin_absent();
    h = load();
    assert_plugin_present();
    unload(h);
    assert_plugin_absent();
}

/* A stub whose signature differs from the provider's is refused, both definitions named. */
static void
test_dlopen_signature_mismatch(void **state)
{
    (void)state;
    void *h = load();
    int32_t r = 5;
    assert_int_equal(plugin_mismatch_try(&r, 1), MS_ESIGNATURE);
    assert_int_equal(r, 0);
    assert_non_null(strstr(ms_last_error(), "plugin.c:"));
    unload(h);
}

/* A program's own services are untouched by a plugin coming and going. */
static void
test_dlopen_host_services_stay(void **state)
{
    (void)state;
    void *h = load();
    unload(h);
    assert_int_equal(host_offset(), 1000);
    assert_non_null(msi_registry_find("host_offset", NULL));
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
        cmocka_unit_test(test_dlopen_register_unregister_reload),
        cmocka_unit_test(test_dlopen_signature_mismatch),
        cmocka_unit_test(test_dlopen_host_services_stay),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    ms_shutdown();
    return rc;
}
