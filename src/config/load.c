/* load.c — airlock's schema: YAML to struct config. libyaml builds the
 * document tree; we walk it once, in a fixed order (levels before anything
 * that names a level, backends before routes), through yaml.c's typed
 * reader, collecting every error with its position instead of stopping at
 * the first. Defaults are filled in here so the rest of the daemon never
 * has to guess. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "airlock/classify.h"
#include "airlock/config.h"
#include "airlock/upstream.h"
#include "config/schema.h"
#include "config/yaml.h"

#define MAX_CONFIG_BYTES (16u << 20)

/* ---- top-level scalars ------------------------------------------------- */

static void load_listen(struct loader *l, yaml_node_t *n)
{
    struct config *cfg = l->cfg;
    if (!is_scalar(n) || !*text(n)) {
        error_at(l, n, "listen must be HOST:PORT, e.g. 127.0.0.1:8080");
        return;
    }
    const char *s = text(n), *colon = strrchr(s, ':');
    const char *host = s, *port = s;
    size_t hlen = 0;
    if (colon) {
        port = colon + 1;
        hlen = (size_t)(colon - s);
        if (hlen >= 2 && s[0] == '[' && s[hlen - 1] == ']') {
            host = s + 1;
            hlen -= 2;
        } else if (memchr(s, ':', hlen)) {
            error_at(l, n, "listen: write an IPv6 address in brackets, e.g. [::1]:8080");
            return;
        }
    }
    char *end;
    errno = 0;
    long p = strtol(port, &end, 10);
    if (!*port || *end || errno || p < 0 || p > 65535) {
        error_at(l, n, "listen: '%.60s' has no valid port (0-65535)", s);
        return;
    }
    /* the rule the server binds by */
    char h[64];
    struct sockaddr_storage ss;
    int v6;
    snprintf(h, sizeof h, "%.*s", (int)(hlen < sizeof h ? hlen : sizeof h - 1), host);
    if (hlen && config_listen_address(h, 0, &ss, &v6) < 0) {
        error_at(l, n, "listen: '%.60s' is not a numeric IPv4 or [IPv6] address (or localhost)", s);
        return;
    }
    free(cfg->listen_host);
    cfg->listen_host = hlen ? strndup(host, hlen) : strdup("0.0.0.0");
    cfg->listen_port = (int)p;
}

static void load_workers(struct loader *l, yaml_node_t *n)
{
    if (is_scalar(n) && strcmp(text(n), "auto") == 0) {
        l->cfg->workers = 0;
        return;
    }
    get_int(l, n, "workers", 1, 256, &l->cfg->workers);
}

static void load_levels(struct loader *l, yaml_node_t *n)
{
    struct config *cfg = l->cfg;
    if (!is_seq(n) || n->data.sequence.items.top == n->data.sequence.items.start) {
        error_at(l, n, "levels must be a non-empty list of names, lowest first");
        return;
    }
    long count = n->data.sequence.items.top - n->data.sequence.items.start;
    if (count > MAX_LEVELS) {
        error_at(l, n, "levels: at most %d levels", MAX_LEVELS);
        return;
    }
    for (int i = 0; i < cfg->n_levels; i++)
        free(cfg->levels[i]);
    cfg->n_levels = 0;
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top; it++) {
        yaml_node_t *v = node_at(l, *it);
        char *name = NULL;
        if (!v || get_name(l, v, "level", &name) < 0)
            continue;
        if (config_level_index(cfg, name) >= 0) {
            error_at(l, v, "level '%s' listed twice", name);
            free(name);
            continue;
        }
        cfg->levels[cfg->n_levels++] = name;
    }
    if (cfg->n_levels == 0)
        error_at(l, n, "levels: no valid level");
}

static void load_ledger(struct loader *l, yaml_node_t *n)
{
    struct field f[] = { { "path", 0, 0 }, { 0, 0, 0 } };
    if (read_fields(l, n, f, "ledger") < 0)
        return;
    yaml_node_t *p = field_value(f, "path");
    if (p)
        get_string(l, p, "ledger.path", &l->cfg->ledger_path);
}

/* ---- budgets ----------------------------------------------------------- */

