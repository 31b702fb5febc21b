/* classify_bench.c — classifier throughput on one core: a 100 KB PII-free
 * prompt and a PII-dense one, with every built-in detector, 20 keywords and
 * 5 regexes enabled: ordinary prose, digit- and symbol-heavy code/notes (both
 * PII-free), text with PII every dozen words, and hostile assignment chains
 * (the worst case the fuzzer found). Prints MB/s and microseconds per 100 KB
 * for classify_text and for classify_request (same text in a chat body: the
 * request path's cost). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "airlock/classify.h"

#define SIZE (100 * 1024)

/* Ordinary prose: what most prompts are. */
static const char *const prose[] = {
    "the", "of", "and", "to", "in", "is", "that", "for", "it", "as", "was", "with", "be", "by",
    "on", "not", "he", "this", "are", "or", "his", "from", "at", "which", "but", "have", "an",
    "had", "they", "you", "were", "their", "one", "all", "we", "can", "her", "has", "there",
    "been", "if", "more", "when", "will", "would", "who", "so", "no", "summary", "customer",
    "contract", "quarterly", "revenue", "please", "explain", "rewrite", "paragraph", "below,",
    "clearly.", "However,", "The", "report", "In", "2023", "12", "percent", "growth;", "team",
    "meeting", "notes:", "deadline", "Friday.", "(see", "appendix)", "\"draft\"", "it's",
};

/* Code and notes: digits, '=', ':' and '-' every few bytes. */
static const char *const words[] = {
    "the", "model", "should", "summarise", "quarterly", "report", "and", "explain", "why",
    "revenue", "grew", "in", "region", "while", "costs", "fell", "please", "write", "a",
    "function", "that", "parses", "input", "returns", "list", "of", "values", "with", "error",
    "handling", "for", "each", "case", "Meeting", "notes:", "we", "agreed", "to", "ship",
    "version", "2.4", "on", "Friday,", "after", "3", "reviews;", "see", "section", "12.", "The",
    "API", "uses", "JSON", "over", "HTTP/1.1", "(port", "8080).", "x", "=", "y", "+", "1;",
    "if", "(n", ">", "0)", "return", "n", "*", "2;", "Total:", "42", "items", "at", "$19.99",
    "2024-05-01", "was", "deadline", "user_id", "key", "value", "token", "count", "A", "B",
};

static const char *const pii[] = {
    "jane.doe@example.com", "(555) 123-4567", "4111 1111 1111 1111", "123-45-6789",
    "DE89 3704 0044 0532 0130 00", "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z", "192.168.10.20",
    "+44 20 7946 0958", "AKIAIOSFODNN7EXAMPLE", "password=hunter2!", "Nightjar",
    "db-7.corp.example.com",
};

/* Hostile text: assignment chains that make the secret_key detector look
 * at a name and a value at every '=' or ':' (what the fuzzer found slow). */
static const char *const hostile[] = {
    "API_KEY=KEY=", "token:KEY:", "password=", "secret=", "KEY=", "auth:", "Bearer", "x=",
};

