/* util.c — the growable buffer and clock helpers declared in airlock/util.h. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "airlock/util.h"

#include <cjson/cJSON.h>

static int buf_reserve(struct buf *b, size_t extra)
{
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap *= 2;
    char *p = realloc(b->data, cap);
    if (!p)
        return -1;
    b->data = p;
    b->cap = cap;
    return 0;
}

int buf_append(struct buf *b, const void *p, size_t n)
{
    if (buf_reserve(b, n) < 0)
        return -1;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

char *u64_decimal(char *end, uint64_t v)
{
    *end = '\0';
    do {
        *--end = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return end;
}

/* The high bit of each byte of w that is '"', '\\' or below 0x20, by the
 * classic zero-byte and less-than tests. A borrow can mark a byte above a
 * marked one, never below: the lowest mark is exact. */
static uint64_t json_special_bytes(uint64_t w)
{
    const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
    uint64_t q = w ^ (ones * '"'), bs = w ^ (ones * '\\');
    return (((q - ones) & ~q) | ((bs - ones) & ~bs) | ((w - ones * 0x20) & ~w)) & high;
}

size_t json_plain_run(const char *s, size_t i, size_t n)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        uint64_t m = json_special_bytes(w);
        if (m)
            return i + (size_t)(__builtin_ctzll(m) >> 3);      /* the first byte in memory */
    }
#endif
    for (; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\' || c < 0x20)
            return i;
    }
    return n;
}

size_t json_skip_string(const char *s, size_t i, size_t n, int *escaped)
{
    for (i++; i < n; i++) {
        i = json_plain_run(s, i, n);
        if (i >= n)
            return 0;
        if (s[i] == '"')
            return i + 1;
        if (s[i] == '\\') {
            *escaped = 1;
            i++;        /* and the loop's step goes past the escaped byte */
        }
    }
    return 0;
}

int buf_append_u64(struct buf *b, uint64_t v)
{
    char d[U64_DIGITS + 1];
    char *start = u64_decimal(d + U64_DIGITS, v);
    return buf_append(b, start, (size_t)(d + U64_DIGITS - start));
}

int buf_puts(struct buf *b, const char *s)
{
    return buf_append(b, s, strlen(s));
}

int buf_appendf(struct buf *b, const char *fmt, ...)
{
    /* Format into the room already there; only a line that does not fit
     * pays for a second vsnprintf. */
    if (buf_reserve(b, 64) < 0)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    size_t room = b->cap - b->len;
    int n = vsnprintf(b->data + b->len, room, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->data[b->len] = '\0';
        return -1;
    }
    if ((size_t)n >= room) {
        if (buf_reserve(b, (size_t)n) < 0) {
            b->data[b->len] = '\0';
            return -1;
        }
        va_start(ap, fmt);
        vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    b->len += (size_t)n;
    return 0;
}

int buf_append_json_string(struct buf *b, const char *s)
{
    if (buf_puts(b, "\"") < 0)
        return -1;
    const unsigned char *p = (const unsigned char *)s;
    for (;;) {
        const unsigned char *run = p;   /* bytes that need no escape, appended at once */
        while (*p >= 0x20 && *p != '"' && *p != '\\')
            p++;
        if (p > run && buf_append(b, run, (size_t)(p - run)) < 0)
            return -1;
        if (!*p)
            break;
        char esc[8];
        switch (*p) {
        case '"': memcpy(esc, "\\\"", 3); break;
        case '\\': memcpy(esc, "\\\\", 3); break;
        case '\n': memcpy(esc, "\\n", 3); break;
        case '\r': memcpy(esc, "\\r", 3); break;
        case '\t': memcpy(esc, "\\t", 3); break;
        default: snprintf(esc, sizeof esc, "\\u%04x", *p);
        }
        if (buf_puts(b, esc) < 0)
            return -1;
        p++;
    }
    return buf_puts(b, "\"");
}

void buf_consume(struct buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
    } else {
        memmove(b->data, b->data + n, b->len - n);
        b->len -= n;
    }
    if (b->data)
        b->data[b->len] = '\0';
}

void buf_free(struct buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

uint64_t now_ms(void)
{
    return now_us() / 1000;
}

uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

int utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        /* ASCII runs, 8 bytes at a time */
        while (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (w & 0x8080808080808080ull)
                break;
            i += 8;
        }
        if (i >= n)
            break;
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len;
        unsigned lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) {
            len = 2;
        } else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
            if (c == 0xE0)
                lo = 0xA0;          /* overlong */
            else if (c == 0xED)
                hi = 0x9F;          /* surrogates */
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
            if (c == 0xF0)
                lo = 0x90;
            else if (c == 0xF4)
                hi = 0x8F;          /* past U+10FFFF */
        } else {
            return 0;
        }
        if (i + len > n || s[i + 1] < lo || s[i + 1] > hi)
            return 0;
        for (size_t k = 2; k < len; k++)
            if ((s[i + k] & 0xC0) != 0x80)
                return 0;
        i += len;
    }
    return 1;
}

/* ---- scratch arena for short-lived JSON ---- */

#define SCRATCH_BYTES (64 * 1024)

static __thread struct {
    char *base;
    size_t used;
    int parsing;        /* the hooks allocate from the arena */
    int live;           /* a scratch tree is in use: no reset */
} scratch;
static int scratch_hooks;

static void *scratch_malloc(size_t n)
{
    if (scratch.parsing) {
        size_t at = (scratch.used + 15) & ~(size_t)15;
        if (at + n <= SCRATCH_BYTES) {
            scratch.used = at + n;
            return scratch.base + at;
        }
    }
    return malloc(n);
}

static void scratch_release(void *p)
{
    if (scratch.base && (char *)p >= scratch.base && (char *)p < scratch.base + SCRATCH_BYTES)
        return;         /* freed with the arena */
    free(p);
}

void json_scratch_init(void)
{
    cJSON_Hooks hooks = { scratch_malloc, scratch_release };
    cJSON_InitHooks(&hooks);
    scratch_hooks = 1;
}

/* whole: s[n] is a NUL and nothing but white space may follow the value
 * (*end tells where parsing stopped). */
static cJSON *parse_scratch(const char *s, size_t n, int whole, const char **end)
{
    int arena = scratch_hooks && !scratch.live && (scratch.base || (scratch.base = malloc(SCRATCH_BYTES)));
    if (arena) {
        scratch.used = 0;
        scratch.parsing = 1;
    }
    cJSON *tree = whole ? cJSON_ParseWithLengthOpts(s, n + 1, end, 1) : cJSON_ParseWithLength(s, n);
    if (arena) {
        scratch.parsing = 0;
        scratch.live = tree != NULL;
    }
    return tree;
}

cJSON *json_parse_scratch(const char *s, size_t n)
{
    return parse_scratch(s, n, 0, NULL);
}

cJSON *json_parse_scratch_whole(const char *s, size_t n, const char **end)
{
    return parse_scratch(s, n, 1, end);
}

void json_scratch_free(cJSON *tree)
{
    if (!tree)
        return;
    if (scratch.base && (char *)tree >= scratch.base && (char *)tree < scratch.base + SCRATCH_BYTES)
        scratch.live = 0;
    cJSON_Delete(tree);     /* frees the nodes that did not fit */
}

void json_scratch_thread_end(void)
{
    free(scratch.base);
    scratch.base = NULL;
    scratch.used = 0;
    scratch.live = 0;
}
