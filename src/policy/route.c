/* route.c — picks the route for a request (first match wins) and turns its
 * `use` list into the ordered candidates, naming why each dropped backend
 * was dropped. The explain endpoint and the proxy share this one function. */
#include <fnmatch.h>
#include <string.h>

#include "airlock/policy.h"

int glob_match(const char *p, const char *s)
{
    return fnmatch(p, s, 0) == 0;      /* '/' is an ordinary character: openai/gpt-4o */
}

static int route_matches(const struct route *r, const struct route_input *in)
{
    if (r->model_glob && (!in->model || !glob_match(r->model_glob, in->model)))
        return 0;
    if (r->client && (!in->client || strcmp(r->client, in->client) != 0))
        return 0;
    if (r->level_at_least >= 0 && in->level < r->level_at_least)
        return 0;
    if (r->prompt_tokens_over >= 0 && in->prompt_tokens <= r->prompt_tokens_over)
        return 0;
    if (r->prompt_tokens_under >= 0 && in->prompt_tokens >= r->prompt_tokens_under)
        return 0;
    if (r->budget_exhausted != TRI_ANY && (int)r->budget_exhausted != !!in->budget_exhausted)
        return 0;
    if (r->stream != TRI_ANY && (int)r->stream != !!in->stream)
        return 0;
    return 1;
}

const struct route *route_match(const struct config *cfg, const struct route_input *in)
{
    for (int i = 0; i < cfg->n_routes; i++)
        if (route_matches(&cfg->routes[i], in))
            return &cfg->routes[i];
    return NULL;
}

static void exclude(struct plan *out, int backend, const char *reason)
{
    if (out->n_excluded < MAX_CHAIN)
        out->excluded[out->n_excluded++] = (struct exclusion){ backend, reason };
}

void plan_clear(struct plan *out)
{
    out->route = NULL;
    out->n_candidates = out->n_excluded = 0;
}

void route_plan(const struct config *cfg, const struct route_input *in, struct plan *out)
{
    plan_clear(out);
    out->route = route_match(cfg, in);
    if (!out->route)
        return;
    for (int i = 0; i < out->route->n_use; i++) {
        const struct route_target *t = &out->route->use[i];
        if (t->backend < 0 || t->backend >= cfg->n_backends)
            continue;           /* the loader never builds one; never trust it blindly */
        const struct backend *b = &cfg->backends[t->backend];
        if (!clearance_allows(cfg, b, in->level)) {
            exclude(out, t->backend, "clearance");
            continue;
        }
        if (b->key_missing) {
            exclude(out, t->backend, "no_api_key");
            continue;
        }
        if (b->context_window > 0 && in->prompt_tokens + in->completion_tokens > b->context_window) {
            exclude(out, t->backend, "context_window");
            continue;
        }
        if (out->n_candidates >= MAX_CHAIN)
            break;
        out->candidates[out->n_candidates++] =
            (struct candidate){ t->backend, t->model ? t->model : b->model };
    }
}
