/* relay.c — relays an upstream SSE stream to the client event by event.
 * Events are held back until the first one that carries content (so a
 * failure before it can still fall back), malformed events are dropped, an
 * in-stream error stops the attempt, and a slow client pauses the upstream
 * transfer instead of growing memory. */
#include <stdio.h>
#include <string.h>

#include "airlock/exchange.h"
#include "airlock/server.h"
#include "upstream/attempt.h"

#define HIGH_WATER (256 * 1024)     /* pause the upstream above this */
#define LOW_WATER (64 * 1024)       /* resume it below this */
#define HOLD_LIMIT (16 * 1024)      /* commit even without content past this */
#define FINISH_GRACE_MS 500         /* after finish_reason, wait this long for [DONE] */

void relay_reset(struct exchange *ex)
{
    sse_reset(&ex->sse);
    ex->held.len = 0;
    ex->saw_finish = ex->saw_done = ex->saw_content = 0;
}

int relay_would_block(const struct exchange *ex)
{
    return ex->committed && ex->out.len - ex->out_off > HIGH_WATER;
}

/* Writes one event, each line of its data behind its own "data: ". */
static int emit(struct buf *b, const char *data, size_t len)
{
    size_t i = 0;
    do {
        const char *nl = memchr(data + i, '\n', len - i);
        size_t end = nl ? (size_t)(nl - data) : len;
        if (buf_puts(b, "data: ") < 0 || buf_append(b, data + i, end - i) < 0 ||
            buf_puts(b, "\n") < 0)
            return -1;
        i = end + 1;
    } while (i < len);
    return buf_puts(b, "\n");
}

static void inspect_choices(struct exchange *ex, const cJSON *chunk)
{
    const cJSON *choices = cJSON_GetObjectItemCaseSensitive(chunk, "choices");
    const cJSON *c;
    cJSON_ArrayForEach(c, choices) {
        const cJSON *fr = cJSON_GetObjectItemCaseSensitive(c, "finish_reason");
        if (cJSON_IsString(fr))
            ex->saw_finish = 1;
        const cJSON *delta = cJSON_GetObjectItemCaseSensitive(c, "delta");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(delta, "content");
        if ((cJSON_IsString(content) && content->valuestring[0]) ||
            cJSON_GetObjectItemCaseSensitive(delta, "tool_calls") ||
            cJSON_GetObjectItemCaseSensitive(delta, "function_call") ||
            cJSON_GetObjectItemCaseSensitive(delta, "reasoning_content"))
            ex->saw_content = 1;
    }
}

#define EVENT_DONE 1
#define EVENT_STOP 2

static int on_event(void *ctx, const char *data, size_t len)
{
    struct exchange *ex = ctx;
    if (len == 6 && memcmp(data, "[DONE]", 6) == 0) {
        ex->saw_done = 1;
        if (!ex->saw_finish) {
            /* a server that gave up mid-answer may still say [DONE]
             * (a generator's `finally:`): without finish_reason the
             * answer is not complete, whatever the framing says */
            attempt_fail(ex, OUT_BAD_RESPONSE, "[DONE] before any finish_reason");
            return EVENT_STOP;
        }
        return EVENT_DONE;
    }
    cJSON *chunk = json_parse_scratch(data, len);
    if (!chunk || !cJSON_IsObject(chunk)) {
        json_scratch_free(chunk);
        ex->dropped_events++;
        return 0;
    }
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(chunk, "error");
    if (err && !cJSON_IsNull(err)) {
        json_scratch_free(chunk);
        attempt_fail(ex, OUT_BAD_RESPONSE, "error event in the stream");
        return EVENT_STOP;
    }
    inspect_choices(ex, chunk);
    json_scratch_free(chunk);
    if (emit(ex->committed ? &ex->out : &ex->held, data, len) < 0) {
        attempt_fail(ex, OUT_BAD_RESPONSE, "out of memory");
        return EVENT_STOP;
    }
    if (!ex->committed && (ex->saw_content || ex->saw_finish || ex->held.len > HOLD_LIMIT)) {
        if (relay_commit(ex) < 0) {
            attempt_fail(ex, OUT_BAD_RESPONSE, "out of memory");
            return EVENT_STOP;
        }
    }
    relay_wake_client(ex);
    return 0;
}

