// A small JSON helper for steps: reads a top-level string field of an
// object and writes JSON-escaped strings. C has no standard JSON library;
// swap in cJSON or another one for anything bigger.
#ifndef WEFT_JSON_H
#define WEFT_JSON_H

#include <stdbool.h>
#include <stddef.h>

// Finds the top-level field `key` of the JSON object `json` (`len` bytes). When
// it is a string, copies it unescaped (\uXXXX outside ASCII becomes '?') into
// `out` (at most `cap` - 1 bytes, NUL-terminated) and returns true. Returns false
// when the field is missing, is not a string, does not fit, or `json` is not an
// object.
bool json_get_string(const char *json, size_t len, const char *key, char *out, size_t cap);

// Appends `s` to `out` (holding `*used` of `cap` bytes) as a quoted JSON string.
// Returns false, changing nothing visible, when it does not fit.
bool json_put_string(char *out, size_t cap, size_t *used, const char *s);

#endif
