/*
 * sha256.h: SHA-256 (FIPS 180-4), for build identities (the hash of a deployed executable).
 *
 * Design notes
 * - Our own small implementation rather than libcrypto: one algorithm, one use, no new
 *   dependency. Checked against the FIPS test vectors in tests/unit/test_msd_sha256.c.
 * - Streaming: init, update any number of times, final. The context is the caller's.
 */
#ifndef MSD_SHA256_H
#define MSD_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct msd_sha256 {
    uint32_t h[8];
    uint64_t len; /* bytes hashed so far */
    uint8_t buf[64];
    size_t nbuf;
} msd_sha256;

void msd_sha256_init(msd_sha256 *c);
void msd_sha256_update(msd_sha256 *c, const void *data, size_t len);
/* Writes the 32-byte digest. The context must be initialised again before reuse. */
void msd_sha256_final(msd_sha256 *c, uint8_t out[32]);
/* The digest as 64 lowercase hex digits and a NUL. */
void msd_sha256_hex(const uint8_t digest[32], char hex[65]);

#endif /* MSD_SHA256_H */
