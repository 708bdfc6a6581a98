#include "json.h"

#include <stdio.h>
#include <string.h>

// Skips whitespace from `i`.
static size_t skip_ws(const char *j, size_t len, size_t i) {
    while (i < len && (j[i] == ' ' || j[i] == '\t' || j[i] == '\n' || j[i] == '\r')) i++;
    return i;
}

// Reads the string that starts at j[i] == '"'. Writes it unescaped into out
// (when out is not NULL) and returns the index after the closing quote, or 0.
static size_t read_string(const char *j, size_t len, size_t i, char *out, size_t cap, bool *fits) {
    size_t n = 0;
    *fits = true;
    for (i++; i < len; i++) {
        char c = j[i];
        if (c == '"') {
            if (out) out[n < cap ? n : cap - 1] = '\0';
            return i + 1;
        }
        if (c == '\\') {
            if (++i >= len) return 0;
            switch (j[i]) {
            case 'n': c = '\n'; break;
            case 't': c = '\t'; break;
            case 'r': c = '\r'; break;
            case 'b': c = '\b'; break;
            case 'f': c = '\f'; break;
            case 'u':
                if (i + 4 >= len) return 0;
                c = '?';
                i += 4;
                break;
            default: c = j[i]; break; // \" \\ \/
            }
        }
        if (out) {
            if (n + 1 < cap) out[n++] = c;
            else *fits = false;
        }
    }
    return 0;
}

// Skips one JSON value from j[i]; returns the index after it, or 0.
static size_t skip_value(const char *j, size_t len, size_t i) {
    bool fits;
    if (i >= len) return 0;
    if (j[i] == '"') return read_string(j, len, i, NULL, 0, &fits);
    int depth = 0;
    for (; i < len; i++) {
        char c = j[i];
        if (c == '"') {
            i = read_string(j, len, i, NULL, 0, &fits);
            if (i == 0) return 0;
            i--;
        } else if (c == '{' || c == '[') {
            depth++;
        } else if (c == '}' || c == ']') {
            if (depth == 0) return i;
            if (--depth == 0) return i + 1;
        } else if (depth == 0 && c == ',') {
            return i;
        }
    }
    return depth == 0 ? i : 0;
}

bool json_get_string(const char *j, size_t len, const char *key, char *out, size_t cap) {
    char name[256];
    bool fits;
    size_t i = skip_ws(j, len, 0);
    if (cap == 0 || i >= len || j[i] != '{') return false;
    i = skip_ws(j, len, i + 1);
    while (i < len && j[i] == '"') {
        i = read_string(j, len, i, name, sizeof name, &fits);
        if (i == 0) return false;
        i = skip_ws(j, len, i);
        if (i >= len || j[i] != ':') return false;
        i = skip_ws(j, len, i + 1);
        if (fits && strcmp(name, key) == 0) {
            if (i >= len || j[i] != '"') return false;
            return read_string(j, len, i, out, cap, &fits) != 0 && fits;
        }
        i = skip_value(j, len, i);
        if (i == 0) return false;
        i = skip_ws(j, len, i);
        if (i < len && j[i] == ',') i = skip_ws(j, len, i + 1);
    }
    return false;
}

bool json_put_string(char *out, size_t cap, size_t *used, const char *s) {
    size_t n = *used, need = 2; // the quotes
    for (const char *p = s; *p; p++) {
        unsigned char c = (unsigned char)*p;
        need += (c == '"' || c == '\\') ? 2 : (c < 0x20 ? 6 : 1);
    }
    if (n >= cap || need + 1 > cap - n) return false; // +1: the NUL
    out[n++] = '"';
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            out[n++] = '\\';
            out[n++] = (char)c;
        } else if (c < 0x20) {
            n += (size_t)snprintf(out + n, 7, "\\u%04x", c);
        } else {
            out[n++] = (char)c;
        }
    }
    out[n++] = '"';
    out[n] = '\0';
    *used = n;
    return true;
}
