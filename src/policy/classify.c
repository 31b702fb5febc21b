/* classify.c — sensitivity classification of a request. The parsed body is
 * flattened into one per-thread buffer (every key and string, decoded, each
 * followed by '\n'; see flatten below), which every built-in detector and the
 * Hyperscan database of keywords/regexes then scan once. The result is a level
 * plus per-detector counts and offsets; matched text is never kept. */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "airlock/classify.h"
#include "policy/detectors/custom.h"

#define REDECODE_MAX 3              /* JSON-inside-a-string levels decoded again */
#define UNESCAPE_MAX 3              /* backslash-escape levels decoded again */
#define BUF_KEEP (16u << 20)        /* per-thread buffer kept between requests */
#define DET_BLOB (-1)               /* pseudo-detector: base64 blobs */

struct classifier {
    int top;                    /* n_levels - 1 */
    int unreadable_level;
    int n_detectors;
    const struct detector *detectors;   /* cfg->detectors; the config outlives us */
    struct custom_db *custom;
};

/* Text parts of one content array joined with no separator: matches inside
 * it count only if they cross a join (the parts were scanned on their own). */
struct region {
    size_t start, end;
    size_t first_join, n_joins; /* into tls_state.joins */
};

struct acc {
    unsigned count;
    size_t offsets[CLASSIFY_MAX_OFFSETS];
    int n_offsets;
    size_t last_end;
};

struct tls_state {
    hs_scratch_t *scratch;
    unsigned long scratch_gen;
    unsigned char *buf;
    size_t len, cap;
    struct region *regions;
    size_t n_regions, cap_regions;
    size_t *joins;
    size_t n_joins, cap_joins;
    struct acc *acc;
    size_t cap_acc;
    unsigned blobs;
};

static pthread_key_t tls_key;
static pthread_once_t tls_once = PTHREAD_ONCE_INIT;
static int tls_key_ok;
static __thread struct tls_state *tls;

static void tls_destroy(void *p)
{
    struct tls_state *t = p;
    if (!t)
        return;
    hs_free_scratch(t->scratch);
    free(t->buf);
    free(t->regions);
    free(t->joins);
    free(t->acc);
    free(t);
    tls = NULL;
}

static void tls_make_key(void)
{
    tls_key_ok = pthread_key_create(&tls_key, tls_destroy) == 0;
}

static struct tls_state *tls_get(void)
{
    if (tls)
        return tls;
    pthread_once(&tls_once, tls_make_key);
    struct tls_state *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    if (tls_key_ok && pthread_setspecific(tls_key, t) != 0) {
        free(t);
        return NULL;
    }
    tls = t;
    return t;
}

void classify_thread_release(void)
{
    struct tls_state *t = tls;
    if (!t)
        return;
    if (tls_key_ok)
        pthread_setspecific(tls_key, NULL);
    tls_destroy(t);
}

/* Grows *p (of *cap elements of size elem) to hold at least need. */
static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t ncap = *cap ? *cap : 64;
    while (ncap < need) {
        if (ncap > SIZE_MAX / 2 / elem)
            return -1;
        ncap *= 2;
    }
    void *np = realloc(*p, ncap * elem);
    if (!np)
        return -1;
    *p = np;
    *cap = ncap;
    return 0;
}

struct classifier *classifier_build(const struct config *cfg, char *err, size_t errlen)
{
    struct classifier *c = calloc(1, sizeof(*c));
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->top = cfg->n_levels > 0 ? cfg->n_levels - 1 : 0;
    c->unreadable_level = cfg->unreadable_level;
    if (c->unreadable_level < 0 || c->unreadable_level > c->top)
        c->unreadable_level = c->top;
    c->n_detectors = cfg->n_detectors;
    c->detectors = cfg->detectors;
    for (int i = 0; i < cfg->n_detectors; i++) {
        const struct detector *d = &cfg->detectors[i];
        if (d->kind == DETECTOR_BUILTIN && ((unsigned)d->builtin >= BUILTIN_COUNT)) {
            snprintf(err, errlen, "detector '%s': unknown built-in", d->name ? d->name : "?");
            goto fail;
        }
        if (d->level < 0 || d->level > c->top) {
            snprintf(err, errlen, "detector '%s': level out of range", d->name ? d->name : "?");
            goto fail;
        }
    }
    if (custom_build(cfg, &c->custom, err, errlen) < 0)
        goto fail;
    return c;
fail:
    classifier_free(c);
    return NULL;
}

void classifier_free(struct classifier *c)
{
    if (!c)
        return;
    custom_free(c->custom);
    free(c);
}