int relay_feed(struct exchange *ex, const char *data, size_t len)
{
    if (ex->saw_done)
        return 0;               /* anything after [DONE] is ignored */
    int rc = sse_feed(&ex->sse, data, len, on_event, ex);
    if (ex->saw_finish) {
        /* The answer is complete; a server that never sends [DONE] (or never
         * closes) must not hold the client: finish within the grace time. */
        uint64_t grace = now_ms() + FINISH_GRACE_MS;
        if (!ex->idle_deadline || grace < ex->idle_deadline)
            ex->idle_deadline = grace;
        worker_note_deadline(ex->worker, ex->idle_deadline);
    }
    if (rc == 0 || rc == EVENT_DONE)
        return 0;
    if (rc == -1)
        attempt_fail(ex, OUT_BAD_RESPONSE, "stream event too large or out of memory");
    return -1;
}

enum outcome relay_verdict(struct exchange *ex, char *detail, size_t n)
{
    if (ex->saw_finish)
        return OUT_OK;
    snprintf(detail, n, "stream ended before finish_reason");
    return OUT_BAD_RESPONSE;
}

int relay_commit(struct exchange *ex)
{
    if (ex->committed)
        return 0;
    if (buf_append(&ex->out, ex->held.data ? ex->held.data : "", ex->held.len) < 0)
        return -1;
    ex->held.len = 0;
    /* The block is calloc'ed per response and only an HTTP/1.0 client reads
     * through it (chunks go through the connection's own buffer): 32 KiB of
     * it was 7 % of a short stream's CPU. */
    struct MHD_Response *r =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, proxy_stream_reader, ex, NULL);
    if (!r)
        return -1;
    ex->committed = 1;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    MHD_add_response_header(r, "X-Accel-Buffering", "no");
    respond_ready(ex, r, 200);
    return 0;
}

void relay_finish(struct exchange *ex, int ok, const char *message)
{
    if (ok) {
        buf_puts(&ex->out, "data: [DONE]\n\n");
    } else {
        struct buf e = { 0 };
        buf_puts(&e, "{\"error\":{\"message\":");
        buf_append_json_string(&e, message);
        buf_puts(&e, ",\"type\":\"upstream_error\",\"param\":null,\"code\":\"stream_interrupted\"}}");
        if (e.data)
            emit(&ex->out, e.data, e.len);
        buf_free(&e);
    }
    ex->out_finished = 1;
    relay_wake_client(ex);
}

void relay_wake_client(struct exchange *ex)
{
    if (ex->state == EX_STREAMING)
        exchange_resume(ex);
}

ssize_t proxy_stream_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct exchange *ex = cls;
    (void)pos;
    if (ex->client_gone)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    size_t avail = ex->out.len - ex->out_off;
    if (avail) {
        size_t n = avail < max ? avail : max;
        memcpy(buf, ex->out.data + ex->out_off, n);
        ex->out_off += n;
        if (ex->out_off == ex->out.len)
            ex->out.len = ex->out_off = 0;
        ex->bytes_out += n;
        if (ex->paused && ex->out.len - ex->out_off < LOW_WATER && !ex->on_unpause_list) {
            struct worker *w = ex->worker;
            ex->unpause_next = w->unpause;
            w->unpause = ex;
            ex->on_unpause_list = 1;
        }
        return (ssize_t)n;
    }
    if (ex->out_finished)
        return MHD_CONTENT_READER_END_OF_STREAM;
    if (exchange_suspend(ex) < 0) {
        exchange_abandon(ex);       /* it hung up between two chunks */
        return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    return 0;
}
