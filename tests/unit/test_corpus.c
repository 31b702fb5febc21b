/* test_corpus.c — each built-in detector against the labelled corpus in
 * tests/data/corpus (made by tests/data/gen_corpus.py): one line per sample,
 * classified with only that detector enabled. Prints recall and false-positive
 * rate, and fails a detector below 0.99 recall or above 0.01 FPR. Run from the
 * repository root. */
#include <stdlib.h>
#include "t.h"
#include "airlock/classify.h"

#define MIN_RECALL 0.99
#define MAX_FPR 0.01

/* Counts lines of path on which the detector fires; *lines gets the total.
 * Returns -1 if the file cannot be read. */
static int count_fired(struct classifier *c, const char *path, int *lines)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "  cannot open %s (run from the repository root)\n", path);
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int fired = 0;
    *lines = 0;
    while ((len = getline(&line, &cap, f)) > 0) {
        if (line[len - 1] == '\n')
            line[--len] = '\0';
        if (len == 0)
            continue;
        struct classification out;
        classify_text(c, line, (size_t)len, &out);
        (*lines)++;
        fired += out.n_hits > 0;
    }
    free(line);
    fclose(f);
    return fired;
}

static void measure(const char *name, enum builtin_detector which)
{
    static char *levels[] = { "public", "secret" };
    struct detector d = { (char *)name, DETECTOR_BUILTIN, which, NULL, 0, NULL, 1 };
    struct config cfg;
    char err[256], path[256];
    memset(&cfg, 0, sizeof(cfg));
    cfg.levels[0] = levels[0];
    cfg.levels[1] = levels[1];
    cfg.n_levels = 2;
    cfg.unreadable_level = 1;
    cfg.detectors = &d;
    cfg.n_detectors = 1;
    struct classifier *c = classifier_build(&cfg, err, sizeof(err));
    CHECK(c != NULL);
    if (!c)
        return;
    int npos = 0, nneg = 0;
    snprintf(path, sizeof(path), "tests/data/corpus/%s.pos", name);
    int tp = count_fired(c, path, &npos);
    snprintf(path, sizeof(path), "tests/data/corpus/%s.neg", name);
    int fp = count_fired(c, path, &nneg);
    classifier_free(c);
    CHECK(tp >= 0 && fp >= 0 && npos >= 200 && nneg >= 200);
    if (tp < 0 || fp < 0 || !npos || !nneg)
        return;
    double recall = (double)tp / npos, fpr = (double)fp / nneg;
    printf("  %-12s recall %.3f (%d/%d)  FPR %.3f (%d/%d)\n", name, recall, tp, npos, fpr, fp, nneg);
    CHECK(recall >= MIN_RECALL);
    CHECK(fpr <= MAX_FPR);
}

static void test_email(void) { measure("email", BUILTIN_EMAIL); }
static void test_phone(void) { measure("phone", BUILTIN_PHONE); }
static void test_credit_card(void) { measure("credit_card", BUILTIN_CREDIT_CARD); }
static void test_us_ssn(void) { measure("us_ssn", BUILTIN_US_SSN); }
static void test_iban(void) { measure("iban", BUILTIN_IBAN); }
static void test_secret_key(void) { measure("secret_key", BUILTIN_SECRET_KEY); }
static void test_ipv4(void) { measure("ipv4", BUILTIN_IPV4); }

int main(void)
{
    RUN(test_email);
    RUN(test_phone);
    RUN(test_credit_card);
    RUN(test_us_ssn);
    RUN(test_iban);
    RUN(test_secret_key);
    RUN(test_ipv4);
    classify_thread_release();
    TEST_DONE();
}