static void load_budgets(struct loader *l, yaml_node_t *n)
{
    struct config *cfg = l->cfg;
    long count;
    cfg->budgets = list_alloc(l, n, "budgets", 1024, sizeof(*cfg->budgets), &count);
    if (!cfg->budgets)
        return;
    static const char *const scopes[] = { "global", "client", "backend", NULL };
    static const char *const periods[] = { "day", "month", NULL };
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top; it++) {
        yaml_node_t *bn = node_at(l, *it), *v;
        struct field f[] = { { "scope", 0, 0 }, { "period", 0, 0 }, { "usd", 0, 0 }, { "backend", 0, 0 }, { 0, 0, 0 } };
        if (!bn || read_fields(l, bn, f, "budget") < 0)
            continue;
        struct budget *b = &cfg->budgets[cfg->n_budgets++];
        int k;
        if ((v = field_value(f, "scope")) && (k = get_enum(l, v, "scope", scopes)) >= 0)
            b->scope = (enum budget_scope)k;
        if ((v = field_value(f, "period")) && (k = get_enum(l, v, "period", periods)) >= 0)
            b->period = (enum budget_period)k;
        if ((v = field_value(f, "usd")))
            get_double(l, v, "usd", &b->usd);
        else
            error_at(l, bn, "budget: 'usd' is required");
        if ((v = field_value(f, "backend"))) {
            if (get_string(l, v, "budget backend", &b->backend) == 0 && !config_backend(cfg, b->backend))
                error_at(l, v, "budget: unknown backend '%.60s'", b->backend);
            if (b->scope != BUDGET_BACKEND)
                error_at(l, v, "budget: 'backend' only goes with scope: backend");
        } else if (b->scope == BUDGET_BACKEND) {
            error_at(l, bn, "budget: scope backend needs 'backend'");
        }
    }
}

/* ---- routes ------------------------------------------------------------ */

static void load_when(struct loader *l, yaml_node_t *n, struct route *r)
{
    struct field f[] = { { "model", 0, 0 }, { "client", 0, 0 }, { "level_at_least", 0, 0 },
                         { "prompt_tokens_over", 0, 0 }, { "prompt_tokens_under", 0, 0 },
                         { "budget_exhausted", 0, 0 }, { "stream", 0, 0 }, { 0, 0, 0 } };
    if (read_fields(l, n, f, "when") < 0)
        return;
    yaml_node_t *v;
    int b;
    if ((v = field_value(f, "model")))
        get_string(l, v, "when.model", &r->model_glob);
    if ((v = field_value(f, "client")))
        get_string(l, v, "when.client", &r->client);
    if ((v = field_value(f, "level_at_least")))
        get_level(l, v, "when.level_at_least", &r->level_at_least);
    if ((v = field_value(f, "prompt_tokens_over")))
        get_long(l, v, "when.prompt_tokens_over", 0, 100000000, &r->prompt_tokens_over);
    if ((v = field_value(f, "prompt_tokens_under")))
        get_long(l, v, "when.prompt_tokens_under", 1, 100000000, &r->prompt_tokens_under);
    if ((v = field_value(f, "budget_exhausted")) && get_bool(l, v, "when.budget_exhausted", &b) == 0)
        r->budget_exhausted = b ? TRI_TRUE : TRI_FALSE;
    if ((v = field_value(f, "stream")) && get_bool(l, v, "when.stream", &b) == 0)
        r->stream = b ? TRI_TRUE : TRI_FALSE;
}

/* One `use` entry: "backend" or "backend/model" (the model may itself hold
 * slashes: "openrouter/meta-llama/llama-3"). */
static void load_target(struct loader *l, yaml_node_t *n, struct route *r)
{
    if (!is_scalar(n) || !*text(n)) {
        error_at(l, n, "use: each entry is a backend name, or backend/model");
        return;
    }
    const char *s = text(n), *slash = strchr(s, '/');
    char *name = slash ? strndup(s, (size_t)(slash - s)) : strdup(s);
    if (!name)
        return;
    const struct backend *b = config_backend(l->cfg, name);
    if (!b) {
        error_at(l, n, "use: unknown backend '%.60s'", name);
    } else if (slash && !slash[1]) {
        error_at(l, n, "use: '%.60s' pins an empty model", s);
    } else {
        for (int i = 0; i < r->n_use; i++)
            if (r->use[i].backend == b->index)
                error_at(l, n, "use: backend '%s' listed twice in one route", name);
        struct route_target *t = &r->use[r->n_use++];
        t->backend = b->index;
        t->model = slash ? strdup(slash + 1) : NULL;
    }
    free(name);
}

