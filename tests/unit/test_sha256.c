/*
 * test_sha256.c: the SHA-256 of build identities (src/base/sha256.c) against the FIPS 180-4
 * examples and a million 'a's, fed in one piece and in awkward pieces.
 */
#include "sha256.h"
#include "msi.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static void
hex_of(const void *data, size_t len, size_t piece, char hex[65])
{
    msi_sha256 c;
    uint8_t d[32];
    msi_sha256_init(&c);
    const uint8_t *p = data;
    while (len) {
        size_t n = piece && piece < len ? piece : len;
        msi_sha256_update(&c, p, n);
        p += n;
        len -= n;
    }
    msi_sha256_final(&c, d);
    msi_sha256_hex(d, hex);
}

static void
test_msi_sha256_vectors(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out;
    } v[] = {
        {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
        {"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrl"
         "mnopqrsmnopqrstnopqrstu",
         "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"},
    };
    char hex[65];
    for (size_t i = 0; i < sizeof v / sizeof *v; i++) {
        for (size_t piece = 0; piece < 70; piece += 7) {
            hex_of(v[i].in, strlen(v[i].in), piece, hex);
            assert_string_equal(hex, v[i].out);
        }
    }
}

static void
test_msi_sha256_million_a(void **state)
{
    (void)state;
    size_t n = 1000000;
    char *a = malloc(n);
    assert_non_null(a);
    memset(a, 'a', n);
    char hex[65];
    hex_of(a, n, 0, hex);
    assert_string_equal(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    hex_of(a, n, 997, hex);
    assert_string_equal(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    free(a);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_msi_sha256_vectors),
        cmocka_unit_test(test_msi_sha256_million_a),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
