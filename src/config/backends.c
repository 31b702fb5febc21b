/* backends.c — the `backends:` part of airlock's schema: each backend's
 * name, provider, zone, URL (checked with libcurl's own parser), model,
 * timeouts, health probe, price, clearance and key (from the environment
 * or a file, never the YAML). */
#include <ctype.h>
#include <math.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <curl/curl.h>
#include <yaml.h>

#include "airlock/config.h"
#include "config/schema.h"
#include "config/yaml.h"

#define MAX_KEY_FILE_BYTES 8192

static const char *const provider_names[] = {
    "openai", "anthropic", "azure", "gemini", "ollama", "llamacpp", "vllm", "lmstudio", "tensorrt", NULL,
};

/* Checks an upstream URL with libcurl's own parser, the one that will use it. */
static int check_url(struct loader *l, yaml_node_t *n, const char *url)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *query = NULL;
    int ok = u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
             curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
             curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK && host && *host;
    if (ok && strcasecmp(scheme, "http") != 0 && strcasecmp(scheme, "https") != 0) {
        error_at(l, n, "url '%.80s': only http:// and https:// are supported", url);
        ok = -1;
    } else if (ok && curl_url_get(u, CURLUPART_QUERY, &query, 0) == CURLUE_OK) {
        error_at(l, n, "url '%.80s': must not have a query string", url);
        ok = -1;
    } else if (!ok) {
        error_at(l, n, "url '%.80s' is not a valid http(s) URL", url);
    }
    curl_free(scheme);
    curl_free(host);
    curl_free(query);
    curl_url_cleanup(u);
    return ok == 1 ? 0 : -1;
}

/* The server's root: the URL without its API suffix (/v1, /api). */
static char *url_root(const char *url)
{
    size_t n = strlen(url);
    if (n >= 3 && strcmp(url + n - 3, "/v1") == 0)
        n -= 3;
    else if (n >= 4 && strcmp(url + n - 4, "/api") == 0)
        n -= 4;
    return strndup(url, n);
}

/* health.path as the full URL the prober GETs. An absolute URL is kept; a
 * path is appended to the backend's url. */
static char *health_url(const struct backend *b, const char *path)
{
    char *out = NULL, *root = NULL;
    if (path && (strncmp(path, "http://", 7) == 0 || strncmp(path, "https://", 8) == 0))
        return strdup(path);
    if (path) {
        if (asprintf(&out, "%s%s%s", b->url, path[0] == '/' ? "" : "/", path) < 0)
            return NULL;
        return out;
    }
    switch (b->provider) {
    case PROVIDER_OLLAMA:
        root = url_root(b->url);
        if (root && asprintf(&out, "%s/api/tags", root) < 0)
            out = NULL;
        break;
    case PROVIDER_LLAMACPP:
    case PROVIDER_VLLM:
        root = url_root(b->url);
        if (root && asprintf(&out, "%s/health", root) < 0)
            out = NULL;
        break;
    default:
        if (asprintf(&out, "%s/models", b->url) < 0)
            out = NULL;
    }
    free(root);
    return out;
}

/* Reads a secret from a file: at most MAX_KEY_FILE_BYTES, trailing
 * whitespace dropped. Never puts the content in an error. */
static char *read_key_file(struct loader *l, yaml_node_t *n, const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        error_at(l, n, "api_key_file '%.120s': %s", path, strerror(errno));
        return NULL;
    }
    char *buf = malloc(MAX_KEY_FILE_BYTES + 1);
    ssize_t got = buf ? read(fd, buf, MAX_KEY_FILE_BYTES + 1) : -1;
    close(fd);
    if (got < 0 || got > MAX_KEY_FILE_BYTES) {
        error_at(l, n, "api_key_file '%.120s': %s", path, got < 0 ? "cannot read" : "larger than 8 KiB");
        free(buf);
        return NULL;
    }
    while (got > 0 && isspace((unsigned char)buf[got - 1]))
        got--;
    buf[got] = 0;
    if (!got || memchr(buf, '\n', (size_t)got) || memchr(buf, '\r', (size_t)got) || strlen(buf) != (size_t)got) {
        error_at(l, n, "api_key_file '%.120s' must hold one key on one line", path);
        explicit_bzero(buf, (size_t)got);
        free(buf);
        return NULL;
    }
    return buf;
}

