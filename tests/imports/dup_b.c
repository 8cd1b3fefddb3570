/*
 * dup_b.c: the second definition of dup_who (answers 2); see dup_a.c. Built as a shared
 * library (imp_dup_b) and as a dlopen'd module (imp_dup_b_plugin).
 */
#include <ms/ms.h>

enum { DUP_LINE = __LINE__ + 2 };
int imp_dup_b_line(void);
MS_SERVICE(int32_t, dup_who) { return 2; }

int
imp_dup_b_line(void)
{
    return DUP_LINE;
}