static void load_routes(struct loader *l, yaml_node_t *n)
{
    struct config *cfg = l->cfg;
    long count;
    cfg->routes = list_alloc(l, n, "routes", 4096, sizeof(*cfg->routes), &count);
    if (!cfg->routes)
        return;
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top; it++) {
        yaml_node_t *rn = node_at(l, *it), *v;
        struct field f[] = { { "name", 0, 0 }, { "when", 0, 0 }, { "use", 0, 0 }, { 0, 0, 0 } };
        if (!rn || read_fields(l, rn, f, "route") < 0)
            continue;
        struct route *r = &cfg->routes[cfg->n_routes++];
        r->level_at_least = -1;
        r->prompt_tokens_over = r->prompt_tokens_under = -1;
        r->budget_exhausted = r->stream = TRI_ANY;
        if ((v = field_value(f, "name"))) {
            if (get_name(l, v, "route name", &r->name) == 0)
                for (int k = 0; k < cfg->n_routes - 1; k++)
                    if (cfg->routes[k].name && strcmp(cfg->routes[k].name, r->name) == 0)
                        error_at(l, v, "duplicate route name '%s'", r->name);
        } else if (asprintf(&r->name, "route-%d", cfg->n_routes) < 0) {
            r->name = NULL;
        }
        if ((v = field_value(f, "when")))
            load_when(l, v, r);
        v = field_value(f, "use");
        if (!v) {
            error_at(l, rn, "route '%s': 'use' is required", r->name ? r->name : "?");
            continue;
        }
        if (is_scalar(v)) {     /* `use: ollama` reads as a list of one */
            r->use = calloc(1, sizeof(*r->use));
            if (r->use)
                load_target(l, v, r);
            continue;
        }
        if (!is_seq(v) || v->data.sequence.items.top == v->data.sequence.items.start) {
            error_at(l, v, "route '%s': use must be a non-empty list of backends", r->name ? r->name : "?");
            continue;
        }
        long nuse = v->data.sequence.items.top - v->data.sequence.items.start;
        r->use = calloc((size_t)nuse, sizeof(*r->use));
        if (!r->use)
            continue;
        for (yaml_node_item_t *u = v->data.sequence.items.start; u < v->data.sequence.items.top; u++) {
            yaml_node_t *un = node_at(l, *u);
            if (un)
                load_target(l, un, r);
        }
    }
}

/* No `routes:`: one route, every backend in the order written. */
static void default_route(struct config *cfg)
{
    cfg->routes = calloc(1, sizeof(*cfg->routes));
    if (!cfg->routes)
        return;
    struct route *r = &cfg->routes[cfg->n_routes++];
    r->name = strdup("default");
    r->level_at_least = -1;
    r->prompt_tokens_over = r->prompt_tokens_under = -1;
    r->budget_exhausted = r->stream = TRI_ANY;
    r->use = calloc((size_t)(cfg->n_backends ? cfg->n_backends : 1), sizeof(*r->use));
    for (int i = 0; r->use && i < cfg->n_backends; i++)
        r->use[r->n_use++].backend = i;
}

/* ---- fallback and clients ---------------------------------------------- */

static void load_fallback(struct loader *l, yaml_node_t *n)
{
    struct config *cfg = l->cfg;
    struct field f[] = { { "on", 0, 0 }, { "max_attempts", 0, 0 }, { "circuit", 0, 0 },
                         { "retry_after_max_ms", 0, 0 }, { 0, 0, 0 } };
    if (read_fields(l, n, f, "fallback") < 0)
        return;
    yaml_node_t *v;
    for (struct field *g = f; g->key; g++) {
        if (strcmp(g->key, "on") != 0 || !g->value)
            continue;
        v = g->value;
        cfg->fallback_on = 0;
        if (is_null(v))
            break;
        if (!is_seq(v)) {
            error_at(l, v, "fallback.on must be a list of triggers");
            break;
        }
        static const char *const triggers[] = { "connect", "timeout", "5xx", "429", "context_length", NULL };
        for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++) {
            yaml_node_t *t = node_at(l, *it);
            int k = t ? get_enum(l, t, "fallback trigger", triggers) : -1;
            if (k >= 0)
                cfg->fallback_on |= 1u << k;
        }
    }
    if ((v = field_value(f, "max_attempts")))
        get_int(l, v, "fallback.max_attempts", 1, 32, &cfg->max_attempts);
    if ((v = field_value(f, "retry_after_max_ms")))
        get_long(l, v, "fallback.retry_after_max_ms", 0, 24L * 3600 * 1000, &cfg->retry_after_max_ms);
    if ((v = field_value(f, "circuit"))) {
        struct field c[] = { { "failures", 0, 0 }, { "open_ms", 0, 0 }, { 0, 0, 0 } };
        if (read_fields(l, v, c, "fallback.circuit") == 0) {
            yaml_node_t *w;
            if ((w = field_value(c, "failures")))
                get_int(l, w, "circuit.failures", 1, 1000000000, &cfg->circuit_failures);
            if ((w = field_value(c, "open_ms")))
                get_long(l, w, "circuit.open_ms", 0, 24L * 3600 * 1000, &cfg->circuit_open_ms);
        }
    }
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)tolower((unsigned char)c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static void load_clients(struct loader *l, yaml_node_t *n)
{
    struct config *cfg = l->cfg;
    long count;
    cfg->clients = list_alloc(l, n, "clients", 4096, sizeof(*cfg->clients), &count);
    if (!cfg->clients)
        return;
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top; it++) {
        yaml_node_t *cn = node_at(l, *it), *v;
        struct field f[] = { { "name", 0, 0 }, { "key_sha256", 0, 0 }, { 0, 0, 0 } };
        if (!cn || read_fields(l, cn, f, "client") < 0)
            continue;
        struct client *c = &cfg->clients[cfg->n_clients++];
        if ((v = field_value(f, "name")))
            get_name(l, v, "client name", &c->name);
        else
            error_at(l, cn, "client: 'name' is required");
        v = field_value(f, "key_sha256");
        if (!v) {
            error_at(l, cn, "client: 'key_sha256' is required (hex SHA-256 of the client's bearer key)");
            continue;
        }
        const char *h = is_scalar(v) ? text(v) : "";
        int ok = strlen(h) == 64;
        for (int i = 0; ok && i < 32; i++) {
            int hi = hex_value(h[2 * i]), lo = hex_value(h[2 * i + 1]);
            ok = hi >= 0 && lo >= 0;
            if (ok)
                c->key_sha256[i] = (unsigned char)(hi << 4 | lo);
        }
        if (!ok)
            error_at(l, v, "key_sha256 must be 64 hex digits");
    }
}

