/*
 * siphash.h: SipHash-2-4 (Aumasson and Bernstein, "SipHash: a fast short-input PRF",
 * INDOCRYPT 2012), with a 64-bit or a 128-bit output. A keyed hash: whoever does not know
 * the 16-byte key cannot make two inputs collide on purpose, which is what the duplicate-
 * request cache needs of its body hashes (src/lib/host/dedupe.c), at a tenth of SHA-256's cost on a
 * short body. Pure functions; no state.
 */
#ifndef MS_SIPHASH_H
#define MS_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

/* The 64-bit output; key as k0 = bytes 0..7, k1 = bytes 8..15, little-endian. */
uint64_t msi_siphash64(const uint64_t key[2], const void *data, size_t len);
/* The 128-bit output: out[0] its first 8 bytes, out[1] its last, each little-endian. */
void msi_siphash128(const uint64_t key[2], const void *data, size_t len, uint64_t out[2]);

#endif
