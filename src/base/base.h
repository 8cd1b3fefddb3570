/*
 * base.h: the lowest layer of libms (src/base), under net (src/net), the library (src/lib)
 * and the programs (src/msd, src/msctl). Not installed.
 *
 * What it owns: error details (msi_err), the monotonic clock, the library's logger,
 * growable and per-thread buffers, reading a one-line file (tokens, addresses), and the
 * JSON helpers that need only jansson (bounded-depth parsing, UTF-8 checks). Beside it:
 * sha256.h and siphash.h (hashes), statedir.h (the names of the files in msd's state
 * directory).
 *
 * Design notes
 * - It depends on nothing above it: only libc, pthreads, jansson and the public types of
 *   <ms/ms.h> (ms_status and MS_STATUS_LIST). scripts/check-layers.sh checks that no file
 *   here includes a header of a layer above.
 * - One header for the small helpers, because almost every file of net and lib needs
 *   several of them; the hashes and the state directory's names, which few files need,
 *   have their own.
 * - Threading: every function is safe from any thread. msi_log_level is set once at start
 *   (ms_init, before other threads) and only read afterwards.
 */
#ifndef MSI_BASE_H
#define MSI_BASE_H

#include <ms/ms.h>

#include <jansson.h> /* the JSON helpers; <ms/ms.h> only declares json_t */

#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* ---- error details (err.c) ---- */

#define MSI_ERR_MAX 512 /* detail messages */

/* An error detail being built; functions that fail fill it and return a status. */
typedef struct msi_err {
    char msg[MSI_ERR_MAX];
} msi_err;

/* Formats the detail into err (NULL: none) and returns st. */
ms_status msi_errf(msi_err *err, ms_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The HTTP status that stands for st on the wire (MS_STATUS_LIST). */
int msi_status_http(ms_status st);
/* The reverse, for an answer that carries no status name of its own: the first status of
 * MS_STATUS_LIST with that HTTP code, leaving out those a bare code cannot stand for
 * (code 500: MS_EAPP, MS_ENOMEM, MS_EIO; and MS_EINDOUBT, a judgement of the caller's);
 * MS_EPROTO for every other code. So 200 is MS_OK, 409 MS_ETXN_LOST, 502 MS_EPROTO,
 * 503 MS_EUNAVAILABLE, 500 MS_EPROTO. */
ms_status msi_status_of_http(int http);

/* ---- clock (clock.c) ---- */

/* CLOCK_MONOTONIC in milliseconds: every deadline and duration in libms, msd and msctl. */
int64_t msi_now_ms(void);

/* ---- log (log.c) ---- */

extern int msi_log_level; /* 0 error, 1 warn, 2 info, 3 debug (default 1) */
/* Writes "ms[pid] level: message" to stderr when level <= msi_log_level. */
void msi_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- buffers (buf.c) ---- */

/* A growable byte buffer, for text built on the call path and reused. */
typedef struct msi_buf {
    char *p;
    size_t len, cap;
} msi_buf;
/* Makes room for `more` bytes after len, plus a NUL: 0, or -1 when out of memory. */
int msi_buf_reserve(msi_buf *b, size_t more);
/* Grows *buf (capacity *cap) to at least `need` bytes, doubling: 0, or -1 when out of
 * memory (*buf is then unchanged). For buffers that are not an msi_buf. */
int msi_grow(char **buf, size_t *cap, size_t need);
/* Appends n bytes: 0, or -1 when out of memory. */
int msi_buf_put(msi_buf *b, const void *s, size_t n);
/* Empties b, and frees its memory when it grew past `keep` bytes (so that one huge value
 * does not stay with a thread or a connection). */
void msi_buf_reset(msi_buf *b, size_t keep);
void msi_buf_free(msi_buf *b);
/* Writes v in decimal at p (room for 20 digits, no NUL); returns the end. */
char *msi_u64_text(char *p, uint64_t v);

/* Room on the stack for a value of a common size (an argument struct, a result), so that
 * the call path allocates only for larger ones:
 *     msi_scratch tmp;
 *     void *v = size <= sizeof tmp ? (void *)&tmp : malloc(size);  ...  if (v != &tmp) free(v);
 */
typedef union msi_scratch {
    max_align_t align;
    char bytes[512];
} msi_scratch;

/* A buffer per thread, behind a pthread key made on first use; the buffer is freed when its
 * thread exits. Define one per use with MSI_TBUF_INIT. */
typedef struct msi_tbuf {
    pthread_key_t key;
    int ok; /* 1: key made; -1: could not be made */
} msi_tbuf;
#define MSI_TBUF_INIT                                                                              \
    {                                                                                              \
        0, 0                                                                                       \
    }
/* The calling thread's buffer, emptied (and freed first if it grew past `keep` bytes);
 * NULL when out of memory. */
msi_buf *msi_tbuf_get(msi_tbuf *t, size_t keep);
/* Frees the calling thread's buffer now (the main thread never runs key destructors). */
void msi_tbuf_release(msi_tbuf *t);

/* ---- files (file.c) ---- */

/* The first word of a file's first line (a token, an address): what comes before the first
 * CR, LF, space or tab, at most 511 bytes; malloc'd. NULL when the file cannot be read or
 * that word is empty. */
char *msi_read_first_line(const char *path);

/* ---- JSON and UTF-8 (json.c) ---- */

/* Maximum nesting depth of JSON accepted anywhere (arguments, API bodies). */
#define MSI_JSON_MAX_DEPTH 64

/* Parses text (len bytes) into JSON, refusing nesting deeper than MSI_JSON_MAX_DEPTH and
 * invalid UTF-8. NULL with err filled on failure (the message is valid UTF-8). */
json_t *msi_json_parse(const char *text, size_t len, msi_err *err);
/* Offset of the first byte that is not part of valid UTF-8 (overlong forms, surrogates and
 * code points above U+10FFFF are invalid); len when all of s is valid. */
size_t msi_utf8_invalid_at(const char *s, size_t len);
/* Replaces, in place, every byte of s that is not part of valid UTF-8 with '?' (a
 * sequence cut short by truncation included), so that s can go into a JSON string. The
 * decoders' and msi_json_parse's messages are already scrubbed; use it on any message that
 * quotes request text (a URL, a header) before replying with it. Accepts NULL. */
void msi_utf8_scrub(char *s);

#endif /* MSI_BASE_H */
