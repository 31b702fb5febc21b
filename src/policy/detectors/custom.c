/* custom.c — the operator's own detectors: `keywords` (case-insensitive,
 * whole word, any run of whitespace where the keyword has a space) and
 * `regex`, all compiled into one Hyperscan block-mode database per config. A
 * match's id is the detector's index in cfg->detectors; offsets come from
 * HS_FLAG_SOM_LEFTMOST. */
#include <stdio.h>
#include <stdlib.h>
#include <limits.h>
#include "policy/detectors/custom.h"

struct custom_db {
    hs_database_t *db;
    unsigned long gen;          /* unique per database: per-thread scratch is checked against it */
    int n_detectors;
    unsigned char *keyword;     /* per detector: 1 = keywords (whole-word check) */
};

static unsigned long next_gen = 1;

static int ascii_space(unsigned char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

/* Any run of ASCII whitespace, as a Hyperscan class. */
#define SPACE_RUN "[\\x09-\\x0d\\x20]+"

/* Hyperscan pattern matching keyword `word`: a run of whitespace in it
 * stands for any run of ASCII whitespace, because text wrapped or aligned
 * ("Project\nX-Ray", "Project  X-Ray") reads as the same words; every other
 * non-alphanumeric byte becomes \xHH, a literal. */
static char *keyword_pattern(const char *word)
{
    size_t n = strlen(word);
    char *out = malloc(n * (sizeof(SPACE_RUN) - 1) + 1);
    if (!out)
        return NULL;
    char *o = out;
    for (const unsigned char *p = (const unsigned char *)word; *p; p++) {
        if (is_alnum(*p)) {
            *o++ = (char)*p;
        } else if (ascii_space(*p)) {
            while (ascii_space(p[1]))
                p++;
            memcpy(o, SPACE_RUN, sizeof(SPACE_RUN) - 1);
            o += sizeof(SPACE_RUN) - 1;
        } else {
            snprintf(o, 5, "\\x%02x", *p);
            o += 4;
        }
    }
    *o = '\0';
    return out;
}

int custom_build(const struct config *cfg, struct custom_db **out, char *err, size_t errlen)
{
    int rc = -1;
    unsigned count = 0, k = 0;
    char **exprs = NULL;
    unsigned *flags = NULL, *ids = NULL;
    int *owner = NULL;
    hs_compile_error_t *cerr = NULL;
    struct custom_db *cdb = NULL;

    *out = NULL;
    for (int i = 0; i < cfg->n_detectors; i++) {
        const struct detector *d = &cfg->detectors[i];
        if (d->kind == DETECTOR_KEYWORDS)
            count += d->n_keywords > 0 ? (unsigned)d->n_keywords : 0;
        else if (d->kind == DETECTOR_REGEX)
            count++;
    }
    if (count == 0)
        return 0;
    if (hs_valid_platform() != HS_SUCCESS) {
        snprintf(err, errlen, "keywords/regex detectors need a CPU with SSSE3 (Hyperscan)");
        return -1;
    }
    exprs = calloc(count, sizeof(*exprs));
    flags = calloc(count, sizeof(*flags));
    ids = calloc(count, sizeof(*ids));
    owner = calloc(count, sizeof(*owner));
    cdb = calloc(1, sizeof(*cdb));
    if (!exprs || !flags || !ids || !owner || !cdb)
        goto oom;
    cdb->n_detectors = cfg->n_detectors;
    cdb->keyword = calloc((size_t)cfg->n_detectors, 1);
    if (!cdb->keyword)
        goto oom;
    for (int i = 0; i < cfg->n_detectors; i++) {
        const struct detector *d = &cfg->detectors[i];
        if (d->kind == DETECTOR_KEYWORDS) {
            cdb->keyword[i] = 1;
            for (int w = 0; w < d->n_keywords; w++) {
                if (!d->keywords[w] || !d->keywords[w][0]) {
                    snprintf(err, errlen, "detector '%s': empty keyword", d->name);
                    goto out;
                }
                exprs[k] = keyword_pattern(d->keywords[w]);
                if (!exprs[k])
                    goto oom;
                flags[k] = HS_FLAG_CASELESS | HS_FLAG_SOM_LEFTMOST;
                ids[k] = (unsigned)i;
                owner[k++] = i;
            }
        } else if (d->kind == DETECTOR_REGEX) {
            if (!d->regex || !d->regex[0]) {
                snprintf(err, errlen, "detector '%s': empty regex", d->name);
                goto out;
            }
            exprs[k] = strdup(d->regex);
            if (!exprs[k])
                goto oom;
            flags[k] = HS_FLAG_SOM_LEFTMOST | HS_FLAG_MULTILINE;
            ids[k] = (unsigned)i;
            owner[k++] = i;
        }
    }
    if (hs_compile_multi((const char *const *)exprs, flags, ids, k, HS_MODE_BLOCK, NULL,
                         &cdb->db, &cerr) != HS_SUCCESS) {
        if (cerr && cerr->expression >= 0 && (unsigned)cerr->expression < k)
            snprintf(err, errlen, "detector '%s': bad %s: %s",
                     cfg->detectors[owner[cerr->expression]].name,
                     cfg->detectors[owner[cerr->expression]].kind == DETECTOR_REGEX ? "regex" : "keyword",
                     cerr->message);
        else
            snprintf(err, errlen, "cannot compile keywords/regex: %s", cerr ? cerr->message : "unknown error");
        goto out;
    }
    cdb->gen = __atomic_fetch_add(&next_gen, 1, __ATOMIC_RELAXED);
    *out = cdb;
    cdb = NULL;
    rc = 0;
    goto out;
oom:
    snprintf(err, errlen, "out of memory");
out:
    if (cerr)
        hs_free_compile_error(cerr);
    for (unsigned i = 0; exprs && i < count; i++)
        free(exprs[i]);
    free(exprs);
    free(flags);
    free(ids);
    free(owner);
    custom_free(cdb);
    return rc;
}

void custom_free(struct custom_db *cdb)
{
    if (!cdb)
        return;
    hs_free_database(cdb->db);
    free(cdb->keyword);
    free(cdb);
}

struct match_ctx {
    const struct custom_db *cdb;
    const unsigned char *s;
    size_t n;
    const struct hit_sink *k;
};

static int word_byte(unsigned char c) { return is_alnum(c) || c == '_'; }

static int on_match(unsigned int id, unsigned long long from, unsigned long long to,
                    unsigned int flags, void *ctx)
{
    struct match_ctx *m = ctx;
    (void)flags;
    if (id >= (unsigned)m->cdb->n_detectors || to > m->n || from >= to)
        return 0;
    if (m->cdb->keyword[id]) {
        /* Whole word: no word byte glued to a word-byte edge of the keyword. */
        if (from > 0 && word_byte(m->s[from]) && word_byte(m->s[from - 1]))
            return 0;
        if (to < m->n && word_byte(m->s[to - 1]) && word_byte(m->s[to]))
            return 0;
    }
    m->k->hit(m->k->ctx, (int)id, (size_t)from, (size_t)to);
    return 0;
}

int custom_scan(const struct custom_db *cdb, hs_scratch_t **scratch, unsigned long *gen,
                const unsigned char *s, size_t n, const struct hit_sink *k)
{
    if (!cdb || n == 0)
        return 0;
    if (n > UINT_MAX)
        return -1;
    if (*gen != cdb->gen || !*scratch) {
        if (hs_alloc_scratch(cdb->db, scratch) != HS_SUCCESS)
            return -1;
        *gen = cdb->gen;
    }
    struct match_ctx m = { cdb, s, n, k };
    hs_error_t rc = hs_scan(cdb->db, (const char *)s, (unsigned)n, 0, *scratch, on_match, &m);
    return rc == HS_SUCCESS ? 0 : -1;
}
