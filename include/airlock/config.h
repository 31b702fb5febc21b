/* config.h — the operator's YAML policy as an immutable, reference-counted
 * struct. config_load() builds one (or returns every error with its
 * FILE:LINE:COL); requests hold a reference for as long as they run, so a
 * reload can swap in a new config while old requests finish on the old one. */
#ifndef AIRLOCK_CONFIG_H
#define AIRLOCK_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define MAX_LEVELS 16

enum zone { ZONE_LOCAL, ZONE_CLOUD };

enum provider {
    PROVIDER_OPENAI,     /* default: any OpenAI-compatible host */
    PROVIDER_ANTHROPIC,
    PROVIDER_AZURE,
    PROVIDER_GEMINI,
    PROVIDER_OLLAMA,
    PROVIDER_LLAMACPP,
    PROVIDER_VLLM,
    PROVIDER_LMSTUDIO,
    PROVIDER_TENSORRT,
};

/* Fallback triggers (fallback.on), a bit set. */
enum trigger {
    TRIGGER_CONNECT = 1 << 0,
    TRIGGER_TIMEOUT = 1 << 1,
    TRIGGER_5XX = 1 << 2,
    TRIGGER_429 = 1 << 3,
    TRIGGER_CONTEXT_LENGTH = 1 << 4,
};

struct timeouts {
    long connect_ms;    /* default 1000 (local) / 3000 (cloud) */
    long first_byte_ms; /* response headers and first body byte; default 60000 */
    long idle_ms;       /* between stream chunks; default 30000 */
    long total_ms;      /* whole attempt; default 600000 */
};

struct health {
    int enabled;        /* default: 1 for local, 0 (passive only) for cloud */
    char *path;         /* appended to url; default per provider, e.g. "/models" */
    long interval_ms;   /* default 5000 */
    long timeout_ms;    /* default 2000 */
};

struct upstream_template;       /* a backend's pre-parsed URLs and headers: upstream.h */

struct backend {
    int index;                  /* position in config->backends */
    char *name;
    enum provider provider;
    enum zone zone;
    char *url;                  /* base URL without trailing '/', e.g. http://127.0.0.1:11434/v1 */
    char *model;                /* upstream model name; NULL = keep the client's */
    long context_window;        /* tokens; 0 = unknown (no check) */
    struct timeouts timeouts;
    struct health health;
    char *api_version;          /* azure: sent as ?api-version= on every request */
    char *api_key_env;          /* name of the env variable, as written in YAML */
    char *api_key_file;         /* path, as written in YAML */
    char *api_key;              /* resolved secret at load time; NULL if none. Never logged. */
    int key_missing;            /* api_key_env names an unset variable: not used */
    int clearance;              /* level index; default top for local, 0 for cloud */
    double price_input_per_mtok;  /* USD per million tokens; 0 = free */
    double price_output_per_mtok;
    double price_cached_input_per_mtok;  /* default: the input price */
    int64_t price_input_ppt;    /* the same in pico-USD per token (USD/Mtok x 1e6), exact */
    int64_t price_output_ppt;
    int64_t price_cached_ppt;
    int retries;                /* extra tries on this backend before moving on; default 0 */
    struct upstream_template *tmpl; /* what every request to it shares: built at load, owned */
};

struct route_target {
    int backend;                /* index into config->backends */
    char *model;                /* pinned upstream model ("openai/gpt-4o"), or NULL */
};

/* A tri-state for boolean conditions: absent, false, true. */
enum tristate { TRI_ANY = -1, TRI_FALSE = 0, TRI_TRUE = 1 };

struct route {
    char *name;
    /* when: every present condition must hold */
    char *model_glob;           /* NULL = any */
    char *client;               /* NULL = any */
    int level_at_least;         /* -1 = any */
    long prompt_tokens_over;    /* -1 = no condition */
    long prompt_tokens_under;   /* -1 = no condition */
    enum tristate budget_exhausted;
    enum tristate stream;
    struct route_target *use;
    int n_use;
};

enum detector_kind { DETECTOR_BUILTIN, DETECTOR_KEYWORDS, DETECTOR_REGEX };

