/* circuit.c — per-backend state shared by the workers: consecutive
 * failures open the circuit for open_ms, then one trial request (half-open)
 * decides; a 429 sets a cool-down; probes mark a backend up or down.
 * One mutex guards the small table; nothing here does I/O. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "airlock/state.h"
#include "airlock/util.h"

#define MAX_BACKEND_STATES 256

enum circuit { CIRCUIT_CLOSED, CIRCUIT_OPEN, CIRCUIT_HALF_OPEN };

struct backend_state {
    char name[64];
    enum circuit circuit;
    int failures;               /* consecutive */
    uint64_t open_until;        /* ms */
    uint64_t cooldown_until;    /* ms, from 429 Retry-After */
    int trial_in_flight;
    uint64_t trial_started;
    enum probe_state probe;
    char probe_why[96];         /* the last failed probe's reason */
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct backend_state table[MAX_BACKEND_STATES];
static int n_states;

/* Called with the lock held. NULL only when the table is full. */
static struct backend_state *find(const struct backend *b)
{
    for (int i = 0; i < n_states; i++)
        if (strncmp(table[i].name, b->name, sizeof table[i].name - 1) == 0)
            return &table[i];
    if (n_states == MAX_BACKEND_STATES)
        return NULL;
    struct backend_state *s = &table[n_states++];
    memset(s, 0, sizeof(*s));
    strncpy(s->name, b->name, sizeof s->name - 1);
    return s;
}

static int usable_locked(struct backend_state *s, uint64_t now)
{
    if (s->probe == PROBE_DOWN || now < s->cooldown_until)
        return 0;
    if (s->circuit == CIRCUIT_OPEN && now < s->open_until)
        return 0;
    /* half-open: one trial at a time; a trial lost for over a minute is forgotten */
    if (s->circuit == CIRCUIT_HALF_OPEN && s->trial_in_flight && now < s->trial_started + 60000)
        return 0;
    return 1;
}

int state_try_acquire(const struct config *cfg, const struct backend *b, uint64_t now)
{
    (void)cfg;
    pthread_mutex_lock(&lock);
    struct backend_state *s = find(b);
    int ok = !s || usable_locked(s, now);
    if (s && ok && s->circuit != CIRCUIT_CLOSED) {
        s->circuit = CIRCUIT_HALF_OPEN;
        s->trial_in_flight = 1;
        s->trial_started = now;
        ok = 2;
    }
    pthread_mutex_unlock(&lock);
    return ok;
}

void state_release(const struct backend *b)
{
    pthread_mutex_lock(&lock);
    struct backend_state *s = find(b);
    if (s && s->circuit == CIRCUIT_HALF_OPEN)
        s->trial_in_flight = 0;
    pthread_mutex_unlock(&lock);
}

int state_usable(const struct backend *b)
{
    pthread_mutex_lock(&lock);
    struct backend_state *s = find(b);
    int ok = !s || usable_locked(s, now_ms());
    pthread_mutex_unlock(&lock);
    return ok;
}

void state_record(const struct config *cfg, const struct backend *b, int success)
{
    uint64_t now = now_ms();
    enum circuit before = CIRCUIT_CLOSED, after = CIRCUIT_CLOSED;
    pthread_mutex_lock(&lock);
    struct backend_state *s = find(b);
    if (s) {
        before = s->circuit;
        int was_trial = s->circuit == CIRCUIT_HALF_OPEN;
        s->trial_in_flight = 0;
        if (success) {
            s->failures = 0;
            s->circuit = CIRCUIT_CLOSED;
        } else if (was_trial || ++s->failures >= cfg->circuit_failures) {
            s->circuit = CIRCUIT_OPEN;
            s->open_until = now + (uint64_t)cfg->circuit_open_ms;
        }
        after = s->circuit;
    }
    pthread_mutex_unlock(&lock);
    /* transitions only, and outside the lock: the log is I/O */
    if (after == CIRCUIT_OPEN && before != CIRCUIT_OPEN)
        log_event("warn", "backend %s: circuit open for %ld ms (%s)", b->name, cfg->circuit_open_ms,
                  before == CIRCUIT_HALF_OPEN ? "the half-open trial failed" : "consecutive failures");
    else if (after == CIRCUIT_CLOSED && before != CIRCUIT_CLOSED)
        log_event("info", "backend %s: circuit closed, a request succeeded", b->name);
}

