/* proxy.c — strings attempts together for one request: tries the plan's
 * candidates in order, falls back on the configured triggers while nothing
 * has reached the client, and turns the last outcome into the client's
 * answer (the upstream's own, a passthrough, or one 502/503/504 naming every
 * backend tried and why). */
#include <stdio.h>
#include <string.h>

#include "airlock/exchange.h"
#include "airlock/server.h"
#include "airlock/state.h"
#include "upstream/attempt.h"

static int is_skip(const struct attempt_record *t)
{
    return t->outcome == OUT_POLICY || (t->outcome == OUT_NONE && t->status == -1);
}

int proxy_attempts(const struct exchange *ex)
{
    int n = 0;
    for (int i = 0; i < ex->n_tries; i++)
        n += !is_skip(&ex->tries[i]);
    return n;
}

/* Tries candidate k if its backend's state allows (recording a skip when
 * it does not), holding the half-open trial while the attempt runs and
 * giving it back when the attempt cannot start. 0 = a transfer is running. */
static int try_candidate(struct exchange *ex, int k)
{
    const struct backend *b = &ex->cfg->backends[ex->plan.candidates[k].backend];
    int acquired = state_try_acquire(ex->cfg, b, now_ms());
    if (!acquired) {
        attempt_record_skip(ex, b->index, OUT_NONE, state_describe(b));
        ex->tries[ex->n_tries - 1].status = -1;     /* marks a skip */
        return -1;
    }
    ex->holds_trial = acquired == 2;
    if (attempt_begin(ex, k) == 0)
        return 0;
    if (ex->holds_trial) {
        state_release(b);
        ex->holds_trial = 0;
    }
    return -1;
}

/* Starts the next candidate that may be tried. 0 = a transfer is running;
 * -1 = nothing left to try. */
static int start_next(struct exchange *ex)
{
    const struct config *cfg = ex->cfg;
    while (ex->next_candidate < ex->plan.n_candidates) {
        if (proxy_attempts(ex) >= cfg->max_attempts || ex->n_tries >= MAX_ATTEMPTS)
            return -1;
        if (try_candidate(ex, ex->next_candidate++) == 0)
            return 0;
    }
    /* Every candidate was skipped for its state: rather than fail without
     * trying, try once the one most likely alive (a probe not saying down,
     * a circuit nearest its trial), never one in a 429 cool-down. Policy
     * still applies at the wire. */
    if (!ex->forced && proxy_attempts(ex) == 0 && ex->plan.n_candidates > 0 && ex->n_tries < MAX_ATTEMPTS) {
        uint64_t now = now_ms();
        int best = -1;
        long long best_rank = 0;
        for (int k = 0; k < ex->plan.n_candidates; k++) {
            long long r = state_force_rank(&cfg->backends[ex->plan.candidates[k].backend], now);
            if (r >= 0 && (best < 0 || r < best_rank)) {
                best = k;
                best_rank = r;
            }
        }
        if (best >= 0) {
            ex->forced = 1;
            log_event("info", "request %s: every candidate is marked unavailable; trying %s anyway",
                      ex->request_id, cfg->backends[ex->plan.candidates[best].backend].name);
            return attempt_begin(ex, best) == 0 ? 0 : -1;
        }
    }
    return -1;
}

static unsigned trigger_of(enum outcome o)
{
    switch (o) {
    case OUT_CONNECT: return TRIGGER_CONNECT;
    case OUT_TIMEOUT: return TRIGGER_TIMEOUT;
    case OUT_5XX:
    case OUT_BAD_RESPONSE: return TRIGGER_5XX;
    case OUT_429: return TRIGGER_429;
    case OUT_CONTEXT_LENGTH: return TRIGGER_CONTEXT_LENGTH;
    default: return 0;
    }
}

/* "local: connection refused; cloud: HTTP 500" for the 502/503 message. */
static void describe_tries(const struct exchange *ex, struct buf *b)
{
    int n = 0;
    for (int i = 0; i < ex->n_tries; i++) {
        const struct attempt_record *t = &ex->tries[i];
        buf_appendf(b, "%s%s: %s", n++ ? "; " : "", ex->cfg->backends[t->backend].name,
                    is_skip(t) && t->outcome == OUT_NONE ? "skipped" : t->detail);
        if (is_skip(t) && t->outcome == OUT_NONE)
            buf_appendf(b, " (%s)", t->detail);
    }
    for (int i = 0; i < ex->plan.n_excluded; i++)
        buf_appendf(b, "%s%s: excluded (%s)", n++ ? "; " : "",
                    ex->cfg->backends[ex->plan.excluded[i].backend].name, ex->plan.excluded[i].reason);
}

