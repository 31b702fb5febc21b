/* fuzz_classify.c — libFuzzer target: raw bytes straight into classify_text
 * with every built-in, keywords and a regex enabled. Checks the result's
 * invariants (level in range, offsets inside the input). */
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
    struct classification out;
    classify_text(cls, (const char *)data, size, &out);
    if (out.level < 0 || out.level >= cfg.n_levels || out.n_hits < 0 || out.n_hits > CLASSIFY_MAX_HITS)
        abort();
    for (int i = 0; i < out.n_hits; i++)
        for (int k = 0; k < out.hits[i].n_offsets; k++)
            if (out.hits[i].offsets[k] >= size)
                abort();
    return 0;
}
