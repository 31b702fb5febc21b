/* test_config.c — the config loader: defaults, every section, and each kind
 * of error with the line:col it points at (all of them, not the first). */
#include <stdlib.h>
#include <unistd.h>

#include "t.h"
#include "airlock/config.h"

static struct config_errors errs;

static struct config *load(const char *yaml)
{
    config_errors_free(&errs);
    return config_load_string("test.yaml", yaml, strlen(yaml), &errs);
}

/* 1 when an error at line:col contains `what`. */
static int has_error(int line, int col, const char *what)
{
    for (int i = 0; i < errs.n; i++)
        if (errs.items[i].line == line && errs.items[i].col == col && strstr(errs.items[i].message, what))
            return 1;
    fprintf(stderr, "  no error %d:%d '%s'; got:\n", line, col, what);
    for (int i = 0; i < errs.n; i++)
        fprintf(stderr, "    %d:%d: %s\n", errs.items[i].line, errs.items[i].col, errs.items[i].message);
    return 0;
}

static void test_defaults(void)
{
    struct config *c = load("backends:\n"
                            "  - { name: ollama, provider: ollama, zone: local, url: 'http://127.0.0.1:11434/v1/' }\n"
                            "  - { name: cloud, zone: cloud, url: 'https://api.example.com/v1' }\n");
    CHECK(c != NULL);
    if (!c)
        return;
    CHECK_STR(c->listen_host, "127.0.0.1");
    CHECK(c->listen_port == 8080);
    CHECK(c->workers >= 1);
    CHECK(c->max_body_bytes == 4u << 20);
    CHECK(c->busy_poll_us == 0);
    CHECK(c->n_levels == 4);
    CHECK_STR(c->levels[3], "secret");
    CHECK_STR(c->sensitivity_header, "x-airlock-level");
    CHECK(c->unreadable_level == 3);
    CHECK(c->n_detectors == BUILTIN_COUNT);
    CHECK(c->classifier != NULL);
    CHECK(c->max_attempts == 3 && c->circuit_failures == 3 && c->circuit_open_ms == 30000);
    CHECK(c->fallback_on == (TRIGGER_CONNECT | TRIGGER_TIMEOUT | TRIGGER_5XX | TRIGGER_429 | TRIGGER_CONTEXT_LENGTH));

    const struct backend *o = &c->backends[0], *cl = &c->backends[1];
    CHECK_STR(o->url, "http://127.0.0.1:11434/v1");     /* trailing slash dropped */
    CHECK(o->clearance == 3 && cl->clearance == 0);     /* local top, cloud lowest */
    CHECK(o->timeouts.connect_ms == 1000 && cl->timeouts.connect_ms == 3000);
    CHECK(o->timeouts.first_byte_ms == 60000 && o->timeouts.idle_ms == 30000 && o->timeouts.total_ms == 600000);
    CHECK(o->health.enabled == 1 && cl->health.enabled == 0);
    CHECK_STR(o->health.path, "http://127.0.0.1:11434/api/tags");
    CHECK_STR(cl->health.path, "https://api.example.com/v1/models");
    CHECK(o->model == NULL && o->api_key == NULL);

    /* no routes: one default route over every backend, in order */
    CHECK(c->n_routes == 1);
    CHECK_STR(c->routes[0].name, "default");
    CHECK(c->routes[0].n_use == 2 && c->routes[0].use[0].backend == 0 && c->routes[0].use[1].backend == 1);
    CHECK(errs.n == 0);
    config_unref(c);
}

