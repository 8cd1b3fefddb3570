/*
 * fuzz_common.h: what the fuzz targets share: the libFuzzer entry point's prototype, an
 * assertion that survives NDEBUG, and a UTF-8 check for messages.
 *
 * Every target defines LLVMFuzzerTestOneInput and nothing else global; it is linked
 * either with libFuzzer (clang, -fsanitize=fuzzer) or with replay.c, a main() that feeds it
 * the files of a corpus (any compiler).
 */
#ifndef MS_FUZZ_COMMON_H
#define MS_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Set by a target that leaves something behind otherwise (a temporary directory): run
 * before a failed check aborts. */
static void (*fz_cleanup)(void) __attribute__((unused));

/* A property of the code under test: on failure, says which and aborts (a crash to
 * libFuzzer, a failed test to the replay driver). */
#define FZ_CHECK(cond, ...)                                                                        \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond);               \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            if (fz_cleanup)                                                                        \
                fz_cleanup();                                                                      \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* Whether s is valid UTF-8 (no overlong forms, surrogates or code points past U+10FFFF). */
static inline int
fz_utf8_ok(const char *str)
{
    const unsigned char *s = (const unsigned char *)str;
    while (*s) {
        unsigned c = *s, n;
        uint32_t cp, min;
        if (c < 0x80) {
            s++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            n = 1, cp = c & 0x1F, min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            n = 2, cp = c & 0x0F, min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            n = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return 0;
        }
        for (unsigned k = 1; k <= n; k++) {
            if ((s[k] & 0xC0) != 0x80)
                return 0; /* also catches the terminating NUL */
            cp = (cp << 6) | (s[k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        s += n + 1;
    }
    return 1;
}

#endif /* MS_FUZZ_COMMON_H */
