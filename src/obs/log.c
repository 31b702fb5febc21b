/* log.c — one JSON line per request on stderr (ids, route, level, each
 * attempt's backend and outcome, status, latency, bytes), plus plain event
 * lines. Never prompt or completion text, never keys, never matched PII:
 * only names and numbers from the config and the exchange's bookkeeping. */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "airlock/exchange.h"
#include "airlock/server.h"

const char *outcome_name(enum outcome o)
{
    static const char *const names[] = {
        [OUT_NONE] = "skipped", [OUT_OK] = "ok", [OUT_POLICY] = "policy_refused",
        [OUT_CONNECT] = "connect_error", [OUT_TIMEOUT] = "timeout", [OUT_5XX] = "5xx",
        [OUT_429] = "429", [OUT_CONTEXT_LENGTH] = "context_length",
        [OUT_BAD_RESPONSE] = "bad_response", [OUT_CLIENT_ERROR] = "client_error",
        [OUT_ABORTED] = "client_aborted",
    };
    return (unsigned)o < sizeof names / sizeof names[0] ? names[o] : "unknown";
}

/* ".ddd" for v (0-999), and a NUL after it: the fraction of the timestamp
 * and of the request's milliseconds. */
static void thousandths(char out[5], unsigned v)
{
    out[0] = '.';
    out[1] = (char)('0' + v / 100 % 10);
    out[2] = (char)('0' + v / 10 % 10);
    out[3] = (char)('0' + v % 10);
    out[4] = '\0';
}

/* ISO 8601 UTC with milliseconds; the date and time part is formatted once
 * per second per thread (gmtime_r and strftime showed in profiles). */
static void timestamp(char *out, size_t n)
{
    static __thread time_t cached_sec = -1;
    static __thread char cached[32];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (ts.tv_sec != cached_sec) {
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        if (strftime(cached, sizeof cached, "%Y-%m-%dT%H:%M:%S", &tm) == 0)
            cached[0] = 0;
        cached_sec = ts.tv_sec;
    }
    char frac[6];
    thousandths(frac, (unsigned)(ts.tv_nsec / 1000000));
    frac[4] = 'Z';
    frac[5] = '\0';
    size_t len = strlen(cached);
    if (len + sizeof frac > n)
        len = 0;
    memcpy(out, cached, len);
    memcpy(out + len, frac, sizeof frac);
}