void state_cooldown(const struct backend *b, uint64_t ms)
{
    uint64_t until = now_ms() + ms;
    pthread_mutex_lock(&lock);
    struct backend_state *s = find(b);
    if (s && until > s->cooldown_until)
        s->cooldown_until = until;
    pthread_mutex_unlock(&lock);
}

/* A probe's verdict. It never shortens an open circuit: a health route
 * that answers while inference fails (Ollama's /api/tags beside a failing
 * model) would otherwise let a trial through at every interval. */
void state_probe_result(const struct backend *b, enum probe_state p, const char *why)
{
    enum probe_state before = PROBE_UNKNOWN;
    pthread_mutex_lock(&lock);
    struct backend_state *s = find(b);
    if (s) {
        before = s->probe;
        s->probe = p;
        if (p == PROBE_DOWN)
            snprintf(s->probe_why, sizeof s->probe_why, "%s", why ? why : "probe failed");
        else
            s->probe_why[0] = '\0';
    }
    pthread_mutex_unlock(&lock);
    if (s && p == PROBE_DOWN && before != PROBE_DOWN)
        log_event("warn", "backend %s: probe says down: %s", b->name, why ? why : "probe failed");
    else if (s && p == PROBE_UP && before == PROBE_DOWN)
        log_event("info", "backend %s: probe says up again", b->name);
}

void state_reason(const struct backend *b, char *out, size_t n)
{
    uint64_t now = now_ms();
    pthread_mutex_lock(&lock);
    struct backend_state *s = find(b);
    out[0] = '\0';
    if (s) {
        if (s->probe == PROBE_DOWN)
            snprintf(out, n, "probe: %s", s->probe_why);
        else if (now < s->cooldown_until)
            snprintf(out, n, "rate limited for %llu ms more", (unsigned long long)(s->cooldown_until - now));
        else if (s->circuit == CIRCUIT_OPEN && now < s->open_until)
            snprintf(out, n, "circuit open for %llu ms more", (unsigned long long)(s->open_until - now));
    }
    pthread_mutex_unlock(&lock);
}

long long state_force_rank(const struct backend *b, uint64_t now)
{
    long long rank = 0;
    pthread_mutex_lock(&lock);
    struct backend_state *s = find(b);
    if (s) {
        if (now < s->cooldown_until)
            rank = -1;          /* it said when to come back: not before */
        else {
            if (s->probe == PROBE_DOWN)
                rank += 1LL << 40;
            if (s->circuit == CIRCUIT_OPEN && s->open_until > now)
                rank += (long long)(s->open_until - now);
        }
    }
    pthread_mutex_unlock(&lock);
    return rank;
}

uint64_t state_cooldown_left(const struct backend *b, uint64_t now)
{
    uint64_t left = 0;
    pthread_mutex_lock(&lock);
    struct backend_state *s = find(b);
    if (s && s->cooldown_until > now)
        left = s->cooldown_until - now;
    pthread_mutex_unlock(&lock);
    return left;
}

const char *state_describe(const struct backend *b)
{
    uint64_t now = now_ms();
    const char *d = "unknown";
    pthread_mutex_lock(&lock);
    struct backend_state *s = find(b);
    if (s) {
        if (s->probe == PROBE_DOWN)
            d = "down";
        else if (now < s->cooldown_until)
            d = "cooldown";
        else if (s->circuit == CIRCUIT_OPEN && now < s->open_until)
            d = "open";
        else if (s->circuit != CIRCUIT_CLOSED)
            d = "half_open";
        else if (s->probe == PROBE_UP)
            d = "up";
    }
    pthread_mutex_unlock(&lock);
    return d;
}

uint64_t state_retry_in(const struct backend *b, uint64_t now)
{
    uint64_t at = 0;
    pthread_mutex_lock(&lock);
    struct backend_state *s = find(b);
    if (s) {
        if (s->cooldown_until > now)
            at = s->cooldown_until;
        if (s->circuit == CIRCUIT_OPEN && s->open_until > now && s->open_until > at)
            at = s->open_until;
    }
    pthread_mutex_unlock(&lock);
    return at > now ? at - now : 0;
}
