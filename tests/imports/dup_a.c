/*
 * dup_a.c: one definition of the service dup_who (answers 1). dup_b.c defines the same name
 * (answers 2). One executable cannot link both (the stubs `dup_who` and `dup_who_try` are
 * global symbols: a link error, checked by test_imports_dup_link_error), so a real
 * duplicate needs two shared objects: two libraries linked at build time
 * (test_imports_dup_init) or a library and a dlopen'd plugin (test_imports_dup_late).
 * imp_dup_a_line() tells the tests the line of the definition.
 */
#include <ms/ms.h>

enum { DUP_LINE = __LINE__ + 2 };
int imp_dup_a_line(void);
MS_SERVICE(int32_t, dup_who) { return 1; }

int
imp_dup_a_line(void)
{
    return DUP_LINE;
}