static void test_full(void)
{
    setenv("T_CLOUD_KEY", "sk-test-123", 1);
    char keyfile[] = "/tmp/airlock-keyXXXXXX";
    int fd = mkstemp(keyfile);
    CHECK(fd >= 0 && write(fd, "file-key-456\n", 13) == 13);
    close(fd);
    char yaml[4096];
    snprintf(yaml, sizeof yaml,
             "listen: '[::1]:9090'\n"
             "workers: 3\n"
             "max_body_bytes: 65536\n"
             "busy_poll_us: 250\n"
             "levels: [open, restricted, closed]\n"
             "backends:\n"
             "  - name: llama\n"
             "    provider: llamacpp\n"
             "    zone: local\n"
             "    url: http://10.0.0.5:8081/v1\n"
             "    model: qwen\n"
             "    context_window: 4096\n"
             "    timeouts: { connect_ms: 200, first_byte_ms: 5000, idle_ms: 1500, total_ms: 9000 }\n"
             "    retries: 2\n"
             "  - name: cloud\n"
             "    zone: cloud\n"
             "    url: https://api.openai.com/v1\n"
             "    api_key_env: T_CLOUD_KEY\n"
             "    clearance: restricted\n"
             "    price: { input_per_mtok: 0.15, output_per_mtok: 0.6 }\n"
             "    health: { path: /models, interval_ms: 60000 }\n"
             "  - { name: filekey, zone: cloud, url: 'https://x.example/v1', api_key_file: '%s' }\n"
             "sensitivity:\n"
             "  header: X-Level\n"
             "  unreadable_level: restricted\n"
             "  detectors:\n"
             "    - { builtin: email, level: restricted }\n"
             "    - { builtin: iban }\n"
             "    - { name: codenames, keywords: [Nightjar, Bluebird], level: closed }\n"
             "    - { name: hosts, regex: '[a-z]+\\.corp\\.example', level: restricted }\n"
             "routes:\n"
             "  - name: private\n"
             "    when: { level_at_least: closed, stream: false, model: 'gpt-*' }\n"
             "    use: llama\n"
             "  - name: default\n"
             "    use: [cloud/gpt-4o, llama]\n"
             "fallback:\n"
             "  on: [connect, 5xx]\n"
             "  max_attempts: 5\n"
             "  circuit: { failures: 2, open_ms: 1000 }\n",
             keyfile);
    struct config *c = load(yaml);
    unlink(keyfile);
    CHECK(c != NULL);
    if (!c)
        return;
    CHECK_STR(c->listen_host, "::1");
    CHECK(c->listen_port == 9090 && c->workers == 3 && c->max_body_bytes == 65536);
    CHECK(c->busy_poll_us == 250);
    CHECK(c->n_levels == 3 && config_level_index(c, "RESTRICTED") == 1);
    const struct backend *l = config_backend(c, "llama"), *cl = config_backend(c, "cloud");
    CHECK(l && cl);
    if (!l || !cl)
        goto out;
    CHECK(l->provider == PROVIDER_LLAMACPP && l->clearance == 2 && l->retries == 2);
    CHECK_STR(l->health.path, "http://10.0.0.5:8081/health");
    CHECK(l->timeouts.connect_ms == 200 && l->timeouts.idle_ms == 1500 && l->timeouts.total_ms == 9000);
    CHECK_STR(cl->api_key, "sk-test-123");
    CHECK(cl->clearance == 1 && cl->price_output_per_mtok > 0.59 && cl->price_output_per_mtok < 0.61);
    CHECK(cl->health.enabled == 1 && cl->health.interval_ms == 60000);
    CHECK_STR(cl->health.path, "https://api.openai.com/v1/models");
    CHECK_STR(config_backend(c, "filekey")->api_key, "file-key-456");
    CHECK_STR(c->sensitivity_header, "x-level");
    CHECK(c->unreadable_level == 1);
    CHECK(c->n_detectors == 4);
    CHECK(c->detectors[0].level == 1);
    CHECK(c->detectors[1].level == 2);   /* "secret" is not a level here: the top */
    CHECK(c->detectors[2].kind == DETECTOR_KEYWORDS && c->detectors[2].n_keywords == 2);
    CHECK(c->detectors[3].kind == DETECTOR_REGEX);
    CHECK(c->n_routes == 2);
    CHECK(c->routes[0].level_at_least == 2 && c->routes[0].stream == TRI_FALSE);
    CHECK_STR(c->routes[0].model_glob, "gpt-*");
    CHECK(c->routes[0].n_use == 1 && c->routes[0].use[0].backend == 0);
    CHECK(c->routes[1].n_use == 2 && c->routes[1].use[0].backend == 1);
    CHECK_STR(c->routes[1].use[0].model, "gpt-4o");
    CHECK(c->fallback_on == (TRIGGER_CONNECT | TRIGGER_5XX) && c->max_attempts == 5);
    CHECK(c->circuit_failures == 2 && c->circuit_open_ms == 1000);
out:
    config_unref(c);
}

