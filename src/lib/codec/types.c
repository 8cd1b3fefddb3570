/*
 * types.c: descriptors of the scalar types and service signatures.
 *
 * Design notes
 * - Integer descriptors carry width and signedness only, so `long` and `long long` (both
 *   64-bit here) have the same wire type and the same signature.
 * - A signature is canonical text, e.g. "add(a:i64,b:i64)->i64" with structs spelled out
 *   "point{x:f64,y:f64}", and its hash is the 64-bit FNV-1a of that text in hex. Parameter
 *   names are part of it because arguments travel by name.
 */
#include "codec.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

#define INT_T(var, T, K, nm) const ms__type var = {K, sizeof(T), nm, 0, NULL};

const ms__type ms__t_bool = {MS__K_BOOL, sizeof(_Bool), "bool", 0, NULL};
#if CHAR_MIN < 0
INT_T(ms__t_char, char, MS__K_INT, "i8")
#else
INT_T(ms__t_char, char, MS__K_UINT, "u8")
#endif
INT_T(ms__t_schar, signed char, MS__K_INT, "i8")
INT_T(ms__t_uchar, unsigned char, MS__K_UINT, "u8")
INT_T(ms__t_short, short, MS__K_INT, "i16")
INT_T(ms__t_ushort, unsigned short, MS__K_UINT, "u16")
INT_T(ms__t_int, int, MS__K_INT, "i32")
INT_T(ms__t_uint, unsigned, MS__K_UINT, "u32")
#if LONG_MAX > INT_MAX
INT_T(ms__t_long, long, MS__K_INT, "i64")
INT_T(ms__t_ulong, unsigned long, MS__K_UINT, "u64")
#else
INT_T(ms__t_long, long, MS__K_INT, "i32")
INT_T(ms__t_ulong, unsigned long, MS__K_UINT, "u32")
#endif
INT_T(ms__t_llong, long long, MS__K_INT, "i64")
INT_T(ms__t_ullong, unsigned long long, MS__K_UINT, "u64")
const ms__type ms__t_float = {MS__K_FLOAT, sizeof(float), "f32", 0, NULL};
const ms__type ms__t_double = {MS__K_DOUBLE, sizeof(double), "f64", 0, NULL};
const ms__type ms__t_string = {MS__K_STRING, sizeof(char *), "string", 0, NULL};
const ms__type ms__t_cstring = {MS__K_CSTRING, sizeof(const char *), "string", 0, NULL};
const ms__type ms__t_bytes = {MS__K_BYTES, sizeof(ms_bytes), "bytes", 0, NULL};
const ms__type ms__t_json = {MS__K_JSON, sizeof(json_t *), "json", 0, NULL};
const ms__type ms__t_ref = {MS__K_REF, sizeof(ms_ref), "ref", 0, NULL};

/* The signature's text, in base's growable buffer; `ok` turns false when out of memory (and
 * later puts do nothing). */
typedef struct sigtext {
    msi_buf b;
    int ok;
} sigtext;

static void
put(sigtext *t, const char *s)
{
    if (t->ok && msi_buf_put(&t->b, s, strlen(s)) != 0)
        t->ok = 0;
}

static void
put_type(sigtext *out, const ms__type *t, int depth)
{
    if (depth > 32) { /* MS_STRUCT cannot recurse; this only guards corrupt descriptors */
        put(out, "...");
        return;
    }
    put(out, t->name);
    if (t->kind != MS__K_STRUCT)
        return;
    put(out, "{");
    for (unsigned i = 0; i < t->nfields; i++) {
        if (i)
            put(out, ",");
        put(out, t->fields[i].name);
        put(out, ":");
        put_type(out, t->fields[i].type, depth + 1);
    }
    put(out, "}");
}

ms_status
msi_signature(const ms__service *svc, char **text, char hex[17])
{
    sigtext b = {{NULL, 0, 0}, 1};
    put(&b, svc->name);
    put(&b, "(");
    for (unsigned i = 0; i < svc->nparams; i++) {
        if (i)
            put(&b, ",");
        put(&b, svc->params[i].name);
        put(&b, ":");
        put_type(&b, svc->params[i].type, 0);
    }
    put(&b, ")->");
    if (svc->result)
        put_type(&b, svc->result, 0);
    else
        put(&b, "void");
    if (!b.ok) {
        msi_buf_free(&b.b);
        return MS_ENOMEM;
    }
    b.b.p[b.b.len] = '\0'; /* msi_buf_put keeps room for it */
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < b.b.len; i++) {
        h ^= (unsigned char)b.b.p[i];
        h *= 1099511628211ULL;
    }
    snprintf(hex, 17, "%016llx", (unsigned long long)h);
    *text = b.b.p; /* the caller owns it (free) */
    return MS_OK;
}