/* Rate limited, all of it: every candidate is in a 429 cool-down and
 * every attempt made was answered 429. */
static int all_rate_limited(const struct exchange *ex, uint64_t now)
{
    if (ex->plan.n_candidates == 0)
        return 0;
    for (int i = 0; i < ex->plan.n_candidates; i++)
        if (!state_cooldown_left(&ex->cfg->backends[ex->plan.candidates[i].backend], now))
            return 0;
    for (int i = 0; i < ex->n_tries; i++)
        if (!is_skip(&ex->tries[i]) && ex->tries[i].outcome != OUT_429)
            return 0;
    return 1;
}

static void respond_failure(struct exchange *ex)
{
    const struct config *cfg = ex->cfg;
    struct buf msg = { 0 };
    int tried = proxy_attempts(ex);
    int policy_refused = ex->clearance_excluded;
    for (int i = 0; i < ex->n_tries; i++)
        policy_refused |= ex->tries[i].outcome == OUT_POLICY;
    uint64_t now = now_ms(), wait = 0;
    for (int i = 0; i < ex->plan.n_candidates; i++) {
        uint64_t w = state_retry_in(&cfg->backends[ex->plan.candidates[i].backend], now);
        if (w && (!wait || w < wait))
            wait = w;
    }
    int limited = all_rate_limited(ex, now);

    if (!ex->plan.route) {
        respond_error(ex, 503, "airlock_policy", "no_route", NULL,
                      "No route matches this request; check the routes in the configuration.");
        return;
    }
    if (policy_refused) {
        buf_appendf(&msg, "No backend cleared for level '%s' is available", cfg->levels[ex->level]);
    } else if (limited) {
        buf_appendf(&msg, "Every backend of route '%s' is rate limited", ex->plan.route->name);
    } else if (tried == 0) {
        buf_appendf(&msg, "No backend of route '%s' is available", ex->plan.route->name);
    } else {
        buf_appendf(&msg, "All %d attempt%s failed", tried, tried == 1 ? "" : "s");
    }
    if (ex->n_tries || ex->plan.n_excluded) {
        buf_puts(&msg, ": ");
        describe_tries(ex, &msg);
    }
    const char *text = msg.data ? msg.data : "upstream failure";
    if (policy_refused) {
        respond_error(ex, 503, "airlock_policy", "no_cleared_backend", NULL, text);
    } else if (limited) {
        respond_error(ex, 429, "rate_limit_error", "upstream_rate_limited", NULL, text);
    } else if (tried == 0 && ex->plan.n_candidates == 0) {
        /* every backend excluded for what the request is (its size): a retry
         * would meet the same answer */
        respond_error(ex, 503, "airlock_unavailable", "no_backend_available", NULL, text);
        if (ex->response)
            MHD_add_response_header(ex->response, "x-should-retry", "false");
    } else if (tried == 0) {
        respond_error(ex, 503, "airlock_unavailable", "no_backend_available", NULL, text);
    } else {
        int all_timeouts = 1;
        for (int i = 0; i < ex->n_tries; i++)
            if (!is_skip(&ex->tries[i]) && ex->tries[i].outcome != OUT_TIMEOUT)
                all_timeouts = 0;
        if (all_timeouts)
            respond_error(ex, 504, "upstream_error", "upstream_timeout", NULL, text);
        else
            respond_error(ex, 502, "upstream_error", "all_backends_failed", NULL, text);
    }
    /* when airlock knows when capacity returns, it says so */
    if (wait && ex->response && !policy_refused) {
        char s[24];
        snprintf(s, sizeof s, "%llu", (unsigned long long)((wait + 999) / 1000));
        MHD_add_response_header(ex->response, MHD_HTTP_HEADER_RETRY_AFTER, s);
    }
    buf_free(&msg);
}

