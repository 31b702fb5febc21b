/* classify.c — placeholder until the classifier lands: everything is top level. */
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include "airlock/classify.h"

struct classifier { int top; };

struct classifier *classifier_build(const struct config *cfg, char *err, size_t errlen)
{
    struct classifier *c = calloc(1, sizeof(*c));
    if (!c) { snprintf(err, errlen, "out of memory"); return NULL; }
    c->top = cfg->n_levels > 0 ? cfg->n_levels - 1 : 0;
    return c;
}

void classifier_free(struct classifier *c) { free(c); }

void classify_request(const struct classifier *c, const struct config *cfg,
                      const cJSON *body, struct classification *out)
{
    (void)cfg; (void)body;
    memset(out, 0, sizeof(*out));
    out->level = c->top;
}

void classify_text(const struct classifier *c, const char *text, size_t len,
                   struct classification *out)
{
    (void)text; (void)len;
    memset(out, 0, sizeof(*out));
    out->level = c->top;
}
