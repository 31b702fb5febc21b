/* sensitivity.c — the `sensitivity:` part of airlock's schema: the level
 * header, the unreadable-content level and the detectors (built-ins at
 * their default levels, keyword lists, regexes), with the defaults
 * PRODUCT.md gives when the section is absent. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "airlock/config.h"
#include "config/schema.h"
#include "config/yaml.h"

static const char *const builtin_names[] = {
    "email", "phone", "credit_card", "us_ssn", "iban", "secret_key", "ipv4", NULL,
};

/* A built-in's default level, by the default level names; the top level
 * when the operator's levels do not have that name (fail closed). */
static int builtin_default_level(const struct config *cfg, enum builtin_detector b)
{
    static const char *const defaults[BUILTIN_COUNT] = {
        "confidential", "confidential", "secret", "secret", "secret", "secret", "internal",
    };
    int i = config_level_index(cfg, defaults[b]);
    return i >= 0 ? i : cfg->n_levels - 1;
}

void default_detectors(struct config *cfg)
{
    cfg->detectors = calloc(BUILTIN_COUNT, sizeof(*cfg->detectors));
    if (!cfg->detectors)
        return;
    for (int i = 0; i < BUILTIN_COUNT; i++) {
        struct detector *d = &cfg->detectors[cfg->n_detectors++];
        d->name = strdup(builtin_names[i]);
        d->kind = DETECTOR_BUILTIN;
        d->builtin = (enum builtin_detector)i;
        d->level = builtin_default_level(cfg, d->builtin);
    }
}

static void load_detector(struct loader *l, yaml_node_t *n, struct detector *d)
{
    struct field f[] = { { "builtin", 0, 0 }, { "name", 0, 0 }, { "keywords", 0, 0 },
                         { "regex", 0, 0 }, { "level", 0, 0 }, { 0, 0, 0 } };
    d->level = -1;
    if (read_fields(l, n, f, "detector") < 0)
        return;
    yaml_node_t *builtin = field_value(f, "builtin"), *kw = field_value(f, "keywords"),
                *re = field_value(f, "regex"), *v;
    if (!!builtin + !!kw + !!re != 1) {
        error_at(l, n, "detector: give exactly one of 'builtin', 'keywords' or 'regex'");
        return;
    }
    if ((v = field_value(f, "name")))
        get_name(l, v, "detector name", &d->name);
    if ((v = field_value(f, "level")))
        get_level(l, v, "detector level", &d->level);
    if (builtin) {
        int b = get_enum(l, builtin, "builtin", builtin_names);
        if (b < 0)
            return;
        d->kind = DETECTOR_BUILTIN;
        d->builtin = (enum builtin_detector)b;
        if (!d->name)
            d->name = strdup(builtin_names[b]);
        if (d->level < 0)
            d->level = builtin_default_level(l->cfg, d->builtin);
        return;
    }
    if (!d->name)
        error_at(l, n, "detector: a custom detector needs a 'name'");
    if (!field_value(f, "level"))
        error_at(l, n, "detector '%s': 'level' is required", d->name ? d->name : "?");
    if (re) {
        d->kind = DETECTOR_REGEX;
        get_string(l, re, "regex", &d->regex);
        return;
    }
    d->kind = DETECTOR_KEYWORDS;
    if (!is_seq(kw) || kw->data.sequence.items.top == kw->data.sequence.items.start) {
        error_at(l, kw, "keywords must be a non-empty list of strings");
        return;
    }
    long count = kw->data.sequence.items.top - kw->data.sequence.items.start;
    d->keywords = calloc((size_t)count, sizeof(char *));
    if (!d->keywords)
        return;
    for (yaml_node_item_t *it = kw->data.sequence.items.start; it < kw->data.sequence.items.top; it++) {
        yaml_node_t *k = node_at(l, *it);
        char *word = NULL;
        if (k && get_string(l, k, "keyword", &word) == 0)
            d->keywords[d->n_keywords++] = word;
    }
}

void load_sensitivity(struct loader *l, yaml_node_t *n, yaml_node_t **detectors_node)
{
    struct config *cfg = l->cfg;
    struct field f[] = { { "header", 0, 0 }, { "unreadable_level", 0, 0 }, { "detectors", 0, 0 }, { 0, 0, 0 } };
    if (read_fields(l, n, f, "sensitivity") < 0)
        return;
    yaml_node_t *v;
    if ((v = field_value(f, "header")) && get_string(l, v, "sensitivity.header", &cfg->sensitivity_header) == 0) {
        for (char *p = cfg->sensitivity_header; *p; p++) {
            if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_') {
                error_at(l, v, "sensitivity.header must be an HTTP header name");
                break;
            }
            *p = (char)tolower((unsigned char)*p);
        }
    }
    if ((v = field_value(f, "unreadable_level")))
        get_level(l, v, "unreadable_level", &cfg->unreadable_level);
    /* `detectors: []` turns every detector off; a missing key keeps the built-ins. */
    for (struct field *g = f; g->key; g++) {
        if (strcmp(g->key, "detectors") != 0 || !g->value)
            continue;
        v = g->value;
        *detectors_node = v;
        if (is_null(v)) {
            error_at(l, v, "detectors: write [] to turn every detector off");
            return;
        }
        long count;
        struct detector *list = list_alloc(l, v, "detectors", 4096, sizeof(*cfg->detectors), &count);
        if (!list)
            return;
        for (int k = 0; k < cfg->n_detectors; k++)
            free(cfg->detectors[k].name);
        free(cfg->detectors);
        cfg->detectors = list;
        cfg->n_detectors = 0;
        for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++) {
            yaml_node_t *dn = node_at(l, *it);
            if (!dn)
                continue;
            struct detector *d = &cfg->detectors[cfg->n_detectors++];
            load_detector(l, dn, d);
            for (int k = 0; d->name && k < cfg->n_detectors - 1; k++)
                if (cfg->detectors[k].name && strcmp(cfg->detectors[k].name, d->name) == 0)
                    error_at(l, dn, "duplicate detector '%s'", d->name);
        }
    }
}
