/* policy.h — from a classified request to an ordered chain of backends:
 * route matching (first match wins), candidate filtering with a reason for
 * every excluded backend, and the one clearance check the wire obeys. */
#ifndef AIRLOCK_POLICY_H
#define AIRLOCK_POLICY_H

#include "airlock/config.h"

#define MAX_CHAIN 32

/* What a route's `when` may look at. */
struct route_input {
    const char *model;          /* the client's `model`, or NULL */
    const char *client;         /* authenticated client name, or NULL */
    int level;
    long prompt_tokens;         /* estimate */
    long completion_tokens;     /* the client's max_tokens, 0 if none: counts toward context_window */
    int stream;
    int budget_exhausted;
};

struct candidate {
    int backend;
    const char *model;          /* upstream model to send; NULL = keep the client's */
};

struct exclusion {
    int backend;
    const char *reason;         /* static string: "clearance", "context_window", "circuit_open", ... */
};

struct plan {
    const struct route *route;  /* NULL when no route matched */
    struct candidate candidates[MAX_CHAIN];
    int n_candidates;
    struct exclusion excluded[MAX_CHAIN];
    int n_excluded;
};

/* First route whose every condition holds, or NULL. */
const struct route *route_match(const struct config *cfg, const struct route_input *in);

/* Matches a route and filters its `use` chain in the order PRODUCT.md gives:
 * clearance, budget, context window, circuit. */
void route_plan(const struct config *cfg, const struct route_input *in, struct plan *out);
/* Empties out: no route, no candidates, no exclusions (the entries are
 * written in full when added, so the tables are not cleared). */
void plan_clear(struct plan *out);

/* A shell glob (fnmatch(3): '*', '?', '[...]', '\\' escapes), case-sensitive;
 * '*' also matches '/'. */
int glob_match(const char *pattern, const char *s);

/* The invariant: may backend `b` receive a request classified at `level`?
 * Anything unexpected (negative level, level beyond the config's) says no. */
int clearance_allows(const struct config *cfg, const struct backend *b, int level);

#endif
