/* circuit.c — per-backend state shared by the workers: consecutive
 * failures open the circuit for open_ms, then one trial request (half-open)
 * decides; a 429 sets a cool-down; probes mark a backend up or down.
 * One mutex guards the small table; nothing here does I/O. */
#include <pthread.h>
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
    pthread_mutex_lock(&lock);
    struct backend_state *s = find(b);
    if (s) {
        int was_trial = s->circuit == CIRCUIT_HALF_OPEN;
        s->trial_in_flight = 0;
        if (success) {
            s->failures = 0;
            s->circuit = CIRCUIT_CLOSED;
        } else if (was_trial || ++s->failures >= cfg->circuit_failures) {
            s->circuit = CIRCUIT_OPEN;
            s->open_until = now + (uint64_t)cfg->circuit_open_ms;
        }
    }
    pthread_mutex_unlock(&lock);
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

void state_probe_result(const struct backend *b, enum probe_state p, const char *why)
{
    (void)why;
    pthread_mutex_lock(&lock);
    struct backend_state *s = find(b);
    if (s) {
        s->probe = p;
        if (p == PROBE_UP && s->circuit == CIRCUIT_OPEN)
            s->open_until = 0;  /* a good probe lets the next request be the trial */
    }
    pthread_mutex_unlock(&lock);
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