/* ---- scanning ---------------------------------------------------------- */

struct scan {
    struct tls_state *t;
    const struct region *regions;
    size_t n_regions;
};

/* Inside a joined region, a match that does not cross a join was already
 * found in the part it lies in. */
static int already_seen(const struct scan *sc, size_t start, size_t end)
{
    size_t lo = 0, hi = sc->n_regions;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (sc->regions[mid].start <= start)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0)
        return 0;
    const struct region *r = &sc->regions[lo - 1];
    if (start >= r->end || end > r->end)
        return 0;
    for (size_t j = 0; j < r->n_joins; j++) {
        size_t at = sc->t->joins[r->first_join + j];
        if (start < at && at < end)
            return 0;
    }
    return 1;
}

static void on_hit(void *ctx, int det, size_t start, size_t end)
{
    struct scan *sc = ctx;
    if (sc->n_regions && already_seen(sc, start, end))
        return;
    if (det == DET_BLOB) {
        sc->t->blobs++;
        return;
    }
    struct acc *a = &sc->t->acc[det];
    if (a->count && start < a->last_end)
        return;                 /* overlaps the previous match (regex end-by-end reports) */
    a->count++;
    a->last_end = end;
    if (a->n_offsets < CLASSIFY_MAX_OFFSETS)
        a->offsets[a->n_offsets++] = start;
}

/* Email and secret keys scan on their own; the number-shaped detectors share
 * one pass (a built-in listed twice gets a pass of its own for the copy). */
static void run_builtins(const struct classifier *c, struct scan *sc, const unsigned char *text,
                         size_t len)
{
    struct hit_sink sinks[NUM_KINDS];
    struct numeric_sinks num = { { NULL } };
    int any_numeric = 0;
    for (int i = 0; i < c->n_detectors; i++) {
        const struct detector *d = &c->detectors[i];
        if (d->kind != DETECTOR_BUILTIN)
            continue;
        struct hit_sink k = { on_hit, sc, i };
        enum numeric_kind kind;
        switch (d->builtin) {
        case BUILTIN_EMAIL: detect_email(text, len, &k); continue;
        case BUILTIN_SECRET_KEY: detect_keys(text, len, &k); continue;
        case BUILTIN_PHONE: kind = NUM_PHONE; break;
        case BUILTIN_CREDIT_CARD: kind = NUM_CARD; break;
        case BUILTIN_US_SSN: kind = NUM_SSN; break;
        case BUILTIN_IBAN: kind = NUM_IBAN; break;
        case BUILTIN_IPV4: kind = NUM_IPV4; break;
        default: continue;
        }
        if (num.k[kind]) {
            struct numeric_sinks one = { { NULL } };
            one.k[kind] = &k;
            detect_numeric(text, len, &one);
            continue;
        }
        sinks[kind] = k;
        num.k[kind] = &sinks[kind];
        any_numeric = 1;
    }
    if (any_numeric)
        detect_numeric(text, len, &num);
}

void classification_clear(struct classification *out)
{
    out->level = 0;
    out->unreadable = 0;
    out->n_hits = 0;
}

static void fail_closed(const struct classifier *c, struct classification *out)
{
    classification_clear(out);
    out->level = c ? c->top : 0;
}

/* Runs every detector over text and fills out (which the caller zeroed). */
static int scan_text(const struct classifier *c, struct tls_state *t, const unsigned char *text,
                     size_t len, size_t n_regions, struct classification *out)
{
    if (grow((void **)&t->acc, &t->cap_acc, (size_t)c->n_detectors + 1, sizeof(*t->acc)) < 0)
        return -1;
    memset(t->acc, 0, sizeof(*t->acc) * ((size_t)c->n_detectors + 1));
    t->blobs = 0;
    struct scan sc = { t, t->regions, n_regions };
    run_builtins(c, &sc, text, len);
    struct hit_sink ck = { on_hit, &sc, 0 };
    if (custom_scan(c->custom, &t->scratch, &t->scratch_gen, text, len, &ck) < 0)
        return -1;
    struct hit_sink bk = { on_hit, &sc, DET_BLOB };
    detect_blobs(text, len, &bk);

    out->unreadable += (int)t->blobs;
    int level = out->unreadable > 0 ? c->unreadable_level : 0;
    for (int i = 0; i < c->n_detectors; i++) {
        const struct acc *a = &t->acc[i];
        if (!a->count)
            continue;
        if (c->detectors[i].level > level)
            level = c->detectors[i].level;
        if (out->n_hits < CLASSIFY_MAX_HITS) {
            struct detector_hit *h = &out->hits[out->n_hits++];
            h->detector = c->detectors[i].name;
            h->level = c->detectors[i].level;
            h->count = a->count;
            h->n_offsets = a->n_offsets;
            memcpy(h->offsets, a->offsets, sizeof(h->offsets[0]) * (size_t)a->n_offsets);
        }
    }
    out->level = level;
    return 0;
}

