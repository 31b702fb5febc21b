/* config.c — a loaded config's life after config_load(): references,
 * lookups, freeing, and printing the errors a load collected. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "airlock/classify.h"
#include "airlock/config.h"
#include "airlock/upstream.h"

static void free_detectors(struct detector *d, int n)
{
    for (int i = 0; i < n; i++) {
        free(d[i].name);
        for (int k = 0; k < d[i].n_keywords; k++)
            free(d[i].keywords[k]);
        free(d[i].keywords);
        free(d[i].regex);
    }
    free(d);
}

static void free_backend(struct backend *b)
{
    free(b->name);
    free(b->url);
    free(b->model);
    free(b->api_version);
    free(b->health.path);
    free(b->api_key_env);
    free(b->api_key_file);
    upstream_template_free(b->tmpl);
    if (b->api_key) {
        /* explicit_bzero: the optimiser may not drop it before free. */
        explicit_bzero(b->api_key, strlen(b->api_key));
        free(b->api_key);
    }
}

void config_free(struct config *cfg)
{
    if (!cfg)
        return;
    classifier_free(cfg->classifier);
    free(cfg->path);
    free(cfg->listen_host);
    free(cfg->ledger_path);
    for (int i = 0; i < cfg->n_levels; i++)
        free(cfg->levels[i]);
    for (int i = 0; i < cfg->n_backends; i++)
        free_backend(&cfg->backends[i]);
    free(cfg->backends);
    free(cfg->sensitivity_header);
    free_detectors(cfg->detectors, cfg->n_detectors);
    for (int i = 0; i < cfg->n_budgets; i++)
        free(cfg->budgets[i].backend);
    free(cfg->budgets);
    for (int i = 0; i < cfg->n_routes; i++) {
        struct route *r = &cfg->routes[i];
        free(r->name);
        free(r->model_glob);
        free(r->client);
        for (int k = 0; k < r->n_use; k++)
            free(r->use[k].model);
        free(r->use);
    }
    free(cfg->routes);
    for (int i = 0; i < cfg->n_clients; i++)
        free(cfg->clients[i].name);
    free(cfg->clients);
    free(cfg);
}

struct config *config_ref(struct config *cfg)
{
    if (cfg)
        __atomic_add_fetch(&cfg->refs, 1, __ATOMIC_RELAXED);
    return cfg;
}

void config_unref(struct config *cfg)
{
    if (cfg && __atomic_sub_fetch(&cfg->refs, 1, __ATOMIC_ACQ_REL) == 0)
        config_free(cfg);
}

int config_level_index(const struct config *cfg, const char *name)
{
    if (!cfg || !name)
        return -1;
    for (int i = 0; i < cfg->n_levels; i++)
        if (strcasecmp(cfg->levels[i], name) == 0)
            return i;
    return -1;
}

const struct backend *config_backend(const struct config *cfg, const char *name)
{
    if (!cfg || !name)
        return NULL;
    for (int i = 0; i < cfg->n_backends; i++)
        if (cfg->backends[i].name && strcmp(cfg->backends[i].name, name) == 0)
            return &cfg->backends[i];
    return NULL;
}

static int by_position(const void *a, const void *b)
{
    const struct config_error *x = a, *y = b;
    if (x->line != y->line)
        return x->line < y->line ? -1 : 1;
    return (x->col > y->col) - (x->col < y->col);
}

void config_errors_print(const struct config_errors *errs, const char *path, void *out)
{
    /* Sorted by position, stable enough for errors found in one walk. */
    struct config_error *sorted = malloc((size_t)(errs->n ? errs->n : 1) * sizeof(*sorted));
    if (!sorted)
        return;
    memcpy(sorted, errs->items, (size_t)errs->n * sizeof(*sorted));
    qsort(sorted, (size_t)errs->n, sizeof(*sorted), by_position);
    for (int i = 0; i < errs->n; i++) {
        const struct config_error *e = &sorted[i];
        if (e->line > 0)
            fprintf(out, "%s:%d:%d: %s\n", path, e->line, e->col, e->message);
        else
            fprintf(out, "%s: %s\n", path, e->message);
    }
    free(sorted);
}

void config_errors_free(struct config_errors *errs)
{
    if (!errs)
        return;
    free(errs->items);
    errs->items = NULL;
    errs->n = errs->cap = 0;
}

/* listen's host: a numeric IPv4 or IPv6 address, or localhost (no name
 * is resolved at start). The loader validates with it, the server binds. */
int config_listen_address(const char *listen_host, int port, struct sockaddr_storage *ss, int *v6)
{
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    const char *host = listen_host && *listen_host ? listen_host : "0.0.0.0";
    if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons((uint16_t)port);
        *v6 = 0;
        return 0;
    }
    if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        *v6 = 1;
        return 0;
    }
    if (strcmp(host, "localhost") == 0) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons((uint16_t)port);
        in4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        *v6 = 0;
        return 0;
    }
    return -1;
}
