/* attempt.c — one try of one backend: the clearance check at the wire, the
 * curl easy handle, its callbacks, our own first-byte and idle deadlines,
 * and the verdict on how the try ended. What happens next (relay, fall
 * back, give up) is proxy.c's business. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "airlock/exchange.h"
#include "airlock/server.h"
#include "airlock/state.h"
#include "airlock/upstream.h"
#include "upstream/attempt.h"

#define MAX_ERROR_BODY (64 * 1024)
#define MAX_JSON_BODY (64u * 1024 * 1024)

#define RETRY_AFTER_MAX_MS (86400L * 1000)   /* a day; the cool-down is capped lower anyway */

/* Retry-After is delay-seconds or an HTTP date (RFC 9110 10.2.3): the
 * milliseconds from now it names, at most a day, or -1. A date is counted
 * against the real-time clock in milliseconds, so the cool-down ends at the
 * date itself, not up to a second after it. */
static long retry_after_ms(const char *v)
{
    if (*v >= '0' && *v <= '9') {
        char *end;
        unsigned long long s = strtoull(v, &end, 10);
        if (*end != '\0')
            return -1;
        return s > (unsigned long long)RETRY_AFTER_MAX_MS / 1000 ? RETRY_AFTER_MAX_MS : (long)s * 1000;
    }
    time_t at = curl_getdate(v, NULL);
    if (at == -1)
        return -1;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    long long left = (long long)at * 1000 - ((long long)now.tv_sec * 1000 + now.tv_nsec / 1000000);
    return left <= 0 ? 0 : left > RETRY_AFTER_MAX_MS ? RETRY_AFTER_MAX_MS : (long)left;
}

static size_t on_header(char *line, size_t size, size_t nitems, void *userdata)
{
    struct exchange *ex = userdata;
    size_t n = size * nitems;
    static const char ra[] = "retry-after:";
    if (n > sizeof ra && strncasecmp(line, ra, sizeof ra - 1) == 0) {
        /* the value, trimmed, printable ASCII only (it may be passed on) */
        const char *v = line + sizeof ra - 1, *e = line + n;
        while (v < e && (*v == ' ' || *v == '\t'))
            v++;
        while (e > v && (e[-1] == '\r' || e[-1] == '\n' || e[-1] == ' ' || e[-1] == '\t'))
            e--;
        size_t m = 0;
        int ok = e > v && (size_t)(e - v) < sizeof ex->retry_after_raw;
        for (const char *p = v; ok && p < e; p++)
            ok = *p >= 0x20 && *p < 0x7f;
        if (ok) {
            m = (size_t)(e - v);
            memcpy(ex->retry_after_raw, v, m);
            ex->retry_after_raw[m] = '\0';
            ex->retry_after_ms = retry_after_ms(ex->retry_after_raw);
            if (ex->retry_after_ms < 0)
                ex->retry_after_raw[0] = '\0';
        }
    }
    return n;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *userdata)
{
    struct exchange *ex = userdata;
    size_t n = size * nmemb;
    const struct backend *b = &ex->cfg->backends[ex->backend];
    uint64_t now = now_ms();

    if (!ex->got_first_byte) {
        ex->got_first_byte = 1;
        ex->first_byte_deadline = 0;
        curl_easy_getinfo(ex->easy, CURLINFO_RESPONSE_CODE, &ex->upstream_status);
    }
    int ok_status = ex->upstream_status >= 200 && ex->upstream_status < 300;
    if (ok_status && ex->stream) {
        if (relay_would_block(ex)) {
            ex->paused = 1;
            ex->idle_deadline = 0;  /* the client is slow, not the upstream */
            return CURL_WRITEFUNC_PAUSE;
        }
        ex->idle_deadline = now + (uint64_t)b->timeouts.idle_ms;
        worker_note_deadline(ex->worker, ex->idle_deadline);
        return relay_feed(ex, data, n) == 0 ? n : 0;
    }
    ex->idle_deadline = now + (uint64_t)b->timeouts.idle_ms;
    worker_note_deadline(ex->worker, ex->idle_deadline);
    size_t cap = ok_status ? MAX_JSON_BODY : MAX_ERROR_BODY;
    if (ex->upstream_resp.len + n > cap) {
        if (!ok_status)
            return n;           /* keep the head of an error body; it says enough */
        attempt_fail(ex, OUT_BAD_RESPONSE, "response body too large");
        return 0;
    }
    return buf_append(&ex->upstream_resp, data, n) == 0 ? n : 0;
}

