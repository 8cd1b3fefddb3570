/*
 * fuzz_services.h: services and structs with every wire type (DESIGN section 1), shared by
 * the codec fuzz targets. Definitions, not declarations: include it in exactly one file of
 * a program (each fuzz target is its own program).
 *
 * FUZZ_SERVICES lists their descriptors; a target picks one with an input byte. The
 * bodies are never run: only the descriptors matter.
 */
#ifndef MS_FUZZ_SERVICES_H
#define MS_FUZZ_SERVICES_H

#include <ms/ms.h>

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

MS_STRUCT(fz_inner, (int8_t, i8), (uint64_t, u64), (char *, s), (ms_bytes, b))
MS_STRUCT(fz_outer, (struct fz_inner, in), (double, d), (json_t *, j), (ms_ref, r), (bool, ok),
          (float, f))

/* Integers of every width and signedness. */
MS_SERVICE(int64_t, fz_ints, (int8_t, a), (int16_t, b), (int32_t, c), (int64_t, d), (uint8_t, e),
           (uint16_t, f), (uint32_t, g), (uint64_t, h))
{
    return (int64_t)a + b + c + d + e + f + g + (int64_t)h;
}

/* The C spellings _Generic dispatches on that the one above does not reach. */
MS_SERVICE(unsigned long long, fz_cints, (char, ch), (short, sh), (unsigned, u), (long, l),
           (long long, ll), (unsigned long long, ull), (signed char, sc), (unsigned char, uc))
{
    return (unsigned long long)(ch + sh + sc + uc) + u + (unsigned long long)(l + ll) + ull;
}

MS_SERVICE(double, fz_reals, (float, f), (double, d), (bool, b))
{
    return b ? f : d;
}

MS_SERVICE(char *, fz_text, (const char *, c), (char *, s), (ms_bytes, b), (ms_ref, r),
           (json_t *, j))
{
    (void)c, (void)s, (void)b, (void)r, (void)j;
    return NULL;
}

MS_SERVICE(struct fz_outer, fz_struct, (struct fz_outer, o), (struct fz_inner, i))
{
    (void)i;
    return o;
}

MS_SERVICE(void, fz_none) {}

MS_SERVICE(ms_bytes, fz_bytes, (ms_bytes, b))
{
    return b;
}

MS_SERVICE(json_t *, fz_json, (json_t *, any))
{
    return any;
}

MS_SERVICE(ms_ref, fz_ref, (ms_ref, self), (int, n))
{
    (void)n;
    return self;
}

MS_SERVICE(bool, fz_bool, (bool, b))
{
    return !b;
}

MS_SERVICE(float, fz_float, (float, x))
{
    return x;
}

MS_SERVICE(uint8_t, fz_u8, (uint8_t, x))
{
    return x;
}

MS_SERVICE(int32_t, fz_i32, (int32_t, x))
{
    return x;
}

MS_SERVICE(uint64_t, fz_u64, (uint64_t, x))
{
    return x;
}

MS_SERVICE(struct fz_inner, fz_inner_res, (const char *, s))
{
    (void)s;
    struct fz_inner r = {0, 0, NULL, {NULL, 0}};
    return r;
}

#define FUZZ_SERVICES                                                                              \
    {                                                                                              \
        &ms__svc_fz_ints, &ms__svc_fz_cints, &ms__svc_fz_reals, &ms__svc_fz_text,                  \
            &ms__svc_fz_struct, &ms__svc_fz_none, &ms__svc_fz_bytes, &ms__svc_fz_json,             \
            &ms__svc_fz_ref, &ms__svc_fz_bool, &ms__svc_fz_float, &ms__svc_fz_u8, &ms__svc_fz_i32, \
            &ms__svc_fz_u64, &ms__svc_fz_inner_res                                                 \
    }
/* Number of entries of FUZZ_SERVICES; a seed's first byte is an index into it. */
#define FUZZ_NSERVICES 15

#endif /* MS_FUZZ_SERVICES_H */
