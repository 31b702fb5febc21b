/* probe.c — the health prober. It reads the current config each round, so a
 * reload changes what is probed; a probe is a GET of health.path with
 * health.timeout_ms. 2xx is up; anything else (llama.cpp's 503 "Loading
 * model", a refused connection, a timeout) is down until a probe succeeds. */
#include <pthread.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <curl/curl.h>

#include "airlock/exchange.h"
#include "airlock/probe.h"
#include "airlock/server.h"
#include "airlock/upstream.h"
#include "airlock/state.h"

#define MAX_PROBES 256

struct probe {
    char name[64];
    uint64_t next_at;
    CURL *easy;
    struct curl_slist *headers;
    struct backend snapshot;    /* only the name, which the state table keys on */
};

static pthread_t thread;
static CURLM *multi;
static volatile int stopping;
static int running;
static struct probe probes[MAX_PROBES];

static size_t discard(char *p, size_t s, size_t n, void *u)
{
    (void)p;
    (void)u;
    return s * n;
}

static struct probe *slot_for(const struct backend *b)
{
    for (int i = 0; i < MAX_PROBES; i++)
        if (probes[i].name[0] && strcmp(probes[i].name, b->name) == 0)
            return &probes[i];
    for (int i = 0; i < MAX_PROBES; i++)
        if (!probes[i].name[0]) {
            strncpy(probes[i].name, b->name, sizeof probes[i].name - 1);
            probes[i].snapshot.name = probes[i].name;
            return &probes[i];
        }
    return NULL;
}

static void start_probe(struct probe *p, const struct backend *b)
{
    CURL *e = curl_easy_init();
    if (!e)
        return;
    curl_easy_setopt(e, CURLOPT_URL, b->health.path);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, b->health.timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, b->timeouts.connect_ms);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(e, CURLOPT_PRIVATE, p);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    if (b->zone == ZONE_LOCAL)
        curl_easy_setopt(e, CURLOPT_PROXY, "");
    struct curl_slist *h = upstream_add_auth(NULL, b);
    if (h)
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    p->headers = h;             /* must outlive the transfer */
    p->easy = e;
    curl_multi_add_handle(multi, e);
}

static void finish_probe(CURL *e, CURLcode rc)
{
    struct probe *p = NULL;
    long status = 0;
    curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&p);
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    curl_multi_remove_handle(multi, e);
    if (p) {
        curl_slist_free_all(p->headers);
        p->headers = NULL;
        int up = rc == CURLE_OK && status >= 200 && status < 300;
        char why[96];
        if (rc != CURLE_OK)
            snprintf(why, sizeof why, "%s", curl_easy_strerror(rc));
        else
            snprintf(why, sizeof why, "HTTP %ld", status);
        state_probe_result(&p->snapshot, up ? PROBE_UP : PROBE_DOWN, why);
        p->easy = NULL;
    }
    curl_easy_cleanup(e);
}

static void *probe_main(void *arg)
{
    (void)arg;
    while (!stopping) {
        struct config *cfg = server_config();
        uint64_t now = now_ms();
        for (int i = 0; cfg && i < cfg->n_backends; i++) {
            const struct backend *b = &cfg->backends[i];
            if (!b->health.enabled || !b->health.path) {
                /* probes turned off by a reload: forget an old verdict, or a
                 * backend last seen down would be skipped for good */
                state_probe_result(b, PROBE_UNKNOWN, "probes off");
                continue;
            }
            struct probe *p = slot_for(b);
            if (!p || p->easy || now < p->next_at)
                continue;
            p->next_at = now + (uint64_t)b->health.interval_ms;
            start_probe(p, b);
        }
        if (cfg)
            config_unref(cfg);
        int n;
        curl_multi_poll(multi, NULL, 0, 100, &n);
        curl_multi_perform(multi, &n);
        CURLMsg *m;
        while ((m = curl_multi_info_read(multi, &n)))
            if (m->msg == CURLMSG_DONE)
                finish_probe(m->easy_handle, m->data.result);
    }
    for (int i = 0; i < MAX_PROBES; i++)
        if (probes[i].easy) {
            curl_multi_remove_handle(multi, probes[i].easy);
            curl_easy_cleanup(probes[i].easy);
            curl_slist_free_all(probes[i].headers);
            probes[i].easy = NULL;
        }
    return NULL;
}

int probe_start(void)
{
    multi = curl_multi_init();
    if (!multi)
        return -1;
    if (pthread_create(&thread, NULL, probe_main, NULL) != 0) {
        curl_multi_cleanup(multi);
        return -1;
    }
    running = 1;
    return 0;
}

void probe_stop(void)
{
    if (!running)
        return;
    stopping = 1;
    curl_multi_wakeup(multi);
    pthread_join(thread, NULL);
    curl_multi_cleanup(multi);
    running = 0;
}