struct curl_slist *upstream_add_auth(struct curl_slist *h, const struct backend *b)
{
    if (!b->api_key)
        return h;
    struct buf auth = { 0 };
    if (b->provider == PROVIDER_AZURE)
        buf_appendf(&auth, "api-key: %s", b->api_key);
    else
        buf_appendf(&auth, "Authorization: Bearer %s", b->api_key);
    if (auth.data) {
        h = curl_slist_append(h, auth.data);    /* the list keeps its own copy */
        explicit_bzero(auth.data, auth.len);
    }
    buf_free(&auth);
    return h;
}

static const char *const upstream_paths[UPSTREAM_N_PATHS] = {
    [UPSTREAM_CHAT] = "/chat/completions",
    [UPSTREAM_EMBEDDINGS] = "/embeddings",
};

void upstream_template_free(struct upstream_template *t)
{
    if (!t)
        return;
    for (int i = 0; i < UPSTREAM_N_PATHS; i++)
        curl_url_cleanup(t->url[i]);
    for (int stream = 0; stream < 2; stream++) {
        for (struct curl_slist *h = t->headers[stream]; h; h = h->next)
            explicit_bzero(h->data, strlen(h->data));   /* the key header */
        curl_slist_free_all(t->headers[stream]);
    }
    free(t);
}

struct upstream_template *upstream_template_build(const struct backend *b)
{
    struct upstream_template *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    int ok = 1;
    for (int i = 0; i < UPSTREAM_N_PATHS && ok; i++) {
        struct buf url = { 0 };
        ok = buf_appendf(&url, "%s%s", b->url, upstream_paths[i]) == 0 && (t->url[i] = curl_url()) &&
             curl_url_set(t->url[i], CURLUPART_URL, url.data, 0) == CURLUE_OK;
        if (ok && b->provider == PROVIDER_AZURE && b->api_version) {
            struct buf q = { 0 };   /* Azure routes by deployment in the URL, version in the query */
            ok = buf_appendf(&q, "api-version=%s", b->api_version) == 0 &&
                 curl_url_set(t->url[i], CURLUPART_QUERY, q.data, CURLU_APPENDQUERY | CURLU_URLENCODE) == CURLUE_OK;
            buf_free(&q);
        }
        buf_free(&url);
    }
    for (int stream = 0; stream < 2 && ok; stream++) {
        struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
        h = h ? curl_slist_append(h, "Expect:") : NULL;   /* no 100-continue round trip */
        h = h ? curl_slist_append(h, stream ? "Accept: text/event-stream" : "Accept: application/json") : NULL;
        struct curl_slist *with_key = h ? upstream_add_auth(h, b) : NULL;   /* NULL: out of memory */
        if (!with_key)
            curl_slist_free_all(h);
        ok = (t->headers[stream] = with_key) != NULL;
    }
    if (!ok) {
        upstream_template_free(t);
        return NULL;
    }
    return t;
}

/* The options an easy handle keeps from one request to the next to the same
 * endpoint of the same backend: worker_easy_get() says when they are set. */
static void set_standing_options(CURL *e, const struct backend *b, int path)
{
    curl_easy_setopt(e, CURLOPT_CURLU, b->tmpl->url[path]);
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, b->timeouts.connect_ms);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, b->timeouts.total_ms);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    if (b->zone == ZONE_LOCAL) {
        /* never route local traffic via a proxy; NOPROXY too spares curl
         * its two getenv("no_proxy") calls per transfer */
        curl_easy_setopt(e, CURLOPT_PROXY, "");
        curl_easy_setopt(e, CURLOPT_NOPROXY, "*");
    }
}

