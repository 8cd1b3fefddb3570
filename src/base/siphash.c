/*
 * siphash.c: SipHash-2-4 (siphash.h), written from the paper: 2 compression rounds per
 * 8-byte word, 4 finalisation rounds; the 128-bit variant xors 0xee into v1 at the start
 * and into v2 before the first finalisation, and 0xdd into v1 before the second.
 * Checked against the paper's test vectors in tests/unit/test_dedupe.c.
 */
#include "siphash.h"

#include <string.h>

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

typedef struct sip {
    uint64_t v0, v1, v2, v3;
} sip;

static void
round_(sip *s)
{
    s->v0 += s->v1;
    s->v1 = ROTL(s->v1, 13);
    s->v1 ^= s->v0;
    s->v0 = ROTL(s->v0, 32);
    s->v2 += s->v3;
    s->v3 = ROTL(s->v3, 16);
    s->v3 ^= s->v2;
    s->v0 += s->v3;
    s->v3 = ROTL(s->v3, 21);
    s->v3 ^= s->v0;
    s->v2 += s->v1;
    s->v1 = ROTL(s->v1, 17);
    s->v1 ^= s->v2;
    s->v2 = ROTL(s->v2, 32);
}

static uint64_t
le64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static void
word(sip *s, uint64_t m)
{
    s->v3 ^= m;
    round_(s);
    round_(s);
    s->v0 ^= m;
}

/* Initialisation and compression of every word, the length word included. */
static void
absorb(sip *s, const uint64_t key[2], const void *data, size_t len, int wide)
{
    s->v0 = 0x736f6d6570736575ull ^ key[0];
    s->v1 = 0x646f72616e646f6dull ^ key[1];
    s->v2 = 0x6c7967656e657261ull ^ key[0];
    s->v3 = 0x7465646279746573ull ^ key[1];
    if (wide)
        s->v1 ^= 0xee;
    const unsigned char *p = data;
    size_t full = len & ~(size_t)7;
    for (size_t i = 0; i < full; i += 8)
        word(s, le64(p + i));
    unsigned char last[8] = {0};
    memcpy(last, p + full, len - full);
    word(s, le64(last) | (uint64_t)(len & 0xff) << 56);
}

static uint64_t
finish(sip *s)
{
    for (int i = 0; i < 4; i++)
        round_(s);
    return s->v0 ^ s->v1 ^ s->v2 ^ s->v3;
}

uint64_t
msi_siphash64(const uint64_t key[2], const void *data, size_t len)
{
    sip s;
    absorb(&s, key, data, len, 0);
    s.v2 ^= 0xff;
    return finish(&s);
}

void
msi_siphash128(const uint64_t key[2], const void *data, size_t len, uint64_t out[2])
{
    sip s;
    absorb(&s, key, data, len, 1);
    s.v2 ^= 0xee;
    out[0] = finish(&s);
    s.v1 ^= 0xdd;
    out[1] = finish(&s);
}
