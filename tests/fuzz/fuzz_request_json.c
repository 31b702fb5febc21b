/* fuzz_request_json.c — libFuzzer target: bytes -> cJSON_ParseWithLength ->
 * classify_request, with every built-in, keywords and a regex enabled. Checks
 * the level is in range and at least the unreadable level when parts were. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include "airlock/classify.h"
#include "fuzz_policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const struct config *cfg = fuzz_policy();
    const struct classifier *cls = cfg->classifier;
    cJSON *body = cJSON_ParseWithLength((const char *)data, size);
    if (!body)
        return 0;
    struct classification out;
    classify_request(cls, cfg, body, &out);
    cJSON_Delete(body);
    if (out.level < 0 || out.level >= cfg->n_levels || out.n_hits < 0 || out.n_hits > CLASSIFY_MAX_HITS)
        abort();
    if (out.unreadable > 0 && out.level < cfg->unreadable_level)
        abort();
    return 0;
}
