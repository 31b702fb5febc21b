/* state.h — what airlock knows about each backend's health, shared by all
 * workers: the circuit breaker (closed / open / half-open), the 429
 * cool-down and the active probes' verdict. Keyed by backend name so it
 * survives a reload. Short critical sections, never held across I/O. */
#ifndef AIRLOCK_STATE_H
#define AIRLOCK_STATE_H

#include <stdint.h>
#include "airlock/config.h"

enum probe_state { PROBE_UNKNOWN, PROBE_UP, PROBE_DOWN };

/* May a request be sent to `b` now? Reserves the half-open trial when the
 * circuit's open time has run out (the caller must then report the result). */
int state_try_acquire(const struct config *cfg, const struct backend *b, uint64_t now);
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
/* Milliseconds until `b` may be usable again; 0 if now or unknown. */
uint64_t state_retry_in(const struct backend *b, uint64_t now);

#endif
