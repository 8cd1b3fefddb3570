/*
 * dep_app.c: a service program that needs a shared library of the test tree
 * (libmsd_test_dep.so) and has no RUNPATH to it: it is found through LD_LIBRARY_PATH
 * (test_msd_docker, an image that cannot be made once the library is gone).
 */
#include <ms/ms.h>

#include <stdio.h>

int msd_test_dep_value(void);

MS_SERVICE(int64_t, dep, (int64_t, a))
{
    return a + msd_test_dep_value();
}

int
main(int argc, char **argv)
{
    ms_status st = ms_init(&argc, &argv);
    if (st != MS_OK) {
        fprintf(stderr, "ms_init: %s: %s\n", ms_status_name(st), ms_last_error());
        return 1;
    }
    printf("%lld\n", (long long)dep(1));
    ms_shutdown();
    return 0;
}
