/* fuzz_request_json.c — libFuzzer target: bytes -> cJSON_ParseWithLength ->
 * classify_request, with every built-in, keywords and a regex enabled. Checks
 * the level is in range and at least the unreadable level when parts were. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include "airlock/classify.h"

static struct config cfg;
static struct classifier *cls;

static void setup(void)
{
    static char *levels[] = { "public", "internal", "confidential", "secret" };
    static char *kw[] = { "Nightjar", "Bluebird", "project x-ray" };
    static struct detector dets[] = {
        { "email", DETECTOR_BUILTIN, BUILTIN_EMAIL, NULL, 0, NULL, 2 },
        { "phone", DETECTOR_BUILTIN, BUILTIN_PHONE, NULL, 0, NULL, 2 },
        { "credit_card", DETECTOR_BUILTIN, BUILTIN_CREDIT_CARD, NULL, 0, NULL, 3 },
        { "us_ssn", DETECTOR_BUILTIN, BUILTIN_US_SSN, NULL, 0, NULL, 3 },
        { "iban", DETECTOR_BUILTIN, BUILTIN_IBAN, NULL, 0, NULL, 3 },
        { "secret_key", DETECTOR_BUILTIN, BUILTIN_SECRET_KEY, NULL, 0, NULL, 3 },
        { "ipv4", DETECTOR_BUILTIN, BUILTIN_IPV4, NULL, 0, NULL, 1 },
        { "codenames", DETECTOR_KEYWORDS, 0, kw, 3, NULL, 2 },
        { "corp-hosts", DETECTOR_REGEX, 0, NULL, 0, "[a-z0-9-]+\\.corp\\.example\\.com", 1 },
    };
    char err[256];
    for (int i = 0; i < 4; i++)
        cfg.levels[i] = levels[i];
    cfg.n_levels = 4;
    cfg.unreadable_level = 3;
    cfg.detectors = dets;
    cfg.n_detectors = (int)(sizeof(dets) / sizeof(dets[0]));
    cls = classifier_build(&cfg, err, sizeof(err));
    if (!cls) {
        fprintf(stderr, "classifier_build: %s\n", err);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!cls)
        setup();
    cJSON *body = cJSON_ParseWithLength((const char *)data, size);
    if (!body)
        return 0;
    struct classification out;
    classify_request(cls, &cfg, body, &out);
    cJSON_Delete(body);
    if (out.level < 0 || out.level >= cfg.n_levels || out.n_hits < 0 || out.n_hits > CLASSIFY_MAX_HITS)
        abort();
    if (out.unreadable > 0 && out.level < cfg.unreadable_level)
        abort();
    return 0;
}
