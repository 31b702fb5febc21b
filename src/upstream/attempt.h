/* attempt.h — one try of one backend (attempt.c) and the stream relay that
 * feeds its bytes to the client (relay.c); proxy.c strings tries together. */
#ifndef AIRLOCK_UPSTREAM_ATTEMPT_H
#define AIRLOCK_UPSTREAM_ATTEMPT_H

#include "airlock/exchange.h"

/* Checks clearance, then starts the transfer to ex->plan.candidates[k].
 * 0 = started; -1 = not sent (recorded in ex->tries with the reason). */
int attempt_begin(struct exchange *ex, int k);
/* Stops and frees the current transfer, if any. */
void attempt_release(struct exchange *ex);
/* A callback's verdict that the transfer must stop; the first one wins. */
void attempt_fail(struct exchange *ex, enum outcome o, const char *detail);
/* How the finished transfer went; records it and informs the circuit. */
enum outcome attempt_verdict(struct exchange *ex, CURLcode rc);
void attempt_record_skip(struct exchange *ex, int backend, enum outcome o, const char *detail);

/* relay.c */
void relay_reset(struct exchange *ex);
int relay_would_block(const struct exchange *ex);
/* Parses upstream SSE bytes; 0 = go on, -1 = stop the transfer (see fail_outcome). */
int relay_feed(struct exchange *ex, const char *data, size_t len);
enum outcome relay_verdict(struct exchange *ex, char *detail, size_t n);
/* Starts the client's streamed response with what was held back. */
int relay_commit(struct exchange *ex);
/* Ends the client's stream: with [DONE] when ok, else with an error event. */
void relay_finish(struct exchange *ex, int ok, const char *message);
void relay_wake_client(struct exchange *ex);

#endif
