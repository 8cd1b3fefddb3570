/*
 * sha256.h: SHA-256 (FIPS 180-4), for build identities (the hash of a deployed executable).
 *
 * Design notes
 * - Our own small implementation rather than libcrypto: one algorithm, one use, no new
 *   dependency. Checked against the FIPS test vectors in tests/unit/test_msi_sha256.c.
 * - Streaming: init, update any number of times, final. The context is the caller's.
 */
#ifndef MSI_SHA256_H
#define MSI_SHA256_H

#include "base.h"

#include <stddef.h>
#include <stdint.h>

typedef struct msi_sha256 {
    uint32_t h[8];
    uint64_t len; /* bytes hashed so far */
    uint8_t buf[64];
    size_t nbuf;
} msi_sha256;

void msi_sha256_init(msi_sha256 *c);
void msi_sha256_update(msi_sha256 *c, const void *data, size_t len);
/* Writes the 32-byte digest. The context must be initialised again before reuse. */
void msi_sha256_final(msi_sha256 *c, uint8_t out[32]);
/* The digest as 64 lowercase hex digits and a NUL. */
void msi_sha256_hex(const uint8_t digest[32], char hex[65]);

/* Of a buffer, of a file: 64 lowercase hex digits. */
void msi_sha256_hex_of(const void *data, size_t len, char hex[65]);
ms_status msi_sha256_file(const char *path, char hex[65], msi_err *err);

#endif /* MSI_SHA256_H */