static void load_timeouts(struct loader *l, yaml_node_t *n, struct timeouts *t)
{
    struct field f[] = { { "connect_ms", 0, 0 }, { "first_byte_ms", 0, 0 }, { "idle_ms", 0, 0 },
                         { "total_ms", 0, 0 }, { 0, 0, 0 } };
    if (read_fields(l, n, f, "timeouts") < 0)
        return;
    const long max = 24L * 3600 * 1000;
    yaml_node_t *v;
    if ((v = field_value(f, "connect_ms")))
        get_long(l, v, "timeouts.connect_ms", 1, max, &t->connect_ms);
    if ((v = field_value(f, "first_byte_ms")))
        get_long(l, v, "timeouts.first_byte_ms", 1, max, &t->first_byte_ms);
    if ((v = field_value(f, "idle_ms")))
        get_long(l, v, "timeouts.idle_ms", 1, max, &t->idle_ms);
    if ((v = field_value(f, "total_ms")))
        get_long(l, v, "timeouts.total_ms", 1, max, &t->total_ms);
}

static void load_health(struct loader *l, yaml_node_t *n, struct backend *b, char **path)
{
    struct field f[] = { { "enabled", 0, 0 }, { "path", 0, 0 }, { "interval_ms", 0, 0 },
                         { "timeout_ms", 0, 0 }, { 0, 0, 0 } };
    if (read_fields(l, n, f, "health") < 0)
        return;
    yaml_node_t *v;
    b->health.enabled = 1;      /* writing health: turns probes on, cloud too */
    if ((v = field_value(f, "enabled")))
        get_bool(l, v, "health.enabled", &b->health.enabled);
    if ((v = field_value(f, "path")) && get_string(l, v, "health.path", path) == 0 &&
        (*path)[0] != '/' && strncmp(*path, "http://", 7) != 0 && strncmp(*path, "https://", 8) != 0)
        error_at(l, v, "health.path must start with '/' (or be a full http(s) URL)");
    if ((v = field_value(f, "interval_ms")))
        get_long(l, v, "health.interval_ms", 100, 3600000, &b->health.interval_ms);
    if ((v = field_value(f, "timeout_ms")))
        get_long(l, v, "health.timeout_ms", 1, 600000, &b->health.timeout_ms);
}

/* A price in USD per million tokens, kept also as an exact integer of
 * pico-USD per token (1 USD/Mtok = 1e6 pUSD/token): spend adds integers. */
static void price_field(struct loader *l, yaml_node_t *v, const char *what, double *usd, int64_t *ppt)
{
    if (get_double(l, v, what, usd) < 0)
        return;
    if (!(*usd >= 0 && *usd <= 1e6)) {
        error_at(l, v, "%s must be between 0 and 1000000 (USD per million tokens)", what);
        return;
    }
    *ppt = llround(*usd * 1e6);
}

static void load_price(struct loader *l, yaml_node_t *n, struct backend *b)
{
    struct field f[] = { { "input_per_mtok", 0, 0 }, { "output_per_mtok", 0, 0 },
                         { "cached_input_per_mtok", 0, 0 }, { 0, 0, 0 } };
    if (read_fields(l, n, f, "price") < 0)
        return;
    yaml_node_t *v;
    if ((v = field_value(f, "input_per_mtok")))
        price_field(l, v, "price.input_per_mtok", &b->price_input_per_mtok, &b->price_input_ppt);
    if ((v = field_value(f, "output_per_mtok")))
        price_field(l, v, "price.output_per_mtok", &b->price_output_per_mtok, &b->price_output_ppt);
    b->price_cached_input_per_mtok = b->price_input_per_mtok;
    b->price_cached_ppt = b->price_input_ppt;
    if ((v = field_value(f, "cached_input_per_mtok")))
        price_field(l, v, "price.cached_input_per_mtok", &b->price_cached_input_per_mtok,
                    &b->price_cached_ppt);
}

static int valid_env_name(const char *s)
{
    if (!*s || isdigit((unsigned char)*s))
        return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_')
            return 0;
    return 1;
}

