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

static struct config *load(const char *path, int quiet_ok)
{
    struct config_errors errs = { 0 };
    struct config *cfg = config_load(path, &errs);
    if (!cfg) {
        config_errors_print(&errs, path, stderr);
        fprintf(stderr, "%s: %d error%s\n", path, errs.n, errs.n == 1 ? "" : "s");
    } else if (!quiet_ok) {
        printf("%s: ok\n", path);
    }
    config_errors_free(&errs);
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
    struct config *cfg = load(path, !check);
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

    if (server_start(cfg) < 0) {
        config_unref(cfg);
        curl_global_cleanup();
        return 1;
    }
    probe_start();
    long drain_ms = cfg->shutdown_timeout_ms;
    config_unref(cfg);

    for (;;) {
        int sig;
        if (sigwait(&set, &sig) != 0)
            continue;
        if (sig == SIGHUP) {
            struct config *fresh = load(path, 1);
            if (!fresh) {
                log_event("error", "reload of %s rejected; the previous configuration keeps serving", path);
                continue;
            }
            drain_ms = fresh->shutdown_timeout_ms;
            server_set_config(fresh);
            log_event("info", "reloaded %s", path);
            continue;
        }
        log_event("info", "%s: draining for up to %ld ms", sig == SIGTERM ? "SIGTERM" : "SIGINT", drain_ms);
        break;
    }
    probe_stop();
    server_drain_and_stop(drain_ms);
    curl_global_cleanup();
    log_event("info", "stopped");
    return 0;
}
