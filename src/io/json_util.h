/* json_util.h — checked helpers over cJSON for the file readers that take JSON
 * (safetensors headers, safetensors index files, Hugging Face config.json).
 *
 * cJSON itself accepts some inputs that JSON does not (trailing garbage when
 * given a length, invalid UTF-8, raw control bytes in strings) and keeps
 * duplicate object keys; these helpers add the checks the readers need on top. */
#ifndef RUSTY_JSON_UTIL_H
#define RUSTY_JSON_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "core/status.h"

/* Largest integer a JSON number (an IEEE double) holds exactly, and above which
 * integer fields are rejected: 2^53 - 1. */
#define RS_JSON_MAX_EXACT_INT 9007199254740991ull

/* Offset of the first byte that is not part of well-formed UTF-8 (overlong
 * forms, surrogates and code points above U+10FFFF are ill-formed), or n when
 * all n bytes are valid. */
size_t rs_utf8_check(const unsigned char *s, size_t n);

/* Parses exactly len bytes of JSON text (JSON whitespace may follow the value,
 * anything else is an error). The text must be valid UTF-8 with no NUL byte, no
 * \u0000 escape (strings become C strings) and no raw control byte inside a
 * string. On failure sets err
 * to "<what>: ..." with the byte offset. *out is freed with cJSON_Delete. */
rs_status rs_json_parse(cJSON **out, const char *text, size_t len, const char *what, rs_error *err);

/* "string", "number", "object", "array", "bool", "null" (for messages). */
const char *rs_json_type_name(const cJSON *v);

/* Reads a non-negative integral number no larger than max (<= RS_JSON_MAX_EXACT_INT).
 * Returns NULL on success, or a short description of what is wrong
 * ("is a string, not an integer", "is negative", "is not an integer",
 * "is too large") for the caller's message. */
const char *rs_json_get_uint(const cJSON *v, uint64_t max, uint64_t *out);

/* Finds a key that occurs more than once in an object. Returns RS_OK and sets
 * *dup to the repeated key or NULL; RS_ERR_NOMEM if the check could not allocate. */
rs_status rs_json_find_duplicate_key(const cJSON *obj, const char **dup);

/* Replaces control characters in err->msg with '?': messages quote names and
 * values from the file, which may hold escaped newlines, and must stay one line. */
void rs_error_one_line(rs_error *err);

/* Number of members of an object or elements of an array. */
size_t rs_json_count(const cJSON *v);

#endif
