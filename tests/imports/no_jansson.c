/*
 * no_jansson.c: a program that uses ms.h and no JSON compiles without jansson's headers.
 * test_imports_no_jansson compiles it (as C11, and as C++11 for the C++ variant) with
 * no_jansson/jansson.h, an #error, first on the include path. A `json_t *` parameter still
 * compiles (json_t is declared by ms.h, as an incomplete type); doing anything with the
 * value needs <jansson.h>, which such a program includes itself (json_user.c).
 */
#include <ms/ms.h>

#include <stdio.h>
#include <stdlib.h>

MS_STRUCT(nj_point, (double, x), (double, y))

MS_SERVICE(int64_t, nj_add, (int64_t, a), (int64_t, b))
{
    return a + b;
}

MS_SERVICE(double, nj_norm1, (struct nj_point, p))
{
    return (p.x < 0 ? -p.x : p.x) + (p.y < 0 ? -p.y : p.y);
}

/* Passed through untouched: an opaque json_t * needs no jansson header. */
MS_SERVICE(int32_t, nj_is_null, (json_t *, j))
{
    return j == NULL;
}

int
main(int argc, char **argv)
{
    if (ms_init(&argc, &argv) != MS_OK)
        return 1;
    struct nj_point p = {3, -4};
    printf("%lld %g\n", (long long)nj_add(2, 3), nj_norm1(p));
    ms_shutdown();
    return 0;
}