static void fill(char *buf, size_t n, int kind)
{
    if (kind == 3) {
        size_t len = 0;
        for (unsigned i = 0; len + 16 < n; i++) {
            const char *w = hostile[(i * 7u) % (sizeof(hostile) / sizeof(hostile[0]))];
            memcpy(buf + len, w, strlen(w));
            len += strlen(w);
        }
        memset(buf + len, ' ', n - len);
        return;
    }
    const char *const *vocab = kind == 0 ? prose : words;
    size_t nvocab = kind == 0 ? sizeof(prose) / sizeof(prose[0]) : sizeof(words) / sizeof(words[0]);
    int dense = kind == 2;
    unsigned seed = 12345;
    size_t len = 0;
    int since = 0;
    while (len < n) {
        seed = seed * 1103515245u + 12345u;
        const char *w;
        if (dense && since >= 12) {
            w = pii[(seed >> 16) % (sizeof(pii) / sizeof(pii[0]))];
            since = 0;
        } else {
            w = vocab[(seed >> 16) % nvocab];
            since++;
        }
        size_t wl = strlen(w);
        if (len + wl + 1 > n)
            break;
        memcpy(buf + len, w, wl);
        len += wl;
        buf[len++] = (seed >> 8) % 17 == 0 ? '\n' : ' ';
    }
    memset(buf + len, ' ', n - len);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void report(const char *what, double secs, int iters, size_t bytes, int fired)
{
    double per = secs / iters;
    printf("%-30s %8.0f MB/s  %8.1f us per 100 KB  (%d detectors fired)\n", what,
           (double)bytes / per / 1e6, per * 1e6 * (double)SIZE / (double)bytes, fired);
}

int main(int argc, char **argv)
{
    static char *levels[] = { "public", "internal", "confidential", "secret" };
    static char *kw[20] = { "Nightjar", "Bluebird", "Kestrel", "Osprey", "Falcon", "Harrier",
                            "Merlin", "Peregrine", "Goshawk", "Buzzard", "Condor", "Kite",
                            "Sparrowhawk", "Hobby", "Lanner", "Saker", "Gyrfalcon", "Eagle Owl",
                            "Project Zephyr", "Operation Tempest" };
    struct detector dets[] = {
        { "email", DETECTOR_BUILTIN, BUILTIN_EMAIL, NULL, 0, NULL, 2 },
        { "phone", DETECTOR_BUILTIN, BUILTIN_PHONE, NULL, 0, NULL, 2 },
        { "credit_card", DETECTOR_BUILTIN, BUILTIN_CREDIT_CARD, NULL, 0, NULL, 3 },
        { "us_ssn", DETECTOR_BUILTIN, BUILTIN_US_SSN, NULL, 0, NULL, 3 },
        { "iban", DETECTOR_BUILTIN, BUILTIN_IBAN, NULL, 0, NULL, 3 },
        { "secret_key", DETECTOR_BUILTIN, BUILTIN_SECRET_KEY, NULL, 0, NULL, 3 },
        { "ipv4", DETECTOR_BUILTIN, BUILTIN_IPV4, NULL, 0, NULL, 1 },
        { "codenames", DETECTOR_KEYWORDS, 0, kw, 20, NULL, 2 },
        { "corp-hosts", DETECTOR_REGEX, 0, NULL, 0, "[a-z0-9-]+\\.corp\\.example\\.com", 1 },
        { "tickets", DETECTOR_REGEX, 0, NULL, 0, "\\bSEC-[0-9]{4,6}\\b", 1 },
        { "patients", DETECTOR_REGEX, 0, NULL, 0, "MRN[: ]?[0-9]{7}", 3 },
        { "badge", DETECTOR_REGEX, 0, NULL, 0, "(?i)badge\\s+no\\.?\\s*[0-9]{5}", 2 },
        { "contract", DETECTOR_REGEX, 0, NULL, 0, "CTR-[A-Z]{2}-[0-9]{6}", 2 },
    };
    struct config cfg = { 0 };
    for (int i = 0; i < 4; i++)
        cfg.levels[i] = levels[i];
    cfg.n_levels = 4;
    cfg.unreadable_level = 3;
    cfg.detectors = dets;
    cfg.n_detectors = (int)(sizeof(dets) / sizeof(dets[0]));
    char err[256];
    struct classifier *c = classifier_build(&cfg, err, sizeof(err));
    if (!c) {
        fprintf(stderr, "classifier_build: %s\n", err);
        return 1;
    }
    int iters = argc > 1 ? atoi(argv[1]) : 2000;
    char *text = malloc(SIZE + 1);
    if (!text)
        return 1;
    static const char *const kinds[] = { "prose", "code/notes", "PII-dense", "hostile (KEY=KEY=...)" };
    for (int kind = 0; kind <= 3; kind++) {
        char what[64];
        fill(text, SIZE, kind);
        text[SIZE] = '\0';
        struct classification out;
        classify_text(c, text, SIZE, &out);     /* warm up */
        double t0 = now();
        for (int i = 0; i < iters; i++)
            classify_text(c, text, SIZE, &out);
        snprintf(what, sizeof(what), "classify_text, %s", kinds[kind]);
        report(what, now() - t0, iters, SIZE, out.n_hits);

        cJSON *body = cJSON_CreateObject();
        cJSON *msgs = cJSON_AddArrayToObject(body, "messages");
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "role", "user");
        cJSON_AddStringToObject(m, "content", text);
        cJSON_AddItemToArray(msgs, m);
        cJSON_AddStringToObject(body, "model", "gpt-4o-mini");
        classify_request(c, &cfg, body, &out);
        t0 = now();
        for (int i = 0; i < iters; i++)
            classify_request(c, &cfg, body, &out);
        snprintf(what, sizeof(what), "classify_request, %s", kinds[kind]);
        report(what, now() - t0, iters, SIZE, out.n_hits);
        cJSON_Delete(body);
    }
    free(text);
    classifier_free(c);
    classify_thread_release();
    return 0;
}