void classify_text(const struct classifier *c, const char *text, size_t len,
                   struct classification *out)
{
    classification_clear(out);
    struct tls_state *t = tls_get();
    if (!c || !t || (!text && len)) {
        fail_closed(c, out);
        return;
    }
    if (scan_text(c, t, (const unsigned char *)(text ? text : ""), len, 0, out) < 0)
        fail_closed(c, out);
}

/* ---- flattening a request ---------------------------------------------- */

/* The scanned text of a request: a depth-first walk of the body in document
 * order appends every object key and every string value, decoded, each
 * followed by '\n'; integers of 9+ digits are appended in decimal. After the
 * members of a content array with two or more text parts comes one more line:
 * those parts' texts joined with nothing between them. A string that holds
 * JSON with escapes in it (tool call arguments, tool results) is parsed and its
 * keys and strings are appended right after it, decoded a second time. A key
 * or string that holds backslash escapes but is not such JSON (truncated, or
 * text quoting an escaped string) is appended again right after itself with
 * them decoded, up to three times while that changes it. */
struct flat {
    struct tls_state *t;
    int unreadable;
    int failed;
    int redecode;
};

static void append(struct flat *f, const char *s, size_t n, int newline)
{
    struct tls_state *t = f->t;
    if (f->failed)
        return;
    if (grow((void **)&t->buf, &t->cap, t->len + n + 1, 1) < 0) {
        f->failed = 1;
        return;
    }
    memcpy(t->buf + t->len, s, n);
    t->len += n;
    if (newline)
        t->buf[t->len++] = '\n';
}

/* data:[<mediatype>][;base64],<data> */
static int data_uri(const char *s, size_t n)
{
    if (n < 6 || strncasecmp(s, "data:", 5) != 0)
        return 0;
    for (size_t i = 5; i < n && i < 256; i++) {
        if (s[i] == ',')
            return 1;
        if (s[i] == ' ' || s[i] == '\n' || s[i] == '\t' || s[i] == '\r')
            return 0;
    }
    return 0;
}

static int readable_type(const char *type)
{
    static const char *const ok[] = { "text", "input_text", "output_text", "refusal",
                                      "tool_use", "tool_result", NULL };
    for (int i = 0; ok[i]; i++)
        if (strcmp(type, ok[i]) == 0)
            return 1;
    return 0;
}

/* An array of numbers: token ids (embeddings / completions input). */
static int token_array(const cJSON *v)
{
    if (!cJSON_IsArray(v) || !v->child)
        return 0;
    for (const cJSON *e = v->child; e; e = e->next)
        if (!cJSON_IsNumber(e))
            return 0;
    return 1;
}

static void walk(struct flat *f, const cJSON *v, const char *key, int depth);

/* Returns 1 when s was JSON and its keys and strings have been appended. */
static int redecode(struct flat *f, const char *s, size_t n, int depth)
{
    size_t i = 0;
    while (i < n && (s[i] == ' ' || s[i] == '\n' || s[i] == '\t' || s[i] == '\r'))
        i++;
    if (f->redecode >= REDECODE_MAX || i == n || (s[i] != '{' && s[i] != '[') ||
        !memchr(s, '\\', n))
        return 0;
    cJSON *inner = cJSON_ParseWithLength(s, n);
    if (!inner)
        return 0;
    f->redecode++;
    walk(f, inner, NULL, depth + 1);
    f->redecode--;
    cJSON_Delete(inner);
    return 1;
}

/* A key or string with backslash escapes that is not JSON the parser takes
 * (a truncated tool call, text quoting an escaped string) is appended again
 * with them decoded, up to UNESCAPE_MAX times while that changes it: a
 * model reads "ann\u0040corp.io" as an address. */
static void unescape_again(struct flat *f, const char *s, size_t n)
{
    struct tls_state *t = f->t;
    size_t prev = 0;            /* where the last decoded copy starts in t->buf */
    for (int level = 0; level < UNESCAPE_MAX && !f->failed; level++) {
        const unsigned char *src = level ? t->buf + prev : (const unsigned char *)s;
        if (!memchr(src, '\\', n))
            return;
        if (grow((void **)&t->buf, &t->cap, t->len + n + 1, 1) < 0) {
            f->failed = 1;
            return;
        }
        src = level ? t->buf + prev : (const unsigned char *)s;
        size_t m = unescape_text(src, n, t->buf + t->len);
        if (!m)
            return;
        prev = t->len;
        t->len += m;
        t->buf[t->len++] = '\n';
        n = m;
    }
}