/* Every error in one file, each at its own line:col. */
static void test_errors_all_reported(void)
{
    struct config *c = load("listen: 127.0.0.1:99999\n"               /* 1 */
                            "workers: lots\n"                          /* 2 */
                            "levels: [low, high, low]\n"               /* 3 */
                            "backends:\n"                              /* 4 */
                            "  - name: a\n"                            /* 5 */
                            "    zone: local\n"                        /* 6 */
                            "    url: ftp://x\n"                       /* 7 */
                            "    colour: red\n"                        /* 8 */
                            "    timeouts: { connect_ms: -5 }\n"       /* 9 */
                            "  - name: a\n"                            /* 10 */
                            "    zone: moon\n"                         /* 11 */
                            "    url: http://127.0.0.1:1/v1\n"         /* 12 */
                            "    api_key: sk-live-abcdef\n"            /* 13 */
                            "    clearance: topsecret\n"               /* 14 */
                            "routes:\n"                                /* 15 */
                            "  - use: [a, nope]\n"                     /* 16 */
                            "    when: { stream: maybe }\n"            /* 17 */
                            "fallback: { on: [connect, bananas] }\n"); /* 18 */
    CHECK(c == NULL);
    CHECK(has_error(1, 9, "port"));
    CHECK(has_error(2, 10, "workers"));
    CHECK(has_error(3, 21, "listed twice"));
    CHECK(has_error(7, 10, "http"));
    CHECK(has_error(8, 5, "unknown key 'colour'"));
    CHECK(has_error(9, 29, "connect_ms"));
    CHECK(has_error(10, 5, "duplicate backend name 'a'"));
    CHECK(has_error(11, 11, "zone"));
    CHECK(has_error(13, 14, "api_key_env"));
    CHECK(has_error(14, 16, "unknown level 'topsecret'"));
    CHECK(has_error(16, 14, "unknown backend 'nope'"));
    CHECK(has_error(17, 21, "true or false"));
    CHECK(has_error(18, 27, "fallback trigger"));
    CHECK(errs.n == 13);
    /* a secret written in the YAML is never echoed back */
    for (int i = 0; i < errs.n; i++)
        CHECK(strstr(errs.items[i].message, "sk-live") == NULL);
}

static void test_errors_types_and_required(void)
{
    CHECK(load("backends: {name: a}\n") == NULL);
    CHECK(has_error(1, 11, "must be a list"));
    CHECK(load("backends:\n  - { zone: local }\n") == NULL);
    CHECK(has_error(2, 5, "'name' is required"));
    CHECK(has_error(2, 5, "'url' is required"));
    CHECK(load("backends:\n  - { name: a, url: 'http://h/v1' }\n") == NULL);
    CHECK(has_error(2, 5, "'zone' is required"));
    CHECK(load("listen: 1.2.3.4:80\n") == NULL);
    CHECK(has_error(1, 1, "'backends' is required"));
    /* a host the server could not listen on fails --check, not the start */
    CHECK(load("listen: foo.example:80\nbackends:\n  - { name: a, zone: local, url: 'http://h/v1' }\n") == NULL);
    CHECK(has_error(1, 9, "not a numeric"));
    CHECK(load("listen: 1.2.3.4.5:80\nbackends:\n  - { name: a, zone: local, url: 'http://h/v1' }\n") == NULL);
    CHECK(has_error(1, 9, "not a numeric"));
    CHECK(load("") == NULL);
    CHECK(has_error(1, 1, "empty"));
    CHECK(load("busy_poll_us: 100001\nbackends:\n  - { name: a, zone: local, url: 'http://h/v1' }\n") == NULL);
    CHECK(has_error(1, 15, "busy_poll_us"));
    CHECK(load("backends:\n  - { name: a, zone: local, url: 'http://h/v1', context_window: [1] }\n") == NULL);
    CHECK(has_error(2, 65, "must be a number"));
    CHECK(load("backends:\n  - { name: 'a/b', zone: local, url: 'http://h/v1' }\n") == NULL);
    CHECK(has_error(2, 13, "may only use"));
    CHECK(load("backends:\n  - { name: a, zone: local, url: 'not a url' }\n") == NULL);
    CHECK(has_error(2, 34, "not a valid"));
    CHECK(load("backends:\n  - { name: a, zone: local, url: 'http://h/v1', name: b }\n") == NULL);
    CHECK(has_error(2, 49, "duplicate key 'name'"));
    CHECK(load("backends:\n  - { name: a, zone: cloud, url: 'http://h/v1', api_key_file: /nonexistent/k }\n") == NULL);
    CHECK(has_error(2, 63, "No such file"));
    /* what this version cannot enforce is refused, not silently ignored */
    CHECK(load("backends:\n  - { name: a, zone: local, url: 'http://h/v1' }\n"
               "budgets: [{ scope: global, period: day, usd: 1 }]\n"
               "clients: [{ name: c, key_sha256: '00' }]\n") == NULL);
    CHECK(has_error(3, 1, "not enforced"));
    CHECK(has_error(4, 1, "not supported"));
    CHECK(has_error(4, 34, "64 hex digits"));
}