enum builtin_detector {
    BUILTIN_EMAIL,
    BUILTIN_PHONE,
    BUILTIN_CREDIT_CARD,
    BUILTIN_US_SSN,
    BUILTIN_IBAN,
    BUILTIN_SECRET_KEY,
    BUILTIN_IPV4,
    BUILTIN_COUNT
};

struct detector {
    char *name;                 /* builtin name, or the `name:` given */
    enum detector_kind kind;
    enum builtin_detector builtin;  /* when kind == DETECTOR_BUILTIN */
    char **keywords;            /* when kind == DETECTOR_KEYWORDS */
    int n_keywords;
    char *regex;                /* when kind == DETECTOR_REGEX */
    int level;
};

enum budget_scope { BUDGET_GLOBAL, BUDGET_CLIENT, BUDGET_BACKEND };
enum budget_period { PERIOD_DAY, PERIOD_MONTH };

struct budget {
    enum budget_scope scope;
    enum budget_period period;
    char *backend;              /* when scope == BUDGET_BACKEND */
    double usd;
};

struct client {
    char *name;
    unsigned char key_sha256[32];
};

struct classifier;              /* compiled detectors: policy/classify.h */

struct config {
    int refs;                   /* atomic; config_ref / config_unref */
    uint64_t serial;            /* unique per load: tells configs apart after one is freed */
    char *path;

    char *listen_host;          /* default "127.0.0.1" */
    int listen_port;            /* default 8080 */
    int workers;                /* 0 in YAML ("auto") is resolved to the core count */
    size_t max_body_bytes;      /* default 4 MiB */
    long shutdown_timeout_ms;   /* default 30000 */
    long busy_poll_us;          /* default 0: a worker with nothing to do sleeps at once */
    char *ledger_path;          /* NULL = no ledger */

    char *levels[MAX_LEVELS];   /* lowest first; default public, internal, confidential, secret */
    int n_levels;

    struct backend *backends;
    int n_backends;

    char *sensitivity_header;   /* default "x-airlock-level" */
    int unreadable_level;       /* images, audio, files, base64 blobs; default top level */
    struct detector *detectors; /* `detectors:` absent = every built-in at its default
                                   level (PRODUCT.md); an explicit [] = none */
    int n_detectors;
    struct classifier *classifier;  /* built from detectors at load; owned */

    struct budget *budgets;
    int n_budgets;

    struct route *routes;       /* first match wins */
    int n_routes;

    unsigned fallback_on;       /* enum trigger bits; default all */
    int max_attempts;           /* default 3 */
    int circuit_failures;       /* default 3 */
    long circuit_open_ms;       /* default 30000 */
    long retry_after_max_ms;    /* cap on an upstream's Retry-After cool-down; default 60000 */

    struct client *clients;
    int n_clients;
};

/* One error found while loading: "FILE:LINE:COL: message". */
struct config_error {
    int line, col;              /* 1-based; 0 when not tied to a position */
    char message[256];
};

struct config_errors {
    struct config_error *items;
    int n, cap;
};

/* Loads and validates FILE. Returns a config with refs == 1, or NULL with every
 * problem in *errs (which the caller frees with config_errors_free). Secrets
 * named by api_key_env / api_key_file are read here. */
struct config *config_load(const char *path, struct config_errors *errs);

/* The same from a buffer; `name` is used in messages. For tests and fuzzing. */
struct config *config_load_string(const char *name, const char *yaml, size_t len,
                                  struct config_errors *errs);

/* Prints every error as "FILE:LINE:COL: message\n" to `out` (a FILE *). */
void config_errors_print(const struct config_errors *errs, const char *path, void *out);
void config_errors_free(struct config_errors *errs);

struct config *config_ref(struct config *cfg);
/* Drops a reference; the last one frees the config (config_free). */
void config_unref(struct config *cfg);
void config_free(struct config *cfg);

/* Level name -> index, or -1. Case-insensitive. */
int config_level_index(const struct config *cfg, const char *name);
/* The socket address `listen` names (host NULL or "" = every interface).
 * 0, or -1 when the host is not a numeric address nor localhost. */
int config_listen_address(const char *host, int port, struct sockaddr_storage *ss, int *v6);
const struct backend *config_backend(const struct config *cfg, const char *name);

#endif