/* ---- the document ------------------------------------------------------ */

static void set_defaults(struct config *cfg)
{
    cfg->refs = 1;
    cfg->listen_host = strdup("127.0.0.1");
    cfg->listen_port = 8080;
    cfg->max_body_bytes = 4u << 20;
    cfg->shutdown_timeout_ms = 30000;
    static const char *const levels[] = { "public", "internal", "confidential", "secret" };
    for (int i = 0; i < 4; i++)
        cfg->levels[i] = strdup(levels[i]);
    cfg->n_levels = 4;
    cfg->sensitivity_header = strdup("x-airlock-level");
    cfg->unreadable_level = -1;
    cfg->fallback_on = TRIGGER_CONNECT | TRIGGER_TIMEOUT | TRIGGER_5XX | TRIGGER_429 | TRIGGER_CONTEXT_LENGTH;
    cfg->max_attempts = 3;
    cfg->circuit_failures = 3;
    cfg->circuit_open_ms = 30000;
    cfg->retry_after_max_ms = 60000;
}

static void load_root(struct loader *l, yaml_node_t *root)
{
    struct config *cfg = l->cfg;
    struct field f[] = { { "listen", 0, 0 }, { "workers", 0, 0 }, { "max_body_bytes", 0, 0 },
                         { "shutdown_timeout_ms", 0, 0 }, { "ledger", 0, 0 }, { "levels", 0, 0 },
                         { "backends", 0, 0 }, { "sensitivity", 0, 0 }, { "budgets", 0, 0 },
                         { "routes", 0, 0 }, { "fallback", 0, 0 }, { "clients", 0, 0 },
                         { "busy_poll_us", 0, 0 }, { 0, 0, 0 } };
    if (!root || is_null(root)) {
        error_pos(l->errs, 1, 1, "the configuration is empty: at least 'backends' is needed");
        return;
    }
    if (read_fields(l, root, f, "the configuration") < 0)
        return;
    yaml_node_t *v, *detectors_node = NULL;
    long n;
    if ((v = field_value(f, "listen")))
        load_listen(l, v);
    if ((v = field_value(f, "workers")))
        load_workers(l, v);
    if ((v = field_value(f, "max_body_bytes")) &&
        get_long(l, v, "max_body_bytes", 1024, 1L << 30, &n) == 0)
        cfg->max_body_bytes = (size_t)n;
    if ((v = field_value(f, "shutdown_timeout_ms")))
        get_long(l, v, "shutdown_timeout_ms", 0, 3600000, &cfg->shutdown_timeout_ms);
    if ((v = field_value(f, "busy_poll_us")))
        get_long(l, v, "busy_poll_us", 0, 100000, &cfg->busy_poll_us);
    if ((v = field_value(f, "ledger")))
        load_ledger(l, v);
    if ((v = field_value(f, "levels")))
        load_levels(l, v);
    default_detectors(cfg);     /* after levels: defaults are by level name */
    if ((v = field_value(f, "backends")))
        load_backends(l, v);
    else
        error_pos(l->errs, 1, 1, "'backends' is required: at least one backend");
    if ((v = field_value(f, "sensitivity")))
        load_sensitivity(l, v, &detectors_node);
    if (cfg->unreadable_level < 0)
        cfg->unreadable_level = cfg->n_levels - 1;
    if ((v = field_value(f, "budgets"))) {
        load_budgets(l, v);
        error_at(l, f[8].key_node, "budgets: spend limits are not enforced by this version yet; "
                                   "remove them rather than rely on them");
    }
    if ((v = field_value(f, "routes")))
        load_routes(l, v);
    else
        default_route(cfg);
    if ((v = field_value(f, "fallback")))
        load_fallback(l, v);
    if ((v = field_value(f, "clients"))) {
        load_clients(l, v);
        /* Until client keys are checked, accepting them would open the
         * listener to every peer: refuse rather than fail open. */
        error_at(l, f[11].key_node, "clients: client keys are not supported by this version yet; "
                                    "without 'clients' only loopback peers may connect");
    }
    if (cfg->workers <= 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        cfg->workers = cores > 0 ? (cores > 64 ? 64 : (int)cores) : 1;
    }
    if (l->errs->n == 0) {
        char err[256] = "";
        cfg->classifier = classifier_build(cfg, err, sizeof err);
        if (!cfg->classifier)
            error_at(l, detectors_node ? detectors_node : root, "detectors: %s", err);
        for (int i = 0; i < cfg->n_backends; i++)
            if (!(cfg->backends[i].tmpl = upstream_template_build(&cfg->backends[i])))
                error_at(l, root, "backend %s: out of memory", cfg->backends[i].name);
    }
}

