/* handlers.h — the endpoints airlock answers itself, and the preparation
 * (parse, validate, classify, plan) shared by the proxied ones and explain. */
#ifndef AIRLOCK_HTTP_HANDLERS_H
#define AIRLOCK_HTTP_HANDLERS_H

#include "airlock/exchange.h"

void handle_healthz(struct exchange *ex);
void handle_readyz(struct exchange *ex);
void handle_models(struct exchange *ex);
void handle_explain(struct exchange *ex);

/* Parses and validates the body, classifies it, applies the level header and
 * plans the route. Returns 0, or -1 after answering with an error. */
int handle_prepare(struct exchange *ex);

#endif
