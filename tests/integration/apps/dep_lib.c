/* dep_lib.c: a shared library that dep_app.c needs, so that test_msd_docker can take it away
 * after the deployment (an image that cannot be made). */
int msd_test_dep_value(void);

int
msd_test_dep_value(void)
{
    return 7;
}
