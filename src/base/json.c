/*
 * json.c: JSON and UTF-8 helpers that need only jansson: bounded-depth parsing for every
 * JSON text from outside (call bodies, msd's API, answers), and the UTF-8 checks the codec
 * and error messages use.
 *
 * Design notes
 * - msi_json_parse bounds nesting with a pre-scan of the text that counts '[' and '{'
 *   outside strings, before jansson (whose own limit is far larger) builds anything.
 * - Its failure messages are valid UTF-8 (msi_utf8_scrub): they quote input (jansson's
 *   "near '...'") and end up in JSON error bodies, which must be UTF-8 to be built at all.
 *   Found by tests/fuzz/fuzz_call_args.
 */
#include "base.h"

#include <string.h>

size_t
msi_utf8_invalid_at(const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i];
        size_t n;
        uint32_t cp, min;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            n = 1, cp = c & 0x1F, min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            n = 2, cp = c & 0x0F, min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            n = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return i;
        }
        if (len - i <= n)
            return i;
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return i;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return i;
        i += n + 1;
    }
    return len;
}

void
msi_utf8_scrub(char *s)
{
    if (!s)
        return;
    size_t len = strlen(s), i = 0;
    while (i < len) {
        size_t bad = msi_utf8_invalid_at(s + i, len - i);
        if (bad == len - i)
            break;
        s[i + bad] = '?';
        i += bad + 1;
    }
}

/* Makes a failure's message valid UTF-8 and returns st. */
static ms_status
scrub_err(msi_err *err, ms_status st)
{
    if (err && st != MS_OK)
        msi_utf8_scrub(err->msg);
    return st;
}

/* Offset of the first '[' or '{' (outside strings) that opens nesting level max + 1; len
 * when there is none. Exact for valid JSON; invalid text is left to the parser. */
static size_t
too_deep_at(const char *s, size_t len, int max)
{
    int depth = 0, in_str = 0, esc = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (in_str) {
            if (esc)
                esc = 0;
            else if (c == '\\')
                esc = 1;
            else if (c == '"')
                in_str = 0;
        } else if (c == '"') {
            in_str = 1;
        } else if (c == '[' || c == '{') {
            if (++depth > max)
                return i;
        } else if ((c == ']' || c == '}') && depth > 0) {
            depth--;
        }
    }
    return len;
}

json_t *
msi_json_parse(const char *text, size_t len, msi_err *err)
{
    if (!text) {
        text = "";
        len = 0;
    }
    size_t at = too_deep_at(text, len, MSI_JSON_MAX_DEPTH);
    if (at != len) {
        msi_errf(err, MS_EBADARGS, "invalid JSON: nested deeper than %d levels at byte %zu",
                 MSI_JSON_MAX_DEPTH, at);
        return NULL;
    }
    json_error_t je;
    json_t *j = json_loadb(text, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &je);
    if (!j)
        scrub_err(err,
                  msi_errf(err, MS_EBADARGS, "invalid JSON: %s at line %d, column %d (byte %d)",
                           je.text, je.line, je.column, je.position));
    return j;
}