static void content_array(struct flat *f, const cJSON *arr, int depth)
{
    int n_text = 0;
    for (const cJSON *part = arr->child; part; part = part->next) {
        if (cJSON_IsObject(part)) {
            const cJSON *type = cJSON_GetObjectItemCaseSensitive(part, "type");
            const cJSON *text = cJSON_GetObjectItemCaseSensitive(part, "text");
            if (cJSON_IsString(type) ? !readable_type(type->valuestring) : !cJSON_IsString(text))
                f->unreadable++;
            n_text += cJSON_IsString(text);
        } else if (cJSON_IsString(part)) {
            n_text++;
        }
        walk(f, part, NULL, depth + 1);
    }
    if (n_text < 2 || f->failed)
        return;
    struct tls_state *t = f->t;
    struct region r = { t->len, 0, t->n_joins, 0 };
    int first = 1;
    for (const cJSON *part = arr->child; part; part = part->next) {
        const cJSON *text = cJSON_IsObject(part) ? cJSON_GetObjectItemCaseSensitive(part, "text") : part;
        if (!cJSON_IsString(text) || !text->valuestring)
            continue;
        if (!first) {
            if (grow((void **)&t->joins, &t->cap_joins, t->n_joins + 1, sizeof(size_t)) < 0) {
                f->failed = 1;
                return;
            }
            t->joins[t->n_joins++] = t->len;
            r.n_joins++;
        }
        first = 0;
        append(f, text->valuestring, strlen(text->valuestring), 0);
    }
    r.end = t->len;
    append(f, "", 0, 1);
    if (f->failed || grow((void **)&t->regions, &t->cap_regions, t->n_regions + 1, sizeof(r)) < 0) {
        f->failed = 1;
        return;
    }
    t->regions[t->n_regions++] = r;
}

static void walk(struct flat *f, const cJSON *v, const char *key, int depth)
{
    if (f->failed)
        return;
    if (cJSON_IsString(v) && v->valuestring) {
        size_t n = strlen(v->valuestring);
        if (data_uri(v->valuestring, n))
            f->unreadable++;
        append(f, v->valuestring, n, 1);
        if (!redecode(f, v->valuestring, n, depth))
            unescape_again(f, v->valuestring, n);
    } else if (cJSON_IsNumber(v)) {
        double d = fabs(v->valuedouble);
        if (d >= 1e8 && d < 1e19 && d == floor(d)) {
            char num[32];
            int len = snprintf(num, sizeof(num), "%.0f", d);
            if (len > 0 && (size_t)len < sizeof(num))
                append(f, num, (size_t)len, 1);
        }
    } else if (cJSON_IsArray(v)) {
        if (depth == 1 && key && (strcmp(key, "input") == 0 || strcmp(key, "prompt") == 0)) {
            if (token_array(v))
                f->unreadable++;
            for (const cJSON *e = v->child; e; e = e->next)
                f->unreadable += token_array(e);
        }
        if (key && strcmp(key, "content") == 0) {
            content_array(f, v, depth);
            return;
        }
        for (const cJSON *e = v->child; e; e = e->next)
            walk(f, e, NULL, depth + 1);
    } else if (cJSON_IsObject(v)) {
        for (const cJSON *e = v->child; e; e = e->next) {
            if (e->string) {
                size_t n = strlen(e->string);
                append(f, e->string, n, 1);
                unescape_again(f, e->string, n);
            }
            walk(f, e, e->string, depth + 1);
        }
    }
}

void classify_request(const struct classifier *c, const struct config *cfg,
                      const cJSON *body, struct classification *out)
{
    classification_clear(out);
    struct tls_state *t = tls_get();
    if (!c || !t) {
        fail_closed(c, out);
        if (!c && cfg && cfg->n_levels > 0)
            out->level = cfg->n_levels - 1;
        return;
    }
    t->len = 0;
    t->n_regions = 0;
    t->n_joins = 0;
    struct flat f = { t, 0, 0, 0 };
    if (body)
        walk(&f, body, NULL, 0);
    out->unreadable = f.unreadable;
    if (f.failed || scan_text(c, t, t->buf ? t->buf : (const unsigned char *)"", t->len,
                              t->n_regions, out) < 0)
        fail_closed(c, out);
    if (t->cap > BUF_KEEP) {
        free(t->buf);
        t->buf = NULL;
        t->cap = 0;
    }
}
