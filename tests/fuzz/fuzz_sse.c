/* fuzz_sse.c — libFuzzer target for the SSE parser (upstream/sse.c): the same
 * byte stream, fed whole, one byte at a time and in splits chosen by the
 * input, must give the same events, and those must match a small reference
 * parser written straight from the WHATWG rules the parser implements.
 *
 * Input layout: byte 0 = flags (low 4 bits: number of split points; bit 4:
 * stop the callback at event k = byte 1), then that many split bytes, then
 * the stream itself. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "airlock/sse.h"

#define MAX_SPLITS 15

/* Every event as (length, bytes), appended to one buffer, so two runs can be
 * compared with memcmp. */
struct record {
    struct buf events;
    unsigned n;
    unsigned stop_at;           /* return non-zero at this event (1-based); 0 = never */
};

static int record_event(void *ctx, const char *data, size_t len)
{
    struct record *r = ctx;
    if (data == NULL)
        abort();                /* the contract: data is never NULL */
    if (memchr(data, '\r', len) != NULL)
        abort();                /* CR only ends lines; it can never reach the data */
    if (buf_append(&r->events, &len, sizeof len) < 0 || buf_append(&r->events, data, len) < 0)
        abort();
    r->n++;
    if (r->stop_at && r->n == r->stop_at)
        return 7;
    return 0;
}

/* Feeds `len` bytes in pieces ending at the given cut points (sorted, each
 * <= len). Returns what sse_feed last returned. */
static int feed_cuts(struct record *r, const char *s, size_t len, const size_t *cuts, int n_cuts)
{
    struct sse_parser p = { 0 };
    size_t at = 0;
    int rc = 0;
    for (int i = 0; i <= n_cuts && rc == 0; i++) {
        size_t end = i < n_cuts ? cuts[i] : len;
        rc = sse_feed(&p, s + at, end - at, record_event, r);
        at = end;
    }
    if (rc == 0 && p.events != r->n)
        abort();                /* the parser's own count agrees with the callbacks */
    sse_free(&p);
    return rc;
}

static int feed_bytewise(struct record *r, const char *s, size_t len)
{
    struct sse_parser p = { 0 };
    int rc = 0;
    for (size_t i = 0; i < len && rc == 0; i++)
        rc = sse_feed(&p, s + i, 1, record_event, r);
    sse_free(&p);
    return rc;
}

/* The reference: whole input, lines ending in CRLF, LF or CR; blank line
 * dispatches when a data field was seen; only "data" fields count; one
 * leading space of the value is dropped; an unterminated tail is ignored. */
static void reference(struct record *r, const char *s, size_t len)
{
    struct buf data = { 0 };
    int has_data = 0;
    size_t i = 0;
    while (i < len) {
        size_t end = i;
        while (end < len && s[end] != '\r' && s[end] != '\n')
            end++;
        if (end == len)
            break;              /* unterminated line */
        size_t next = end + 1;
        if (s[end] == '\r' && next < len && s[next] == '\n')
            next++;
        const char *line = s + i;
        size_t line_len = end - i;
        i = next;

        if (line_len == 0) {
            if (has_data && record_event(r, data.data ? data.data : "", data.len) != 0)
                break;
            data.len = 0;
            has_data = 0;
            continue;
        }
        if (line[0] == ':')
            continue;
        const char *colon = memchr(line, ':', line_len);
        size_t name_len = colon ? (size_t)(colon - line) : line_len;
        if (name_len != 4 || memcmp(line, "data", 4) != 0)
            continue;
        const char *value = colon ? colon + 1 : line + line_len;
        size_t value_len = (size_t)(line + line_len - value);
        if (value_len > 0 && value[0] == ' ') {
            value++;
            value_len--;
        }
        if ((has_data && buf_append(&data, "\n", 1) < 0) || buf_append(&data, value, value_len) < 0)
            abort();
        has_data = 1;
    }
    buf_free(&data);
}

static int cmp_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : x > y;
}

static void same(const struct record *a, const struct record *b, const char *what)
{
    if (a->n != b->n || a->events.len != b->events.len ||
        (a->events.len && memcmp(a->events.data, b->events.data, a->events.len) != 0)) {
        fprintf(stderr, "fuzz_sse: %s differs: %u vs %u events\n", what, a->n, b->n);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t size)
{
    if (size < 1)
        return 0;
    int n_cuts = in[0] & 0x0f;
    int stop = (in[0] & 0x10) != 0;
    size_t header = 1 + (size_t)n_cuts + (stop ? 1 : 0);
    if (size < header)
        return 0;
    unsigned stop_at = stop ? (unsigned)in[1 + n_cuts] % 8 + 1 : 0;
    const char *s = (const char *)in + header;
    size_t len = size - header;

    size_t cuts[MAX_SPLITS];
    for (int i = 0; i < n_cuts; i++)
        cuts[i] = len ? (size_t)in[1 + i] * len / 255 : 0;
    qsort(cuts, (size_t)n_cuts, sizeof cuts[0], cmp_size);

    struct record whole = { .stop_at = stop_at }, split = { .stop_at = stop_at },
                  bytewise = { .stop_at = stop_at }, ref = { .stop_at = stop_at };

    int rc_whole = feed_cuts(&whole, s, len, NULL, 0);
    int rc_split = feed_cuts(&split, s, len, cuts, n_cuts);
    int rc_bytes = feed_bytewise(&bytewise, s, len);
    reference(&ref, s, len);

    /* Inputs are far below SSE_MAX_EVENT, so the only non-zero return is the
     * callback's own, and it must come back unchanged. */
    int want = stop_at && ref.n == stop_at ? 7 : 0;
    if (rc_whole != want || rc_split != want || rc_bytes != want) {
        fprintf(stderr, "fuzz_sse: rc whole=%d split=%d bytewise=%d, want %d\n",
                rc_whole, rc_split, rc_bytes, want);
        abort();
    }
    same(&whole, &ref, "whole vs reference");
    same(&split, &whole, "split vs whole");
    same(&bytewise, &whole, "bytewise vs whole");

    /* A reset parser behaves like a fresh one. */
    struct sse_parser p = { 0 };
    struct record again = { 0 }, fresh = { 0 };
    if (sse_feed(&p, s, len / 2, record_event, &again) != 0)
        abort();
    sse_reset(&p);
    again.events.len = 0;
    again.n = 0;
    if (sse_feed(&p, s, len, record_event, &again) != 0)
        abort();
    sse_free(&p);
    if (feed_cuts(&fresh, s, len, NULL, 0) != 0)
        abort();
    same(&again, &fresh, "after reset");

    buf_free(&whole.events);
    buf_free(&split.events);
    buf_free(&bytewise.events);
    buf_free(&ref.events);
    buf_free(&again.events);
    buf_free(&fresh.events);
    return 0;
}
