/*
 * decorators_chain.c: the far end of the call chains of test_imports_decorators.c, in a
 * file of its own so that the chain crosses translation units: chain_c (the last link of
 * chain_a -> chain_b -> chain_c) and fail_c (which fails with ms_fail for negative input).
 */
#include "decorators.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

MS_SERVICE(char *, chain_c, (const char *, s))
{
    size_t n = strlen(s) + sizeof "c()";
    char *r = malloc(n);
    if (!r) {
        ms_fail(1, "out of memory");
        return NULL;
    }
    snprintf(r, n, "c(%s)", s);
    return r;
}

MS_SERVICE(int32_t, fail_c, (int32_t, x))
{
    if (x < 0) {
        ms_fail(40 - x, "c: negative input %d", x);
        return -1;
    }
    return x;
}
