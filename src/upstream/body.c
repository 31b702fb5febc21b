/* body.c — the body sent upstream is the client's own bytes with only the
 * top-level "model" value replaced, so numbers, key order and unknown fields
 * reach the backend exactly as the client wrote them; and the check that an
 * upstream's answer is JSON at all, without building a tree of it. */
#include <string.h>

#include "airlock/upstream.h"

static size_t skip_ws(const char *s, size_t i, size_t n)
{
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
        i++;
    return i;
}

/* Skips one JSON value starting at s[i]; returns the index after it, or 0. */
static size_t skip_value(const char *s, size_t i, size_t n)
{
    int depth = 0, escaped = 0;
    while (i < n) {
        char c = s[i];
        if (c == '"') {
            i = json_skip_string(s, i, n, &escaped);
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
        size_t key_end = json_skip_string(raw, i, n, &escaped);
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

/* ---- json_check ---- */

static int hex4(const char *s)
{
    for (int k = 0; k < 4; k++) {
        char c = s[k];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
            return 0;
    }
    return 1;
}

/* s[i] is '"'; returns the index after the closing quote, or 0 when the
 * string is not valid JSON (raw control character, bad escape, no end). */
static size_t check_string(const char *s, size_t i, size_t n)
{
    for (i++; i < n; i++) {
        i = json_plain_run(s, i, n);
        if (i >= n)
            return 0;
        unsigned char c = (unsigned char)s[i];
        if (c == '"')
            return i + 1;
        if (c < 0x20)
            return 0;
        if (++i >= n)
            return 0;
        if (s[i] == 'u') {
            if (n - i < 5 || !hex4(s + i + 1))
                return 0;
            i += 4;
        } else if (!strchr("\"\\/bfnrt", s[i]) || s[i] == '\0') {
            return 0;
        }
    }
    return 0;
}

static size_t digits(const char *s, size_t i, size_t n)
{
    while (i < n && s[i] >= '0' && s[i] <= '9')
        i++;
    return i;
}

/* -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? at s[i]; the index after it, or 0. */
static size_t check_number(const char *s, size_t i, size_t n)
{
    if (i < n && s[i] == '-')
        i++;
    if (i >= n || s[i] < '0' || s[i] > '9')
        return 0;
    i = s[i] == '0' ? i + 1 : digits(s, i, n);
    if (i < n && s[i] == '.') {
        size_t j = digits(s, i + 1, n);
        if (j == i + 1)
            return 0;
        i = j;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        size_t j = digits(s, i, n);
        if (j == i)
            return 0;
        i = j;
    }
    return i;
}

static unsigned key_bit(const char *k, size_t len)
{
    if (len == 5 && memcmp(k, "error", 5) == 0)
        return JSON_KEY_ERROR;
    if (len == 7 && memcmp(k, "choices", 7) == 0)
        return JSON_KEY_CHOICES;
    if (len == 4 && memcmp(k, "data", 4) == 0)
        return JSON_KEY_DATA;
    return 0;
}

int json_check(const char *s, size_t n, unsigned *keys)
{
    char open[JSON_CHECK_DEPTH];    /* '{' or '[' per level */
    int depth = 0;
    unsigned found = 0;
    size_t i = skip_ws(s, 0, n);

    for (;;) {
        /* a value starts at s[i] */
        if (i >= n)
            return -1;
        char c = s[i];
        if (c == '{' || c == '[') {
            if (depth == JSON_CHECK_DEPTH)
                return -1;
            open[depth++] = c;
            i = skip_ws(s, i + 1, n);
            if (i < n && s[i] == (c == '{' ? '}' : ']')) {
                depth--;
                i++;
            } else if (c == '{') {
                goto key;
            } else {
                continue;
            }
        } else if (c == '"') {
            if (!(i = check_string(s, i, n)))
                return -1;
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            if (!(i = check_number(s, i, n)))
                return -1;
        } else if (n - i >= 4 && (memcmp(s + i, "true", 4) == 0 || memcmp(s + i, "null", 4) == 0)) {
            i += 4;
        } else if (n - i >= 5 && memcmp(s + i, "false", 5) == 0) {
            i += 5;
        } else {
            return -1;
        }
        /* after a value: the end, a comma or the enclosing bracket */
        for (;;) {
            i = skip_ws(s, i, n);
            if (depth == 0) {
                if (i != n)
                    return -1;
                *keys = found;
                return 0;
            }
            if (i >= n)
                return -1;
            if (s[i] != (open[depth - 1] == '{' ? '}' : ']'))
                break;
            depth--;
            i++;
        }
        if (s[i] != ',')
            return -1;
        i = skip_ws(s, i + 1, n);
        if (open[depth - 1] == '[')
            continue;
key:
        if (i >= n || s[i] != '"')
            return -1;
        size_t k = i;
        if (!(i = check_string(s, i, n)))
            return -1;
        unsigned bit = depth == 1 ? key_bit(s + k + 1, i - k - 2) : 0;
        i = skip_ws(s, i, n);
        if (i >= n || s[i] != ':')
            return -1;
        i = skip_ws(s, i + 1, n);
        /* error counts when it is not null; choices and data when they are
         * arrays holding something */
        if (bit == JSON_KEY_ERROR) {
            if (!(n - i >= 4 && memcmp(s + i, "null", 4) == 0))
                found |= bit;
        } else if (bit && i < n && s[i] == '[') {
            size_t j = skip_ws(s, i + 1, n);
            if (j < n && s[j] != ']')
                found |= bit;
        }
    }
}