static int build_body(struct exchange *ex, const char *model)
{
    ex->upstream_body.len = 0;
    if (!model)
        return buf_append(&ex->upstream_body, ex->body.data, ex->body.len);
    if (body_with_model(&ex->upstream_body, ex->body.data, ex->body.len, model) == 0)
        return 0;
    /* the splicer declined (an escaped key): parse the body again (it was
     * checked and the tree dropped when the request was planned) and
     * re-serialize it */
    ex->upstream_body.len = 0;
    cJSON *copy = cJSON_ParseWithLength(ex->body.data, ex->body.len);
    if (!copy)
        return -1;
    cJSON_DeleteItemFromObjectCaseSensitive(copy, "model");
    cJSON_AddStringToObject(copy, "model", model);
    char *s = cJSON_PrintUnformatted(copy);
    cJSON_Delete(copy);
    if (!s)
        return -1;
    int rc = buf_append(&ex->upstream_body, s, strlen(s));
    cJSON_free(s);
    return rc;
}

static void record(struct exchange *ex, int backend, enum outcome o, const char *detail)
{
    if (ex->n_tries >= MAX_ATTEMPTS)
        return;
    struct attempt_record *t = &ex->tries[ex->n_tries++];
    memset(t, 0, sizeof(*t));
    t->backend = backend;
    t->outcome = o;
    if (detail)
        snprintf(t->detail, sizeof t->detail, "%s", detail);
}

int attempt_begin(struct exchange *ex, int k)
{
    const struct candidate *cand = &ex->plan.candidates[k];
    const struct config *cfg = ex->cfg;
    const struct backend *b = &cfg->backends[cand->backend];

    /* The invariant, at the last step before bytes go on the wire: whatever
     * the route said, a backend never receives a level above its clearance. */
    if (!clearance_allows(cfg, b, ex->level)) {
        record(ex, b->index, OUT_POLICY, "refused: level above clearance");
        log_event("warn", "request %s: clearance refused %s at the wire", ex->request_id, b->name);
        return -1;
    }
    if (build_body(ex, cand->model) < 0) {
        record(ex, b->index, OUT_BAD_RESPONSE, "out of memory");
        return -1;
    }

    int path = ex->endpoint == EP_EMBEDDINGS ? UPSTREAM_EMBEDDINGS : UPSTREAM_CHAT, standing;
    struct easy_tag tag = { cfg->serial, b->index, path };
    CURL *e = worker_easy_get(ex->worker, tag, &standing);
    if (!e) {
        record(ex, b->index, OUT_CONNECT, "out of memory");
        return -1;
    }
    if (!standing)
        set_standing_options(e, b, path);
    /* The request's own header, in front of the backend's constant list
     * (curl only reads the list; neither part is copied). */
    static const char name[] = "x-request-id: ";
    _Static_assert(sizeof ex->request_id_header >= sizeof name - 1 + sizeof ex->request_id,
                   "the request id header holds any request id");
    size_t id_len = strnlen(ex->request_id, sizeof ex->request_id - 1);     /* < 80: fits in 96 */
    memcpy(ex->request_id_header, name, sizeof name - 1);
    memcpy(ex->request_id_header + sizeof name - 1, ex->request_id, id_len + 1);
    ex->upstream_headers.data = ex->request_id_header;
    ex->upstream_headers.next = b->tmpl->headers[ex->stream ? 1 : 0];
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, &ex->upstream_headers);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, ex->upstream_body.data);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)ex->upstream_body.len);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, ex);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, ex);
    curl_easy_setopt(e, CURLOPT_PRIVATE, ex);

    ex->easy = e;
    ex->easy_tag = tag;
    ex->easy_clean_end = 0;
    ex->upstream_status = 0;
    ex->retry_after_ms = -1;
    ex->retry_after_raw[0] = '\0';
    ex->cur_candidate = k;
    ex->upstream_resp.len = 0;
    ex->got_first_byte = 0;
    ex->deadline_fired = 0;
    ex->fail_outcome = OUT_NONE;
    ex->paused = 0;
    relay_reset(ex);
    ex->backend = b->index;
    ex->attempt_started_us = now_us();
    record(ex, b->index, OUT_NONE, NULL);
    ex->first_byte_deadline = now_ms() + (uint64_t)b->timeouts.first_byte_ms;
    ex->idle_deadline = 0;
    worker_track(ex->worker, ex);
    worker_note_deadline(ex->worker, ex->first_byte_deadline);
    if (worker_add_transfer(ex->worker, e) < 0) {
        attempt_release(ex);
        struct attempt_record *t = &ex->tries[ex->n_tries - 1];
        t->outcome = OUT_CONNECT;
        snprintf(t->detail, sizeof t->detail, "cannot start transfer");
        return -1;
    }
    return 0;
}