/* Writes whole lines, at most 4 KiB per write; gives up on an error. */
static void write_all(const char *p, size_t len)
{
    size_t off = 0;
    while (off < len) {
        size_t n = len - off;
        if (n > 4096) {
            const char *cut = memrchr(p + off, '\n', 4096);
            n = cut ? (size_t)(cut - (p + off)) + 1 : 4096;
        }
        ssize_t k = write(STDERR_FILENO, p + off, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;              /* stderr gone: the lines are dropped */
        off += (size_t)k;
    }
}

/* ---- the writer ----
 * stderr is written by a thread of its own. A reader that stops reading (a
 * stalled journald, a pipe nobody drains) would otherwise block the worker
 * that writes, and every request on it, at the first full pipe. Lines wait
 * in one buffer of at most `pending_max` bytes; lines past it are dropped,
 * counted, and the count is logged once stderr takes lines again. The
 * writer sleeps until lines wait, then gathers for LOG_BATCH_MS: one
 * wake-up per batch under load, none when idle. Before log_start() and
 * after log_stop(), lines are written at once by the thread that has them. */
#define LOG_BATCH_MS 10

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t log_cv = PTHREAD_COND_INITIALIZER;
static struct buf log_pending;
static size_t log_pending_max;
static unsigned long log_dropped;
static int log_running, log_stopping;
static pthread_t log_thread;

static void event_line(struct buf *b, const char *level, const char *msg)
{
    char ts[40];
    timestamp(ts, sizeof ts);
    buf_appendf(b, "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":", ts, level);
    buf_append_json_string(b, msg);
    buf_puts(b, "}\n");
}

static unsigned long count_lines(const struct buf *b)
{
    unsigned long n = 0;
    for (const char *p = b->data, *end = b->data + b->len; (p = memchr(p, '\n', (size_t)(end - p))); p++)
        n++;
    return n;
}

static void *log_writer(void *arg)
{
    struct buf out = { 0 };
    (void)arg;
    pthread_mutex_lock(&log_mu);
    for (;;) {
        while (!log_pending.len && !log_dropped && !log_stopping)
            pthread_cond_wait(&log_cv, &log_mu);
        if (!log_pending.len && !log_dropped)
            break;              /* stopping, and all written */
        if (!log_stopping) {
            pthread_mutex_unlock(&log_mu);
            struct timespec gather = { 0, LOG_BATCH_MS * 1000000L };
            nanosleep(&gather, NULL);
            pthread_mutex_lock(&log_mu);
        }
        struct buf t = log_pending;
        log_pending = out;
        out = t;
        unsigned long dropped = log_dropped;
        log_dropped = 0;
        pthread_mutex_unlock(&log_mu);
        write_all(out.data, out.len);
        out.len = 0;
        if (dropped) {
            char msg[128];
            snprintf(msg, sizeof msg, "%lu log lines dropped: stderr did not take them in time", dropped);
            event_line(&out, "warn", msg);
            write_all(out.data, out.len);
            out.len = 0;
        }
        pthread_mutex_lock(&log_mu);
    }
    log_running = 0;
    pthread_mutex_unlock(&log_mu);
    buf_free(&out);
    return NULL;
}

int log_start(size_t pending_max)
{
    pthread_mutex_lock(&log_mu);
    log_pending_max = pending_max;
    log_stopping = 0;
    log_running = pthread_create(&log_thread, NULL, log_writer, NULL) == 0;
    int ok = log_running;
    pthread_mutex_unlock(&log_mu);
    return ok ? 0 : -1;
}

int log_stop(long wait_ms)
{
    pthread_mutex_lock(&log_mu);
    int running = log_running;
    log_stopping = 1;
    pthread_cond_signal(&log_cv);
    pthread_mutex_unlock(&log_mu);
    if (!running)
        return 0;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += wait_ms / 1000;
    until.tv_nsec += (wait_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    if (pthread_timedjoin_np(log_thread, NULL, &until) != 0)
        return -1;              /* stuck in a write: left behind at exit */
    pthread_mutex_lock(&log_mu);
    buf_free(&log_pending);
    pthread_mutex_unlock(&log_mu);
    return 0;
}

void log_flush(struct buf *lines)
{
    if (!lines->len)
        return;
    pthread_mutex_lock(&log_mu);
    if (!log_running) {
        pthread_mutex_unlock(&log_mu);
        write_all(lines->data, lines->len);
    } else {
        int was_empty = log_pending.len == 0;
        if (log_pending.len + lines->len > log_pending_max ||
            buf_append(&log_pending, lines->data, lines->len) < 0)
            log_dropped += count_lines(lines);
        else if (was_empty)
            pthread_cond_signal(&log_cv);
        pthread_mutex_unlock(&log_mu);
    }
    lines->len = 0;
}

void log_exchange(const struct exchange *ex)
{
    const struct config *cfg = ex->cfg;
    char ts[40];
    struct buf *lines = &ex->worker->log;
    size_t start = lines->len;
    /* The line goes straight into the worker's buffer; a line cut short by
     * a failed allocation is taken back out, never written half. */
    struct buf b = *lines;
    timestamp(ts, sizeof ts);
    int rc = buf_puts(&b, "{\"ts\":\"");
    rc |= buf_puts(&b, ts);
    rc |= buf_puts(&b, "\",\"msg\":\"request\",\"request_id\":");
    rc |= buf_append_json_string(&b, ex->request_id);
    if (ex->request_id_replaced)
        rc |= buf_puts(&b, ",\"request_id_replaced\":true");
    rc |= buf_puts(&b, ",\"method\":");
    rc |= buf_append_json_string(&b, ex->log_redact_method ? "[redacted]" : ex->method);
    rc |= buf_puts(&b, ",\"path\":");
    rc |= buf_append_json_string(&b, ex->log_redact_path ? "[redacted]" : ex->path);
    rc |= buf_puts(&b, ",\"status\":");
    rc |= buf_append_u64(&b, ex->response_status);
    if (ex->endpoint == EP_CHAT || ex->endpoint == EP_EMBEDDINGS || ex->endpoint == EP_EXPLAIN) {
        rc |= buf_puts(&b, ",\"level\":");
        rc |= buf_append_json_string(&b, cfg->levels[ex->level]);
        rc |= buf_puts(&b, ",\"route\":");
        if (ex->plan.route)
            rc |= buf_append_json_string(&b, ex->plan.route->name);
        else
            rc |= buf_puts(&b, "null");
        rc |= buf_puts(&b, ex->stream ? ",\"stream\":true,\"detectors\":[" : ",\"stream\":false,\"detectors\":[");
        for (int i = 0; i < ex->cls.n_hits; i++) {
            rc |= buf_puts(&b, i ? ",{\"name\":" : "{\"name\":");
            rc |= buf_append_json_string(&b, ex->cls.hits[i].detector);
            rc |= buf_puts(&b, ",\"count\":");
            rc |= buf_append_u64(&b, ex->cls.hits[i].count);
            rc |= buf_puts(&b, "}");
        }
        rc |= buf_puts(&b, "],\"attempts\":[");
        for (int i = 0; i < ex->n_tries; i++) {
            const struct attempt_record *t = &ex->tries[i];
            rc |= buf_puts(&b, i ? ",{\"backend\":" : "{\"backend\":");
            rc |= buf_append_json_string(&b, cfg->backends[t->backend].name);
            rc |= buf_puts(&b, ",\"outcome\":\"");
            rc |= buf_puts(&b, outcome_name(t->outcome));
            rc |= buf_puts(&b, "\",\"status\":");
            rc |= buf_append_u64(&b, t->status < 0 ? 0 : (uint64_t)t->status);
            rc |= buf_puts(&b, ",\"ms\":");
            rc |= buf_append_u64(&b, t->ms);
            rc |= buf_puts(&b, ",\"detail\":");
            rc |= buf_append_json_string(&b, t->detail);
            rc |= buf_puts(&b, "}");
        }
        rc |= buf_puts(&b, "]");
        if (ex->dropped_events) {
            rc |= buf_puts(&b, ",\"dropped_events\":");
            rc |= buf_append_u64(&b, ex->dropped_events);
        }
    }
    if (ex->ended_early)
        rc |= buf_puts(&b, ",\"aborted\":true");
    uint64_t us = now_us() - ex->started_us;
    char ms_frac[5];
    thousandths(ms_frac, (unsigned)(us % 1000));
    rc |= buf_puts(&b, ",\"bytes_in\":");
    rc |= buf_append_u64(&b, ex->bytes_in);
    rc |= buf_puts(&b, ",\"bytes_out\":");
    rc |= buf_append_u64(&b, ex->bytes_out);
    rc |= buf_puts(&b, ",\"ms\":");
    rc |= buf_append_u64(&b, us / 1000);
    rc |= buf_puts(&b, ms_frac);
    rc |= buf_puts(&b, "}\n");
    *lines = b;
    if (rc < 0)
        lines->len = start;
    if (lines->len >= 16384)
        log_flush(lines);
}

void log_event(const char *level, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    struct buf b = { 0 };
    event_line(&b, level, msg);
    log_flush(&b);              /* nothing when the line could not be built */
    buf_free(&b);
}
