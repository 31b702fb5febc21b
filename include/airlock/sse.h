/* sse.h — an incremental Server-Sent Events parser: feed it bytes as they
 * arrive, in any split, and it calls back once per complete event with the
 * event's data (data lines joined by '\n'). Comments and other fields are
 * dropped. An incomplete event at end of stream is discarded, as the spec says. */
#ifndef AIRLOCK_SSE_H
#define AIRLOCK_SSE_H

#include <stddef.h>
#include "airlock/util.h"

#define SSE_MAX_EVENT (1u << 20)

struct sse_parser {
    struct buf line;        /* the line being read */
    struct buf data;        /* data of the event being read */
    int has_data;           /* a data field was seen in this event */
    int after_cr;           /* last byte was '\r': a following '\n' belongs to it */
    unsigned events;
};

/* Called for each complete event; return 0 to go on, non-zero to stop
 * (sse_feed then returns that value). */
typedef int (*sse_event_fn)(void *ctx, const char *data, size_t len);

/* Returns 0; the callback's non-zero value; or -1 when a line or event grows
 * past SSE_MAX_EVENT or memory runs out. */
int sse_feed(struct sse_parser *p, const char *bytes, size_t len, sse_event_fn fn, void *ctx);
void sse_reset(struct sse_parser *p);
void sse_free(struct sse_parser *p);

#endif
