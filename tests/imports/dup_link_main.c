/*
 * dup_link_main.c: a program that links dup_a.c and dup_b.c into one executable. It must
 * not link: two MS_SERVICEs of one name in one executable define the stub symbols twice.
 * Built only by the ctest entry test_imports_dup_link_error, which expects the linker's
 * "multiple definition" (GNU ld) / "duplicate symbol" (lld) error.
 */
#include <ms/ms.h>

MS_DECLARE(int32_t, dup_who)

int
main(int argc, char **argv)
{
    ms_init(&argc, &argv);
    int r = dup_who();
    ms_shutdown();
    return r;
}
