/* fuzz_classify.c — libFuzzer target: raw bytes straight into classify_text
 * with every built-in, keywords and a regex enabled. Checks the result's
 * invariants (level in range, offsets inside the input). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include "airlock/classify.h"
#include "fuzz_policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const struct config *cfg = fuzz_policy();
    const struct classifier *cls = cfg->classifier;
    struct classification out;
    classify_text(cls, (const char *)data, size, &out);
    if (out.level < 0 || out.level >= cfg->n_levels || out.n_hits < 0 || out.n_hits > CLASSIFY_MAX_HITS)
        abort();
    for (int i = 0; i < out.n_hits; i++)
        for (int k = 0; k < out.hits[i].n_offsets; k++)
            if (out.hits[i].offsets[k] >= size)
                abort();
    return 0;
}
