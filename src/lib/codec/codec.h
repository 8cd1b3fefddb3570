/*
 * codec.h: the codec of libms (src/lib/codec/): C values to and from JSON, driven by the type
 * descriptors MS_SERVICE and MS_STRUCT emit (ms__type, ms__field in <ms/ms.h>).
 *
 * What the folder owns: the scalar type descriptors and service signatures (types.c), the
 * tree path between C values and jansson trees, which is the reference for every wire rule
 * and every error message (codec.c), the text lane between C values and JSON text without a
 * tree (codec_text.c), and the one entry per direction that tries the text lane and falls
 * back to the tree (msi_codec_*, codec.c): the only way the call path (src/lib/client,
 * src/lib/host) encodes or decodes. It is a sub-layer of src/lib below the rest of it
 * (docs/design.md, "Layers"): it includes base.h and <ms/ms.h> only, does no I/O and keeps no
 * state.
 *
 * Threading: every function is reentrant and keeps no state; a value, an argument struct or
 * an msi_buf is used by one thread at a time, as for any C object.
 *
 * Wire rules (DESIGN section 3, decisions in docs/design.md):
 * - bool: true/false. Integers: JSON integers; a value outside the int64 range (a large
 *   uint64_t) travels as a decimal string. Decoders accept either form for every integer
 *   type, and a value that does not fit the C type is MS_EBADARGS, never truncated. A JSON
 *   real with an integral value is not accepted for an integer (2.0 is not 2).
 * - float/double: JSON numbers; NaN, Infinity, -Infinity travel as the strings "NaN",
 *   "Infinity", "-Infinity". A double that does not fit a float (finite, beyond FLT_MAX) is
 *   an error. Integers are accepted for floats.
 * - strings: valid UTF-8 without NUL, else MS_EBADARGS. ms_bytes: base64 (RFC 4648, with
 *   padding). json_t *: any JSON value, passed through. ms_ref: its URI as a string.
 * - MS_STRUCT: an object with exactly its fields (missing or extra fields are errors).
 * - Arguments: one object, named by parameter: {"a":2,"b":3}; missing, extra or mistyped
 *   arguments give MS_EBADARGS with a message naming the argument. Results: {"result":v}
 *   ({"result":null} for void).
 *
 * Ownership: decoded values are allocated (strings, bytes, refs are malloc'd; json_t is a
 * new reference) and freed with ms__free_value / msi_free_args. Encoders never take
 * ownership of the value they read. On failure a decoder frees what it had allocated and
 * leaves the value zeroed.
 */
#ifndef MS_CODEC_H
#define MS_CODEC_H

#include "base.h"

#include <ms/ms.h>

/* ---- The call path's entries: the text lane, else the tree ----
 *
 * One per direction. Each tries the text lane (below) and, for what the lane leaves, takes
 * the tree path, which is the one that says what is wrong: a value the lane takes costs no
 * allocation beyond the growth of `out` and no copy. Messages in err are those of the tree
 * path, without the service name (the caller prefixes it).
 */

/* Appends the argument object of svc ({"name":value,...}) to out. MS_OK, or the tree's
 * status and message (MS_ENOMEM: "out of memory"); out->len is then unspecified. */
ms_status msi_codec_encode_args(const ms__service *svc, const void *args, msi_buf *out,
                                msi_err *err);
/* Decodes an argument object from text (len bytes) into args (svc->args_size bytes, zeroed
 * first). MS_OK: free with msi_free_args. Else args is left zeroed and err says why: text
 * that is not JSON is MS_EBADARGS "arguments: <parser's message>", JSON that is not this
 * service's arguments is msi_decode_args's status and message. */
ms_status msi_codec_decode_args(const ms__service *svc, const char *text, size_t len, void *args,
                                msi_err *err);
/* Appends {"result":value} ({"result":null} for a void service; result is then ignored) to
 * out. MS_OK, or the tree's status and message (MS_ENOMEM: "out of memory"). */
ms_status msi_codec_encode_result(const ms__service *svc, const void *result, msi_buf *out,
                                  msi_err *err);
/* Decodes {"result":value} from text (len bytes) into *result (ignored for void). Else
 * *result is left zeroed and err says why: text that is not JSON is MS_EPROTO "bad result:
 * <parser's message>", JSON that is not this service's result is msi_decode_result's status
 * with "result: <its message>". result NULL: the text lane checks the value and releases
 * it; what it leaves is only required to be JSON (the tree decodes nothing). */
