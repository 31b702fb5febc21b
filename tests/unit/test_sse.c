/* test_sse.c — SSE framing: events split anywhere, every line ending,
 * comments, multi-line data, oversized events, incomplete tails. */
#include <stdlib.h>
#include "t.h"
#include "airlock/sse.h"

struct seen {
    char events[16][256];
    int n;
};

static int collect(void *ctx, const char *data, size_t len)
{
    struct seen *s = ctx;
    if (s->n < 16 && len < 256) {
        memcpy(s->events[s->n], data, len);
        s->events[s->n][len] = '\0';
    }
    s->n++;
    return 0;
}

static void feed_all(const char *text, size_t step, struct seen *s)
{
    struct sse_parser p = { 0 };
    size_t n = strlen(text);
    for (size_t i = 0; i < n; i += step) {
        size_t k = n - i < step ? n - i : step;
        CHECK(sse_feed(&p, text + i, k, collect, s) == 0);
    }
    sse_free(&p);
}

static void test_basic_events(void)
{
    struct seen s = { 0 };
    feed_all("data: {\"a\":1}\n\ndata: [DONE]\n\n", 1000, &s);
    CHECK(s.n == 2);
    CHECK_STR(s.events[0], "{\"a\":1}");
    CHECK_STR(s.events[1], "[DONE]");
}

static void test_any_split(void)
{
    const char *text = "data: one\r\n\r\n: comment\n\ndata:two\r\rdata: three\n\n";
    for (size_t step = 1; step < 12; step++) {
        struct seen s = { 0 };
        feed_all(text, step, &s);
        CHECK(s.n == 3);
        CHECK_STR(s.events[0], "one");
        CHECK_STR(s.events[1], "two");
        CHECK_STR(s.events[2], "three");
    }
}

static void test_multiline_and_fields(void)
{
    struct seen s = { 0 };
    feed_all("event: message\nid: 7\ndata: a\ndata: b\nretry: 10\n\n", 3, &s);
    CHECK(s.n == 1);
    CHECK_STR(s.events[0], "a\nb");
}

static void test_comment_only_and_empty_data(void)
{
    struct seen s = { 0 };
    feed_all(": keep-alive\n\n\n\ndata\n\n", 2, &s);
    CHECK(s.n == 1);            /* "data" with no colon is an empty data field */
    CHECK_STR(s.events[0], "");
}

static void test_incomplete_tail_dropped(void)
{
    struct seen s = { 0 };
    feed_all("data: whole\n\ndata: partial", 5, &s);
    CHECK(s.n == 1);
}

static int stop_at_first(void *ctx, const char *data, size_t len)
{
    (void)ctx; (void)data; (void)len;
    return 7;
}

static void test_callback_stops(void)
{
    struct sse_parser p = { 0 };
    CHECK(sse_feed(&p, "data: x\n\ndata: y\n\n", 18, stop_at_first, NULL) == 7);
    sse_free(&p);
}

static void test_oversized_event(void)
{
    struct sse_parser p = { 0 };
    struct seen s = { 0 };
    size_t n = SSE_MAX_EVENT + 16;
    char *big = malloc(n);
    memset(big, 'x', n);
    memcpy(big, "data: ", 6);
    CHECK(sse_feed(&p, big, n, collect, &s) == -1);
    CHECK(s.n == 0);
    free(big);
    sse_free(&p);
}

int main(void)
{
    RUN(test_basic_events);
    RUN(test_any_split);
    RUN(test_multiline_and_fields);
    RUN(test_comment_only_and_empty_data);
    RUN(test_incomplete_tail_dropped);
    RUN(test_callback_stops);
    RUN(test_oversized_event);
    TEST_DONE();
}