/* The upstream's own answer, status and body as they came. */
static void respond_upstream(struct exchange *ex)
{
    struct buf *b = &ex->upstream_resp;
    ex->bytes_out += b->len;
    struct MHD_Response *r =
        MHD_create_response_from_buffer(b->len, b->data ? b->data : (void *)"",
                                        b->data ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (r && b->data) {
        b->data = NULL;
        b->len = b->cap = 0;
    }
    char *ct = NULL;
    if (r) {
        if (ex->easy)
            curl_easy_getinfo(ex->easy, CURLINFO_CONTENT_TYPE, &ct);
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ct ? ct : "application/json");
        if (ex->upstream_status == 429 && ex->retry_after_raw[0])
            MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, ex->retry_after_raw);
    }
    respond_ready(ex, r, (unsigned)ex->upstream_status);
}

/* A backend's `retries`: try the same backend again after an exponential
 * backoff with jitter (100 ms, 200 ms, 400 ms ... capped at 2 s, each 50-100%),
 * counted within fallback.max_attempts. 0 = scheduled. */
static int schedule_retry(struct exchange *ex)
{
    const struct backend *b = &ex->cfg->backends[ex->backend];
    int used = 0;
    for (int i = 0; i < ex->n_tries; i++)
        used += ex->tries[i].backend == b->index && !is_skip(&ex->tries[i]);
    if (used > b->retries || proxy_attempts(ex) >= ex->cfg->max_attempts || ex->n_tries >= MAX_ATTEMPTS)
        return -1;
    uint64_t backoff = 100u << (used - 1 < 5 ? used - 1 : 5);
    if (backoff > 2000)
        backoff = 2000;
    static __thread uint64_t seed;
    seed = seed * 6364136223846793005ull + 1442695040888963407ull + now_us();
    backoff = backoff / 2 + (seed >> 33) % (backoff / 2 + 1);
    ex->retry_candidate = ex->cur_candidate;
    ex->retry_at = now_ms() + backoff;
    worker_track(ex->worker, ex);
    worker_note_deadline(ex->worker, ex->retry_at);
    return 0;
}

/* The retry is an attempt like any other: a circuit that opened meanwhile
 * (this backend's failures, or other requests') turns it into a skip. */
static void retry_now(struct exchange *ex)
{
    ex->retry_at = 0;
    worker_untrack(ex->worker, ex);
    if (try_candidate(ex, ex->retry_candidate) == 0 || start_next(ex) == 0)
        return;
    respond_failure(ex);
}

static void transfer_finished(struct exchange *ex, CURLcode rc)
{
    enum outcome o = attempt_verdict(ex, rc);
    const struct config *cfg = ex->cfg;

    if (o == OUT_OK) {
        if (ex->stream) {
            if (relay_commit(ex) < 0) {
                attempt_release(ex);
                respond_error(ex, 500, "server_error", NULL, NULL, "out of memory");
                return;
            }
            relay_finish(ex, 1, NULL);
        } else {
            respond_upstream(ex);
        }
        attempt_release(ex);
        return;
    }
    if (ex->committed) {
        /* bytes already reached the client: no fallback, and never a silent success */
        char m[160];
        snprintf(m, sizeof m, "The upstream stream from %s failed: %s",
                 cfg->backends[ex->backend].name, ex->tries[ex->n_tries - 1].detail);
        log_event("warn", "request %s: stream from %s failed after first byte: %s", ex->request_id,
                  cfg->backends[ex->backend].name, ex->tries[ex->n_tries - 1].detail);
        attempt_release(ex);
        relay_finish(ex, 0, m);
        return;
    }
    if (o == OUT_CLIENT_ERROR ||
        ((o == OUT_429 || o == OUT_CONTEXT_LENGTH) && !(cfg->fallback_on & trigger_of(o)))) {
        respond_upstream(ex);   /* the client's fault: as-is, no fallback */
        attempt_release(ex);
        return;
    }
    attempt_release(ex);
    if (cfg->fallback_on & trigger_of(o)) {
        if (o != OUT_429 && schedule_retry(ex) == 0)
            return;
        if (start_next(ex) == 0)
            return;
    }
    respond_failure(ex);
}

void proxy_start(struct exchange *ex)
{
    ex->state = EX_WAITING;
    if (ex->plan.route && start_next(ex) == 0)
        return;
    respond_failure(ex);
}

void proxy_transfer_done(struct worker *w, CURL *easy, CURLcode result)
{
    struct exchange *ex = NULL;
    (void)w;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&ex);
    if (!ex || ex->easy != easy)
        return;
    ex->easy_clean_end = result == CURLE_OK && !ex->paused;
    transfer_finished(ex, result);
}

