/* fuzz_classify.c — libFuzzer target: raw bytes straight into classify_text
 * with every built-in, keywords and a regex enabled, and the same bytes as one
 * string of a request body into classify_request (where a string's backslash
 * escapes are decoded once more, on any bytes, not just those that parse as
 * JSON). Checks the results' invariants (level in range, offsets inside the
 * input, unreadable content at least at the unreadable level). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include "airlock/classify.h"
#include "fuzz_policy.h"

static void check(const struct config *cfg, const struct classification *out)
{
    if (out->level < 0 || out->level >= cfg->n_levels || out->n_hits < 0 ||
        out->n_hits > CLASSIFY_MAX_HITS)
        abort();
    if (out->unreadable > 0 && out->level < cfg->unreadable_level)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const struct config *cfg = fuzz_policy();
    const struct classifier *cls = cfg->classifier;
    struct classification out;
    classify_text(cls, (const char *)data, size, &out);
    check(cfg, &out);
    for (int i = 0; i < out.n_hits; i++)
        for (int k = 0; k < out.hits[i].n_offsets; k++)
            if (out.hits[i].offsets[k] >= size)
                abort();

    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    cJSON *body = cJSON_CreateObject();
    if (body && cJSON_AddStringToObject(body, "content", s)) {
        classify_request(cls, cfg, body, &out);
        check(cfg, &out);
    }
    cJSON_Delete(body);
    free(s);
    return 0;
}
