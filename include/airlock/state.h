/* state.h — what airlock knows about each backend's health, shared by all
 * workers: the circuit breaker (closed / open / half-open), the 429
 * cool-down and the active probes' verdict. Keyed by backend name so it
 * survives a reload. Short critical sections, never held across I/O. */
#ifndef AIRLOCK_STATE_H
#define AIRLOCK_STATE_H

#include <stdint.h>
#include "airlock/config.h"

enum probe_state { PROBE_UNKNOWN, PROBE_UP, PROBE_DOWN };

/* May a request be sent to `b` now? 0 = no, 1 = yes, 2 = yes and the caller
 * holds the half-open trial (the circuit's open time has run out): it must
 * then report the result with state_record, or give the trial back with
 * state_release if the attempt ends without a verdict. */
int state_try_acquire(const struct config *cfg, const struct backend *b, uint64_t now);
/* The half-open trial held by an attempt that ended without a verdict (the
 * client left, the transfer could not start): the next request may be the
 * trial, instead of none for a minute. */
void state_release(const struct backend *b);
/* Would state_try_acquire say yes (without reserving anything)? */
int state_usable(const struct backend *b);
/* The outcome of a request sent to `b`: success closes the circuit; a failure
 * counts toward `fallback.circuit.failures`. */
void state_record(const struct config *cfg, const struct backend *b, int success);
/* A 429: no requests to `b` for `ms`. */
void state_cooldown(const struct backend *b, uint64_t ms);
void state_probe_result(const struct backend *b, enum probe_state s, const char *why);
/* "up", "down", "open", "half_open", "cooldown" or "unknown". */
const char *state_describe(const struct backend *b);
/* Why `b` is not usable ("probe: HTTP 503", "circuit open for 2900 ms
 * more"), or "" when it is. */
void state_reason(const struct backend *b, char *out, size_t n);
/* When every candidate is skipped, which to try anyway: lower is likelier
 * alive (probe not down, circuit nearest its trial); -1 = never (a 429
 * cool-down: the upstream said when to come back). */
long long state_force_rank(const struct backend *b, uint64_t now);
/* Milliseconds of 429 cool-down left; 0 if none. */
uint64_t state_cooldown_left(const struct backend *b, uint64_t now);
/* Milliseconds until `b` may be usable again; 0 if now or unknown. */
uint64_t state_retry_in(const struct backend *b, uint64_t now);

#endif
