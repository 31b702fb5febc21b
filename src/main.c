/* main.c — airlock's entry point: command line, config load (or --check),
 * start the workers, then wait for signals: SIGHUP reloads, SIGTERM and
 * SIGINT drain in-flight requests and exit 0. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <curl/curl.h>

#include "airlock/config.h"
#include "airlock/exchange.h"
#include "airlock/notify.h"
#include "airlock/probe.h"
#include "airlock/server.h"

#define DEFAULT_CONFIG "/etc/airlock/airlock.yaml"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: airlock [-c FILE] [--check] [--version] [--help]\n"
            "\n"
            "  -c, --config FILE  configuration (default " DEFAULT_CONFIG ")\n"
            "  -t, --check        validate the configuration and exit: 0 if valid,\n"
            "                     else 1 with every error as FILE:LINE:COL: message\n"
            "  -v, --version      print the version and exit\n"
            "  -h, --help         print this help and exit\n"
            "\n"
            "Signals: SIGHUP reloads the configuration (a bad one is rejected and the\n"
            "old one keeps serving); SIGTERM/SIGINT stop accepting, let in-flight\n"
            "requests finish within shutdown_timeout_ms, and exit 0.\n");
}

/* Loads the config. For --check, problems go to stderr as FILE:LINE:COL
 * lines (as nginx -t prints them); in the daemon, as JSON log lines. A
 * reload cannot move the listener: `running` is the config it replaces. */
static struct config *load(const char *path, int daemon, const struct config *running)
{
    struct config_errors errs = { 0 };
    struct config *cfg = config_load(path, &errs);
    if (!cfg && daemon) {
        for (int i = 0; i < errs.n; i++)
            log_event("error", "%s:%d:%d: %s", path, errs.items[i].line, errs.items[i].col,
                      errs.items[i].message);
    } else if (!cfg) {
        config_errors_print(&errs, path, stderr);
        fprintf(stderr, "%s: %d error%s\n", path, errs.n, errs.n == 1 ? "" : "s");
    }
    config_errors_free(&errs);
    if (!cfg)
        return NULL;
    for (int i = 0; i < cfg->n_backends; i++) {
        const struct backend *b = &cfg->backends[i];
        if (!b->key_missing)
            continue;
        if (daemon)
            log_event("warn", "backend %s: %s is not set; the backend is not used", b->name, b->api_key_env);
        else
            fprintf(stderr, "%s: warning: backend '%s': %s is not set; the backend will not be used\n",
                    path, b->name, b->api_key_env);
    }
    if (running && (cfg->listen_port != running->listen_port || cfg->workers != running->workers ||
                    strcmp(cfg->listen_host, running->listen_host) != 0))
        log_event("warn", "listen and workers change on restart only; still %s:%d with %d workers",
                  running->listen_host, running->listen_port, running->workers);
    if (!daemon)
        printf("%s: ok\n", path);
    return cfg;
}

static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "config", required_argument, NULL, 'c' },
        { "check", no_argument, NULL, 't' },
        { "version", no_argument, NULL, 'v' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *path = DEFAULT_CONFIG;
    int check = 0, c;
    while ((c = getopt_long(argc, argv, "c:tvh", opts, NULL)) != -1) {
        switch (c) {
        case 'c': path = optarg; break;
        case 't': check = 1; break;
        case 'v': printf("airlock %s\n", AIRLOCK_VERSION); return 0;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "airlock: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 2;
    }

    json_scratch_init();
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "airlock: cannot initialise libcurl\n");
        return 1;
    }
    struct config *cfg = load(path, !check, NULL);
    if (check || !cfg) {
        if (cfg)
            config_unref(cfg);
        curl_global_cleanup();
        return cfg ? 0 : 1;
    }

    /* Workers inherit this mask; only this thread takes signals. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit();
    if (log_start(LOG_PENDING_MAX) < 0)
        log_event("warn", "no log writer thread: lines are written by the workers");

    if (server_start(cfg) < 0) {
        config_unref(cfg);
        curl_global_cleanup();
        log_stop(1000);
        return 1;
    }
    probe_start();
    char status[128];
    snprintf(status, sizeof status, "serving %d backends, %d workers", cfg->n_backends, cfg->workers);
    notify_ready(status);
    long drain_ms = cfg->shutdown_timeout_ms;
    config_unref(cfg);

    for (;;) {
        int sig;
        if (sigwait(&set, &sig) != 0)
            continue;
        if (sig == SIGHUP) {
            notify_reloading();
            struct config *running = server_config();
            struct config *fresh = load(path, 1, running);
            config_unref(running);
            if (!fresh) {
                log_event("error", "reload of %s rejected; the previous configuration keeps serving", path);
                notify_ready("last reload rejected; the previous configuration keeps serving");
                continue;
            }
            drain_ms = fresh->shutdown_timeout_ms;
            snprintf(status, sizeof status, "serving %d backends, %d workers; last reload ok",
                     fresh->n_backends, fresh->workers);
            server_set_config(fresh);
            log_event("info", "reloaded %s", path);
            notify_ready(status);
            continue;
        }
        notify_stopping();
        log_event("info", "%s: draining for up to %ld ms", sig == SIGTERM ? "SIGTERM" : "SIGINT", drain_ms);
        break;
    }
    probe_stop();
    server_drain_and_stop(drain_ms);
    curl_global_cleanup();
    log_event("info", "stopped");
    log_stop(2000);             /* a stderr that takes nothing does not hold up the exit */
    return 0;
}