void attempt_release(struct exchange *ex)
{
    if (ex->easy) {
        worker_remove_transfer(ex->worker, ex->easy);
        /* only a transfer that ended cleanly leaves options worth keeping */
        struct easy_tag none = { 0, -1, -1 };
        worker_easy_put(ex->worker, ex->easy, ex->easy_clean_end ? ex->easy_tag : none);
        ex->easy = NULL;
    }
    ex->paused = 0;
    ex->first_byte_deadline = ex->idle_deadline = 0;
    worker_untrack(ex->worker, ex);
}

void attempt_fail(struct exchange *ex, enum outcome o, const char *detail)
{
    if (ex->fail_outcome != OUT_NONE)
        return;
    ex->fail_outcome = o;
    snprintf(ex->fail_detail, sizeof ex->fail_detail, "%s", detail);
}

static enum outcome from_curl(CURLcode rc)
{
    switch (rc) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
        return OUT_CONNECT;
    case CURLE_OPERATION_TIMEDOUT:
        return OUT_TIMEOUT;
    default:
        return OUT_BAD_RESPONSE;
    }
}

/* Was the connection (and its TLS handshake, for https) established? A
 * pooled connection reports no connect time, but the request went out on
 * it: a timeout then is total_ms, not connect_ms. */
static int connected(struct exchange *ex)
{
    long sent = 0;
    if (curl_easy_getinfo(ex->easy, CURLINFO_REQUEST_SIZE, &sent) == CURLE_OK && sent > 0)
        return 1;
    curl_off_t tcp = 0, tls = 0;
    curl_easy_getinfo(ex->easy, CURLINFO_CONNECT_TIME_T, &tcp);
    if (tcp <= 0)
        return 0;
    if (strncasecmp(ex->cfg->backends[ex->backend].url, "https:", 6) != 0)
        return 1;
    curl_easy_getinfo(ex->easy, CURLINFO_APPCONNECT_TIME_T, &tls);
    return tls > 0;
}

enum outcome attempt_verdict(struct exchange *ex, CURLcode rc)
{
    struct attempt_record *t = &ex->tries[ex->n_tries - 1];
    enum outcome o;
    long st = ex->upstream_status;

    if (!st && ex->easy)
        curl_easy_getinfo(ex->easy, CURLINFO_RESPONSE_CODE, &st);
    ex->upstream_status = st;
    t->status = st;
    t->ms = (now_us() - ex->attempt_started_us) / 1000;

    /* A stream that carried its finish_reason is complete, whatever then
     * happened to its connection (reset, no last chunk, total_ms). */
    if (rc != CURLE_OK && ex->stream && ex->saw_finish && ex->fail_outcome == OUT_NONE &&
        st >= 200 && st < 300)
        rc = CURLE_OK;

