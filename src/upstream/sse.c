/* sse.c — Server-Sent Events framing (WHATWG HTML, "event stream
 * interpretation"): lines end in CRLF, LF or CR; a blank line dispatches the
 * event; "data" lines accumulate; lines starting with ':' are comments. */
#include <string.h>

#include "airlock/sse.h"

static int sse_line(struct sse_parser *p, sse_event_fn fn, void *ctx)
{
    const char *line = p->line.data ? p->line.data : "";
    size_t len = p->line.len;

    if (len == 0) {             /* blank line: dispatch */
        int rc = 0;
        if (p->has_data) {
            p->events++;
            rc = fn(ctx, p->data.data ? p->data.data : "", p->data.len);
        }
        p->data.len = 0;
        p->has_data = 0;
        return rc;
    }
    if (line[0] == ':')
        return 0;

    const char *colon = memchr(line, ':', len);
    size_t name_len = colon ? (size_t)(colon - line) : len;
    if (name_len != 4 || memcmp(line, "data", 4) != 0)
        return 0;               /* event:, id:, retry: and unknown fields */

    const char *value = colon ? colon + 1 : line + len;
    size_t value_len = (size_t)(line + len - value);
    if (value_len && value[0] == ' ') {
        value++;
        value_len--;
    }
    if (p->has_data && buf_puts(&p->data, "\n") < 0)
        return -1;
    if (p->data.len + value_len > SSE_MAX_EVENT)
        return -1;
    if (buf_append(&p->data, value, value_len) < 0)
        return -1;
    p->has_data = 1;
    return 0;
}

int sse_feed(struct sse_parser *p, const char *bytes, size_t len, sse_event_fn fn, void *ctx)
{
    size_t i = 0;
    while (i < len) {
        char c = bytes[i];
        if (p->after_cr) {
            p->after_cr = 0;
            if (c == '\n') {
                i++;
                continue;
            }
        }
        if (c == '\n' || c == '\r') {
            p->after_cr = (c == '\r');
            int rc = sse_line(p, fn, ctx);
            p->line.len = 0;
            i++;
            if (rc)
                return rc;
            continue;
        }
        /* copy the run up to the next line end in one go */
        size_t j = i;
        while (j < len && bytes[j] != '\n' && bytes[j] != '\r')
            j++;
        if (p->line.len + (j - i) > SSE_MAX_EVENT)
            return -1;
        if (buf_append(&p->line, bytes + i, j - i) < 0)
            return -1;
        i = j;
    }
    return 0;
}

void sse_reset(struct sse_parser *p)
{
    p->line.len = 0;
    p->data.len = 0;
    p->has_data = 0;
    p->after_cr = 0;
    p->events = 0;
}

void sse_free(struct sse_parser *p)
{
    buf_free(&p->line);
    buf_free(&p->data);
    sse_reset(p);
}
