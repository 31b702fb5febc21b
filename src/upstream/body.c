/* body.c — the body sent upstream is the client's own bytes with only the
 * top-level "model" value replaced, so numbers, key order and unknown fields
 * reach the backend exactly as the client wrote them. */
#include <string.h>

#include "airlock/upstream.h"

static size_t skip_ws(const char *s, size_t i, size_t n)
{
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
        i++;
    return i;
}

/* s[i] is '"'; returns the index after the closing quote, or 0 on error.
 * *escaped tells whether the string held a backslash. */
static size_t skip_string(const char *s, size_t i, size_t n, int *escaped)
{
    for (i++; i < n; i++) {
        if (s[i] == '\\') {
            *escaped = 1;
            i++;
        } else if (s[i] == '"') {
            return i + 1;
        }
    }
    return 0;
}

/* Skips one JSON value starting at s[i]; returns the index after it, or 0. */
static size_t skip_value(const char *s, size_t i, size_t n)
{
    int depth = 0, escaped = 0;
    while (i < n) {
        char c = s[i];
        if (c == '"') {
            i = skip_string(s, i, n, &escaped);
            if (!i)
                return 0;
            if (depth == 0)
                return i;
            continue;
        }
        if (c == '{' || c == '[') {
            depth++;
        } else if (c == '}' || c == ']') {
            if (depth == 0)
                return i;       /* end of a scalar before the enclosing bracket */
            if (--depth == 0)
                return i + 1;
        } else if (depth == 0 && (c == ',' || c == ' ' || c == '\t' || c == '\n' || c == '\r')) {
            return i;
        }
        i++;
    }
    return depth == 0 ? i : 0;
}

int body_with_model(struct buf *out, const char *raw, size_t n, const char *model)
{
    size_t i = skip_ws(raw, 0, n), copied = 0;
    int replaced = 0;

    if (i >= n || raw[i] != '{')
        return -1;
    i = skip_ws(raw, i + 1, n);
    while (i < n && raw[i] != '}') {
        int escaped = 0;
        if (raw[i] != '"')
            return -1;
        size_t key_start = i + 1;
        size_t key_end = skip_string(raw, i, n, &escaped);
        if (!key_end || escaped)
            return -1;          /* an escaped key could spell "model": let cJSON decide */
        i = skip_ws(raw, key_end, n);
        if (i >= n || raw[i] != ':')
            return -1;
        size_t value_start = skip_ws(raw, i + 1, n);
        size_t value_end = skip_value(raw, value_start, n);
        if (!value_end || value_end == value_start)
            return -1;
        if (model && key_end - 1 - key_start == 5 && memcmp(raw + key_start, "model", 5) == 0) {
            if (buf_append(out, raw + copied, value_start - copied) < 0 ||
                buf_append_json_string(out, model) < 0)
                return -1;
            copied = value_end;
            replaced = 1;
        }
        i = skip_ws(raw, value_end, n);
        if (i < n && raw[i] == ',')
            i = skip_ws(raw, i + 1, n);
    }
    if (i >= n)
        return -1;
    if (!replaced && model) {
        /* no model in the body: add one right after the opening brace */
        size_t brace = skip_ws(raw, 0, n);
        int empty = raw[skip_ws(raw, brace + 1, n)] == '}';
        if (buf_append(out, raw, brace + 1) < 0 || buf_puts(out, "\"model\":") < 0 ||
            buf_append_json_string(out, model) < 0 || (!empty && buf_puts(out, ",") < 0))
            return -1;
        copied = brace + 1;
    }
    return buf_append(out, raw + copied, n - copied);
}
