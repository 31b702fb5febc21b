/* fuzz_policy.h — the policy the classifier fuzz targets run with: every
 * built-in, keywords and a regex, loaded through the real config loader so
 * the fuzzers see what the daemon would build. */
#ifndef AIRLOCK_FUZZ_POLICY_H
#define AIRLOCK_FUZZ_POLICY_H
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "airlock/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char fuzz_policy_yaml[] =
    "backends: [{ name: local, zone: local, url: 'http://127.0.0.1:1/v1', health: { enabled: false } }]\n"
    "sensitivity:\n"
    "  detectors:\n"
    "    - { builtin: email, level: confidential }\n"
    "    - { builtin: phone, level: confidential }\n"
    "    - { builtin: credit_card, level: secret }\n"
    "    - { builtin: us_ssn, level: secret }\n"
    "    - { builtin: iban, level: secret }\n"
    "    - { builtin: secret_key, level: secret }\n"
    "    - { builtin: ipv4, level: internal }\n"
    "    - { name: codenames, keywords: [Nightjar, Bluebird, project x-ray], level: confidential }\n"
    "    - { name: corp-hosts, regex: '[a-z0-9-]+\\.corp\\.example\\.com', level: internal }\n";

/* The config, loaded once; aborts if the loader refuses it. */
static struct config *fuzz_policy(void)
{
    static struct config *cfg;
    if (cfg)
        return cfg;
    struct config_errors errs = { 0 };
    cfg = config_load_string("fuzz-policy.yaml", fuzz_policy_yaml, strlen(fuzz_policy_yaml), &errs);
    if (!cfg) {
        config_errors_print(&errs, "fuzz-policy.yaml", stderr);
        abort();
    }
    config_errors_free(&errs);
    return cfg;
}
#endif