struct config *config_load_string(const char *name, const char *yaml, size_t len, struct config_errors *errs)
{
    if (len > MAX_CONFIG_BYTES) {
        error_pos(errs, 0, 0, "larger than %u MiB", MAX_CONFIG_BYTES >> 20);
        return NULL;
    }
    if (!flow_depth_ok(yaml, len, errs))
        return NULL;
    static uint64_t serials;
    struct config *cfg = calloc(1, sizeof(*cfg));
    if (!cfg)
        return NULL;
    cfg->serial = __atomic_add_fetch(&serials, 1, __ATOMIC_RELAXED);
    set_defaults(cfg);
    cfg->path = strdup(name ? name : "-");

    yaml_parser_t parser;
    yaml_document_t doc;
    int have_doc = 0;
    if (!yaml_parser_initialize(&parser)) {
        error_pos(errs, 0, 0, "out of memory");
        config_free(cfg);
        return NULL;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)yaml, len);
    if (!yaml_parser_load(&parser, &doc)) {
        const yaml_mark_t *m = parser.problem_mark.line || parser.problem_mark.column ? &parser.problem_mark
                                                                                       : &parser.context_mark;
        error_pos(errs, (int)m->line + 1, (int)m->column + 1, "YAML: %s%s%s",
                  parser.problem ? parser.problem : "syntax error",
                  parser.context ? " " : "", parser.context ? parser.context : "");
    } else {
        have_doc = 1;
        struct loader l = { .doc = &doc, .cfg = cfg, .errs = errs };
        load_root(&l, yaml_document_get_root_node(&doc));
        if (l.visited > MAX_NODES_VISITED)
            error_pos(errs, 0, 0, "too many nodes (aliases expanding?)");
    }
    if (have_doc)
        yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    if (errs->n > 0) {
        config_free(cfg);
        return NULL;
    }
    return cfg;
}

struct config *config_load(const char *path, struct config_errors *errs)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        error_pos(errs, 0, 0, "cannot open: %s", strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > (off_t)MAX_CONFIG_BYTES) {
        error_pos(errs, 0, 0, "not a regular file of at most %u MiB", MAX_CONFIG_BYTES >> 20);
        close(fd);
        return NULL;
    }
    size_t len = (size_t)st.st_size, got = 0;
    char *buf = malloc(len + 1);
    while (buf && got < len) {
        ssize_t r = read(fd, buf + got, len - got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    if (!buf || got != len) {
        error_pos(errs, 0, 0, "cannot read: %s", buf ? strerror(errno) : "out of memory");
        free(buf);
        return NULL;
    }
    buf[len] = 0;
    struct config *cfg = config_load_string(path, buf, len, errs);
    free(buf);
    return cfg;
}
