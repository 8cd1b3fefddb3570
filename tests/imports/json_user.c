/*
 * json_user.c: a program that works with json_t values includes <jansson.h> itself, before or
 * after <ms/ms.h> (JSON_USER_JANSSON_FIRST=1): ms.h's declaration of json_t and jansson's
 * definition agree in C11 and in C++. Compiled by test_imports_json_user* as C11 and C++11.
 */
#if JSON_USER_JANSSON_FIRST
#include <jansson.h>
#endif

#include <ms/ms.h>

#if !JSON_USER_JANSSON_FIRST
#include <jansson.h>
#endif

#include <stdio.h>
#include <stdlib.h>

MS_SERVICE(json_t *, ju_wrap, (json_t *, j), (const char *, key))
{
    json_t *o = json_object();
    json_object_set_new(o, key, json_deep_copy(j));
    return o;
}

int
main(int argc, char **argv)
{
    if (ms_init(&argc, &argv) != MS_OK)
        return 1;
    json_t *in = json_integer(7);
    json_t *out = ju_wrap(in, "n");
    char *s = json_dumps(out, JSON_COMPACT);
    printf("%s\n", s ? s : "(null)");
    free(s);
    json_decref(in);
    json_decref(out);
    ms_shutdown();
    return 0;
}