void proxy_check_deadlines(struct worker *w, uint64_t now)
{
    uint64_t next = 0;
    struct exchange *ex = w->active, *following;
    for (; ex; ex = following) {
        following = ex->active.next;
        const struct backend *b = &ex->cfg->backends[ex->backend];
        if (ex->retry_at) {
            if (now >= ex->retry_at)
                retry_now(ex);
            else if (!next || ex->retry_at < next)
                next = ex->retry_at;
            continue;
        }
        if (ex->first_byte_deadline && now >= ex->first_byte_deadline) {
            char d[64];
            snprintf(d, sizeof d, "no response within first_byte_ms=%ld", b->timeouts.first_byte_ms);
            attempt_fail(ex, OUT_TIMEOUT, d);
            transfer_finished(ex, CURLE_OPERATION_TIMEDOUT);
            continue;
        }
        if (ex->idle_deadline && now >= ex->idle_deadline && ex->stream && ex->saw_finish) {
            transfer_finished(ex, CURLE_OK);    /* complete, only [DONE] is missing */
            continue;
        }
        if (ex->idle_deadline && now >= ex->idle_deadline) {
            char d[64];
            snprintf(d, sizeof d, "stalled longer than idle_ms=%ld", b->timeouts.idle_ms);
            attempt_fail(ex, OUT_TIMEOUT, d);
            transfer_finished(ex, CURLE_OPERATION_TIMEDOUT);
            continue;
        }
        uint64_t d = ex->first_byte_deadline ? ex->first_byte_deadline : ex->idle_deadline;
        if (ex->idle_deadline && ex->idle_deadline < d)
            d = ex->idle_deadline;
        if (d && (!next || d < next))
            next = d;
    }
    /* transfers started above noted their deadlines already */
    if (!w->next_deadline || w->next_deadline <= now || (next && next < w->next_deadline))
        w->next_deadline = next;
    for (ex = w->active; ex; ex = ex->active.next) {
        worker_note_deadline(w, ex->first_byte_deadline);
        worker_note_deadline(w, ex->idle_deadline);
        worker_note_deadline(w, ex->retry_at);
    }
}

static void unlink_unpause(struct exchange *ex)
{
    if (!ex->on_unpause_list)
        return;
    struct exchange **pp = &ex->worker->unpause;
    while (*pp && *pp != ex)
        pp = &(*pp)->unpause_next;
    if (*pp)
        *pp = ex->unpause_next;
    ex->on_unpause_list = 0;
    ex->unpause_next = NULL;
}

void proxy_unpause_ready(struct worker *w)
{
    while (w->unpause) {
        struct exchange *ex = w->unpause;
        w->unpause = ex->unpause_next;
        ex->on_unpause_list = 0;
        ex->unpause_next = NULL;
        if (!ex->easy || !ex->paused)
            continue;
        ex->paused = 0;
        const struct backend *b = &ex->cfg->backends[ex->backend];
        ex->idle_deadline = now_ms() + (uint64_t)b->timeouts.idle_ms;
        worker_note_deadline(w, ex->idle_deadline);
        curl_easy_pause(ex->easy, CURLPAUSE_CONT);
    }
}

void proxy_cancel_all(struct worker *w)
{
    while (w->active) {
        struct exchange *ex = w->active;
        proxy_abort(ex);        /* takes it off the list */
        if (ex->committed)
            relay_finish(ex, 0, "airlock is shutting down");
        else
            respond_error(ex, 503, "airlock_unavailable", "shutting_down", NULL,
                          "airlock is shutting down; retry on another instance");
    }
}

void proxy_abort(struct exchange *ex)
{
    unlink_unpause(ex);
    ex->retry_at = 0;
    worker_untrack(ex->worker, ex);
    if (!ex->easy)
        return;
    if (ex->holds_trial) {
        state_release(&ex->cfg->backends[ex->backend]);
        ex->holds_trial = 0;
    }
    struct attempt_record *t = &ex->tries[ex->n_tries - 1];
    t->outcome = OUT_ABORTED;
    t->ms = (now_us() - ex->attempt_started_us) / 1000;
    snprintf(t->detail, sizeof t->detail, "client went away");
    attempt_release(ex);
}
