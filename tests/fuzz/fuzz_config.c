/* fuzz_config.c — libFuzzer target for the YAML config loader: any bytes
 * must give either a config or errors, never a crash, leak or hang, and a
 * config that loads must be internally consistent (route targets point at
 * real backends, levels in range) — the invariant's inputs come from here. */
#include <stdint.h>
#include <stdlib.h>

#include "airlock/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct config_errors errs = { 0 };
    struct config *c = config_load_string("fuzz.yaml", (const char *)data, size, &errs);
    if (c) {
        if (errs.n != 0 || c->n_levels < 1 || c->n_backends < 1)
            abort();
        for (int i = 0; i < c->n_backends; i++)
            if (c->backends[i].clearance < 0 || c->backends[i].clearance >= c->n_levels || !c->backends[i].url)
                abort();
        for (int r = 0; r < c->n_routes; r++)
            for (int k = 0; k < c->routes[r].n_use; k++)
                if (c->routes[r].use[k].backend < 0 || c->routes[r].use[k].backend >= c->n_backends)
                    abort();
        if (c->unreadable_level < 0 || c->unreadable_level >= c->n_levels)
            abort();
        config_unref(c);
    } else if (errs.n == 0) {
        abort();                /* a refusal always says why */
    }
    config_errors_free(&errs);
    return 0;
}