ms_status msi_codec_decode_result(const ms__service *svc, const char *text, size_t len,
                                  void *result, msi_err *err);

/* ---- The tree path (codec.c): C values to and from jansson trees, the reference ---- */

/* One value of type t at v, as a new JSON value in *out. */
ms_status msi_encode(const ms__type *t, const void *v, json_t **out, msi_err *err);
/* Decodes j into the value at v (of t->size bytes, zeroed first). `what` names the value in
 * error messages ("argument 'b'", "result"). */
ms_status msi_decode(const ms__type *t, const json_t *j, void *v, const char *what, msi_err *err);

/* The argument struct of svc, as {"name": value, ...}. */
ms_status msi_encode_args(const ms__service *svc, const void *args, json_t **out, msi_err *err);
/* Decodes an argument object into the argument struct at args (svc->args_size bytes). */
ms_status msi_decode_args(const ms__service *svc, const json_t *obj, void *args, msi_err *err);
/* Frees what msi_decode_args allocated in args. */
void msi_free_args(const ms__service *svc, void *args);

/* {"result": value} (null for a void service). */
ms_status msi_encode_result(const ms__service *svc, const void *result, json_t **out, msi_err *err);
/* Decodes a {"result": value} object into *result (ignored for void). */
ms_status msi_decode_result(const ms__service *svc, const json_t *obj, void *result, msi_err *err);

/* ---- The text lane (codec_text.c): C values to JSON text and back, without a tree ----
 *
 * The call path's encoders and decoders. Each handles the common cases and says "not
 * handled" for the rest (a json_t * value, a value that is wrong, JSON it does not read),
 * and the caller then takes the tree path above, which stays the reference: its results
 * and its error messages are the ones users see. So a value decoded by this lane is the
 * value the tree path would have decoded, and text encoded by it decodes (either way) to
 * the value the tree path's text decodes to. tests/unit/test_codec_text.c checks both.
 */

/* Appends {"name":value,...} of svc's arguments to b. 1 done; 0 not handled (b->len is
 * restored); -1 out of memory. */
int msi_text_encode_args(const ms__service *svc, const void *args, msi_buf *b);
/* Appends {"result":value} ({"result":null} for void). Same returns. */
int msi_text_encode_result(const ms__service *svc, const void *result, msi_buf *b);
/* Decodes an argument object from text (len bytes) into args (svc->args_size bytes, zeroed
 * first). 1 done (free with msi_free_args); 0 not handled: args is left zeroed. */
int msi_text_decode_args(const ms__service *svc, const char *text, size_t len, void *args);
/* Decodes {"result":value} into *result (ignored for void; NULL: checked, then released).
 * 1 done; 0 not handled: *result is left zeroed. */
int msi_text_decode_result(const ms__service *svc, const char *text, size_t len, void *result);

/* Signatures (types.c): svc's canonical signature text in *text (malloc'd) and the 64-bit
 * FNV-1a hash of it in hex. MS_OK or MS_ENOMEM. */
ms_status msi_signature(const ms__service *svc, char **text, char hex[17]);

/* Helpers shared by codec.c and codec_text.c. */
/* 1 when size is a C integer width ms carries (1, 2, 4 or 8 bytes). */
int msi_int_size_ok(unsigned size);
/* The integer of `size` bytes at v (a valid size: msi_int_size_ok). */
int64_t msi_read_int(const void *v, unsigned size);
uint64_t msi_read_uint(const void *v, unsigned size);
/* Stores x in `size` bytes at v; the caller has range-checked it. */
void msi_write_int(void *v, unsigned size, int64_t x);
void msi_write_uint(void *v, unsigned size, uint64_t x);
/* An optional '-' and one or more digits within UINT64_MAX: 0; -1 not that form; -2 too
 * big. */
int msi_parse_decimal(const char *s, size_t len, int *neg, uint64_t *mag);
/* Base64 (RFC 4648, with padding) of data into out, which has room for 4 * ceil(len / 3)
 * bytes. */
void msi_b64_encode(const uint8_t *data, size_t len, char *out);
/* Strict base64 (as the tree path accepts it) into *out (data malloc'd; {NULL, 0} for ""):
 * 0, -1 invalid, -2 out of memory. */
int msi_b64_decode(const char *s, size_t n, ms_bytes *out);

#endif /* MS_CODEC_H */