static void test_errors_syntax(void)
{
    CHECK(load("backends:\n  - { name: a\n  zone: local\n") == NULL);
    CHECK(errs.n == 1 && errs.items[0].line >= 2 && strstr(errs.items[0].message, "YAML"));
    /* deep flow nesting is refused before libyaml recurses */
    char deep[2000];
    memset(deep, '[', sizeof deep - 1);
    deep[sizeof deep - 1] = 0;
    CHECK(load(deep) == NULL);
    CHECK(errs.n == 1 && strstr(errs.items[0].message, "nesting"));
    /* an alias bomb is cut off, not expanded */
    CHECK(load("a: &a [x, x, x, x, x, x, x, x, x, x]\n"
               "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
               "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
               "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
               "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
               "backends: [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n") == NULL);
    CHECK(errs.n > 0);
}

static void test_detectors(void)
{
    const char *base = "backends:\n  - { name: a, zone: local, url: 'http://h/v1' }\nsensitivity:\n";
    char yaml[1024];
    snprintf(yaml, sizeof yaml, "%s  detectors: []\n", base);
    struct config *c = load(yaml);
    CHECK(c && c->n_detectors == 0);
    config_unref(c);
    snprintf(yaml, sizeof yaml, "%s  detectors:\n    - { builtin: emial }\n    - { name: k, keywords: [], level: secret }\n"
                                "    - { name: r, regex: x, keywords: [y], level: secret }\n    - { name: n, keywords: [z] }\n",
             base);
    CHECK(load(yaml) == NULL);
    CHECK(has_error(5, 18, "builtin must be one of"));
    CHECK(has_error(6, 28, "non-empty list"));
    CHECK(has_error(7, 7, "exactly one of"));
    CHECK(has_error(8, 7, "'level' is required"));
    snprintf(yaml, sizeof yaml, "%s  detectors:\n    - { name: bad, regex: '(unclosed', level: secret }\n", base);
    CHECK(load(yaml) == NULL);
    CHECK(errs.n == 1 && errs.items[0].line == 5);
}

static void test_routes(void)
{
    const char *base = "backends:\n  - { name: a, zone: local, url: 'http://h/v1' }\n"
                       "  - { name: b, zone: cloud, url: 'http://h2/v1' }\nroutes:\n";
    char yaml[1024];
    snprintf(yaml, sizeof yaml, "%s  - { name: r, use: [] }\n  - { name: r, use: [a, a] }\n  - { name: s }\n"
                                "  - { use: [b/] }\n", base);
    CHECK(load(yaml) == NULL);
    CHECK(has_error(5, 21, "non-empty list"));
    CHECK(has_error(6, 13, "duplicate route name"));
    CHECK(has_error(6, 25, "listed twice"));
    CHECK(has_error(7, 5, "'use' is required"));
    CHECK(has_error(8, 13, "empty model"));
    snprintf(yaml, sizeof yaml, "%s  - { use: [b/openrouter/meta/llama] }\n", base);
    struct config *c = load(yaml);
    CHECK(c && c->routes[0].use[0].backend == 1);
    if (c)
        CHECK_STR(c->routes[0].use[0].model, "openrouter/meta/llama");
    CHECK(c && c->routes[0].name != NULL);
    config_unref(c);
}

int main(void)
{
    RUN(test_defaults);
    RUN(test_full);
    RUN(test_errors_all_reported);
    RUN(test_errors_types_and_required);
    RUN(test_errors_syntax);
    RUN(test_detectors);
    RUN(test_routes);
    config_errors_free(&errs);
    TEST_DONE();
}