static void load_backend(struct loader *l, yaml_node_t *n, struct backend *b)
{
    struct field f[] = { { "name", 0, 0 }, { "provider", 0, 0 }, { "zone", 0, 0 }, { "url", 0, 0 },
                         { "model", 0, 0 }, { "context_window", 0, 0 }, { "timeouts", 0, 0 },
                         { "health", 0, 0 }, { "api_key_env", 0, 0 }, { "api_key_file", 0, 0 },
                         { "api_key", 0, 0 }, { "clearance", 0, 0 }, { "price", 0, 0 },
                         { "retries", 0, 0 }, { "api_version", 0, 0 }, { 0, 0, 0 } };
    b->provider = PROVIDER_OPENAI;
    b->zone = ZONE_CLOUD;
    b->clearance = -1;
    b->health.enabled = -1;
    b->health.interval_ms = 5000;
    b->health.timeout_ms = 2000;
    if (read_fields(l, n, f, "backend") < 0)
        return;
    yaml_node_t *v;
    if ((v = field_value(f, "name")))
        get_name(l, v, "backend name", &b->name);
    else
        error_at(l, n, "backend: 'name' is required");
    if ((v = field_value(f, "provider"))) {
        int p = get_enum(l, v, "provider", provider_names);
        if (p >= 0)
            b->provider = (enum provider)p;
    }
    static const char *const zones[] = { "local", "cloud", NULL };
    if ((v = field_value(f, "zone"))) {
        int z = get_enum(l, v, "zone", zones);
        if (z >= 0)
            b->zone = z == 0 ? ZONE_LOCAL : ZONE_CLOUD;
    } else {
        error_at(l, n, "backend '%s': 'zone' is required (local or cloud)", b->name ? b->name : "?");
    }
    if ((v = field_value(f, "url"))) {
        if (get_string(l, v, "url", &b->url) == 0 && check_url(l, v, b->url) == 0) {
            size_t len = strlen(b->url);
            while (len > 0 && b->url[len - 1] == '/')
                b->url[--len] = 0;
        }
    } else {
        error_at(l, n, "backend '%s': 'url' is required", b->name ? b->name : "?");
    }
    if ((v = field_value(f, "model")))
        get_string(l, v, "model", &b->model);
    if ((v = field_value(f, "api_version")))
        get_string(l, v, "api_version", &b->api_version);
    else if (b->provider == PROVIDER_AZURE)
        error_at(l, n, "backend '%s': 'api_version' is required for provider azure (e.g. 2024-10-21)",
                 b->name ? b->name : "?");
    if ((v = field_value(f, "context_window")))
        get_long(l, v, "context_window", 0, 100000000, &b->context_window);
    int local = b->zone == ZONE_LOCAL;
    b->timeouts = (struct timeouts){ local ? 1000 : 3000, 60000, 30000, 600000 };
    if ((v = field_value(f, "timeouts")))
        load_timeouts(l, v, &b->timeouts);
    char *hpath = NULL;
    if ((v = field_value(f, "health")))
        load_health(l, v, b, &hpath);
    if (b->health.enabled < 0)
        b->health.enabled = local;
    if (b->url)
        b->health.path = health_url(b, hpath);
    free(hpath);
    if ((v = field_value(f, "api_key"))) {
        /* The value is never copied, echoed or kept. */
        error_at(l, v, "api_key: secrets do not belong in the YAML; use api_key_env (an environment "
                       "variable) or api_key_file");
    }
    yaml_node_t *env = field_value(f, "api_key_env"), *file = field_value(f, "api_key_file");
    if (env && file)
        error_at(l, file, "api_key_env and api_key_file: give one, not both");
    if (env && get_string(l, env, "api_key_env", &b->api_key_env) == 0) {
        if (!valid_env_name(b->api_key_env)) {
            error_at(l, env, "api_key_env '%.60s' is not an environment variable name", b->api_key_env);
        } else {
            const char *secret = getenv(b->api_key_env);
            if (secret && *secret)
                b->api_key = strdup(secret);
            else
                b->key_missing = 1;     /* a prompt sent without its key is sent for nothing */
        }
    }
    if (file && !env && get_string(l, file, "api_key_file", &b->api_key_file) == 0)
        b->api_key = read_key_file(l, file, b->api_key_file);
    if ((v = field_value(f, "clearance")))
        get_level(l, v, "clearance", &b->clearance);
    if (b->clearance < 0)
        b->clearance = local ? l->cfg->n_levels - 1 : 0;
    if ((v = field_value(f, "price")))
        load_price(l, v, b);
    if ((v = field_value(f, "retries")))
        get_int(l, v, "retries", 0, 10, &b->retries);
}

void load_backends(struct loader *l, yaml_node_t *n)
{
    struct config *cfg = l->cfg;
    long count;
    cfg->backends = list_alloc(l, n, "backends", 1024, sizeof(*cfg->backends), &count);
    if (!cfg->backends)
        return;
    if (count == 0) {
        error_at(l, n, "backends: at least one backend is needed");
        return;
    }
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top; it++) {
        yaml_node_t *v = node_at(l, *it);
        if (!v)
            continue;
        struct backend *b = &cfg->backends[cfg->n_backends];
        b->index = cfg->n_backends++;
        load_backend(l, v, b);
        if (b->name && config_backend(cfg, b->name) != b)
            error_at(l, v, "duplicate backend name '%s'", b->name);
    }
}
