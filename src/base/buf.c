/*
 * buf.c: the growable buffer of base.h, and decimal formatting without printf (the call path
 * formats a few numbers per call; snprintf costs about a thousand instructions each).
 */
#include "base.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int
msi_grow(char **buf, size_t *cap, size_t need)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap : 256;
    while (n < need) {
        if (n > SIZE_MAX / 2) {
            n = need;
            break;
        }
        n *= 2;
    }
    char *p = realloc(*buf, n);
    if (!p)
        return -1;
    *buf = p;
    *cap = n;
    return 0;
}

int
msi_buf_reserve(msi_buf *b, size_t more)
{
    if (more > SIZE_MAX - b->len - 1)
        return -1;
    return msi_grow(&b->p, &b->cap, b->len + more + 1);
}

int
msi_buf_put(msi_buf *b, const void *s, size_t n)
{
    if (msi_buf_reserve(b, n) != 0)
        return -1;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    return 0;
}

void
msi_buf_reset(msi_buf *b, size_t keep)
{
    if (b->cap > keep) {
        free(b->p);
        b->p = NULL;
        b->cap = 0;
    }
    b->len = 0;
}

void
msi_buf_free(msi_buf *b)
{
    if (!b)
        return;
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

char *
msi_u64_text(char *p, uint64_t v)
{
    char tmp[20];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *p++ = tmp[--n];
    return p;
}

/* ---- per-thread buffers --------------------------------------------------------------- */

static pthread_mutex_t tbuf_mu = PTHREAD_MUTEX_INITIALIZER;

static void
tbuf_free(void *p)
{
    msi_buf_free(p);
    free(p);
}

msi_buf *
msi_tbuf_get(msi_tbuf *t, size_t keep)
{
    if (__atomic_load_n(&t->ok, __ATOMIC_ACQUIRE) == 0) {
        pthread_mutex_lock(&tbuf_mu);
        if (t->ok == 0)
            __atomic_store_n(&t->ok, pthread_key_create(&t->key, tbuf_free) == 0 ? 1 : -1,
                             __ATOMIC_RELEASE);
        pthread_mutex_unlock(&tbuf_mu);
    }
    if (t->ok != 1)
        return NULL;
    msi_buf *b = pthread_getspecific(t->key);
    if (!b) {
        b = calloc(1, sizeof *b);
        if (!b || pthread_setspecific(t->key, b) != 0) {
            free(b);
            return NULL;
        }
    }
    msi_buf_reset(b, keep);
    return b;
}

void
msi_tbuf_release(msi_tbuf *t)
{
    if (__atomic_load_n(&t->ok, __ATOMIC_ACQUIRE) != 1)
        return;
    msi_buf *b = pthread_getspecific(t->key);
    pthread_setspecific(t->key, NULL);
    tbuf_free(b);
}
