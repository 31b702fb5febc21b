/* fuzz_json_check.c — libFuzzer target for json_check() (upstream/body.c),
 * the validator that decides whether a non-streamed 200 is JSON at all.
 * Differential: whatever it accepts, cJSON must parse as one whole value,
 * and the top-level keys it reports must be the ones cJSON sees. cJSON is
 * laxer in places (leading zeros, "+1", raw control characters), so only
 * this direction is checked; it is also stricter in two ways the checker
 * skips: lone surrogate escapes, and numbers longer than its 63-byte buffer. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "airlock/upstream.h"

static int cjson_would_balk(const uint8_t *d, size_t n)
{
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        if (i + 3 < n && d[i] == '\\' && d[i + 1] == 'u' && (d[i + 2] == 'd' || d[i + 2] == 'D') &&
            strchr("89abcdefABCDEF", d[i + 3]) && d[i + 3])
            return 1;
        run = strchr("0123456789+-.eE", d[i]) && d[i] ? run + 1 : 0;
        if (run >= 60)
            return 1;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned keys = 0;
    if (json_check((const char *)data, size, &keys) != 0 || cjson_would_balk(data, size))
        return 0;
    char *z = malloc(size + 1);
    if (!z)
        return 0;
    memcpy(z, data, size);
    z[size] = '\0';
    cJSON *j = cJSON_ParseWithLengthOpts(z, size + 1, NULL, 1);
    if (!j)
        abort();                /* accepted something that is not one JSON value */
    if (!memchr(data, '\\', size)) {    /* keys written plainly: the bits must agree */
        /* every top-level member counts (a key may come twice): "error"
         * when not null, "choices" and "data" when non-empty arrays */
        unsigned want = 0;
        for (const cJSON *c = cJSON_IsObject(j) ? j->child : NULL; c; c = c->next) {
            if (strcmp(c->string, "error") == 0 && !cJSON_IsNull(c))
                want |= JSON_KEY_ERROR;
            if (strcmp(c->string, "choices") == 0 && cJSON_IsArray(c) && c->child)
                want |= JSON_KEY_CHOICES;
            if (strcmp(c->string, "data") == 0 && cJSON_IsArray(c) && c->child)
                want |= JSON_KEY_DATA;
        }
        if (want != keys)
            abort();
    }
    cJSON_Delete(j);
    free(z);
    return 0;
}