    if (ex->fail_outcome != OUT_NONE) {
        o = ex->fail_outcome;
        snprintf(t->detail, sizeof t->detail, "%s", ex->fail_detail);
    } else if (rc == CURLE_OPERATION_TIMEDOUT && ex->easy && !connected(ex)) {
        /* curl says "timeout" for connect_ms too; that is the connect trigger */
        o = OUT_CONNECT;
        snprintf(t->detail, sizeof t->detail, "no connection within connect_ms=%ld",
                 ex->cfg->backends[ex->backend].timeouts.connect_ms);
    } else if (rc == CURLE_UNSUPPORTED_PROTOCOL && ex->easy && connected(ex)) {
        /* curl's word for an answer with no HTTP status line (HTTP/0.9,
         * garbage): the server was reached, its answer is what is wrong */
        o = OUT_BAD_RESPONSE;
        snprintf(t->detail, sizeof t->detail, "an answer that is not HTTP");
    } else if (rc == CURLE_OUT_OF_MEMORY && st) {
        o = OUT_BAD_RESPONSE;   /* curl's code for a header line over its 100 KB, too */
        snprintf(t->detail, sizeof t->detail, "a response header over 100 KB, or out of memory");
    } else if (rc != CURLE_OK) {
        o = from_curl(rc);
        snprintf(t->detail, sizeof t->detail, "%s", curl_easy_strerror(rc));
    } else if (st >= 200 && st < 300) {
        o = ex->stream ? relay_verdict(ex, t->detail, sizeof t->detail) : OUT_OK;
        /* An answer has what its endpoint promises: choices for a chat, data
         * for embeddings. {}, null, "choices": [] or vLLM's own error object
         * are a failure, never a success passed on. */
        unsigned keys = 0, want = ex->endpoint == EP_EMBEDDINGS ? JSON_KEY_DATA : JSON_KEY_CHOICES;
        if (!ex->stream && json_check(ex->upstream_resp.data, ex->upstream_resp.len, &keys) < 0) {
            o = OUT_BAD_RESPONSE;
            snprintf(t->detail, sizeof t->detail, "HTTP %ld with a body that is not JSON", st);
        } else if (!ex->stream && !(keys & want)) {
            o = OUT_BAD_RESPONSE;
            snprintf(t->detail, sizeof t->detail, "HTTP %ld %s", st,
                     keys & JSON_KEY_ERROR ? "carrying an error object"
                     : want == JSON_KEY_DATA ? "with no embeddings (data)" : "with no choices");
        }
    } else if (is_context_length_error(st, ex->upstream_resp.data, ex->upstream_resp.len)) {
        o = OUT_CONTEXT_LENGTH;
        snprintf(t->detail, sizeof t->detail, "HTTP %ld context length exceeded", st);
    } else if (st == 429) {
        o = OUT_429;
        snprintf(t->detail, sizeof t->detail, "HTTP 429 rate limited");
    } else if (st >= 500) {
        o = OUT_5XX;
        snprintf(t->detail, sizeof t->detail, "HTTP %ld", st);
    } else if (st >= 400) {
        o = OUT_CLIENT_ERROR;
        snprintf(t->detail, sizeof t->detail, "HTTP %ld", st);
    } else {
        o = OUT_BAD_RESPONSE;
        snprintf(t->detail, sizeof t->detail, "unexpected HTTP %ld", st);
    }
    t->outcome = o;

    /* What the circuit learns: a live backend (even one refusing the
     * request) is a success; 429 only cools it down. */
    const struct backend *b = &ex->cfg->backends[ex->backend];
    ex->holds_trial = 0;        /* state_record below settles the trial */
    if (o == OUT_429) {
        uint64_t ms = ex->retry_after_ms >= 0 ? (uint64_t)ex->retry_after_ms : 1000;  /* at most a day */
        if (ms > (uint64_t)ex->cfg->retry_after_max_ms)
            ms = (uint64_t)ex->cfg->retry_after_max_ms;
        state_cooldown(b, ms);
        state_record(ex->cfg, b, 1);
    } else if (o != OUT_ABORTED) {
        state_record(ex->cfg, b, o == OUT_OK || o == OUT_CLIENT_ERROR || o == OUT_CONTEXT_LENGTH);
    }
    return o;
}

void attempt_record_skip(struct exchange *ex, int backend, enum outcome o, const char *detail)
{
    record(ex, backend, o, detail);
}
