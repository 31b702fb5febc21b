/* exchange.h — one client request and everything airlock does for it: the
 * body it read, the policy decision, each upstream attempt, and the bytes
 * waiting to go back to the client. An exchange lives on one worker thread
 * from the first byte of the request to the completion callback. */
#ifndef AIRLOCK_EXCHANGE_H
#define AIRLOCK_EXCHANGE_H

#include <stddef.h>
#include <stdint.h>
#include <curl/curl.h>
#include <microhttpd.h>
#include <cjson/cJSON.h>

#include "airlock/classify.h"
#include "airlock/config.h"
#include "airlock/policy.h"
#include "airlock/server.h"
#include "airlock/sse.h"
#include "airlock/util.h"

/* Records of skips and tries per request; when full, nothing more is tried
 * (so no record is ever overwritten): far above any real chain. */
#define MAX_ATTEMPTS 32

struct worker;

enum endpoint {
    EP_NONE,
    EP_CHAT,            /* POST /v1/chat/completions */
    EP_EMBEDDINGS,      /* POST /v1/embeddings */
    EP_EXPLAIN,         /* POST /v1/airlock/explain */
    EP_MODELS,          /* GET /v1/models */
    EP_HEALTHZ,
    EP_READYZ,
};

enum exchange_state {
    EX_READING,         /* request body arriving */
    EX_WAITING,         /* suspended: an upstream attempt is running */
    EX_RESPOND,         /* a response is ready to queue when the handler runs again */
    EX_STREAMING,       /* a streamed response is queued; bytes flow through `out` */
    EX_DONE,            /* response queued; nothing more to do */
};

/* How one attempt ended, for the log, the 502 message and the circuit. */
enum outcome {
    OUT_NONE,
    OUT_OK,
    OUT_POLICY,         /* refused by clearance at the wire: never sent */
    OUT_CONNECT,        /* could not connect, DNS, TLS */
    OUT_TIMEOUT,        /* connect, first byte, idle or total deadline */
    OUT_5XX,
    OUT_429,
    OUT_CONTEXT_LENGTH,
    OUT_BAD_RESPONSE,   /* 200 that does not parse, stream cut short, in-stream error */
    OUT_CLIENT_ERROR,   /* other 4xx: passed through */
    OUT_ABORTED,        /* the client left */
};

struct attempt_record {
    int backend;
    enum outcome outcome;
    long status;                /* upstream HTTP status, 0 if none */
    char detail[96];            /* short reason, never upstream body text */
    uint64_t ms;
};

/* A place on one of a worker's doubly linked lists of exchanges. */
struct ex_link {
    struct exchange *prev, *next;
    int linked;
};

struct exchange {
    struct exchange *spare_next;    /* on the worker's list of spare exchanges */
    struct worker *worker;
    struct MHD_Connection *conn;
    struct config *cfg;         /* a reference, held for the whole exchange */
    enum endpoint endpoint;
    enum exchange_state state;
    uint64_t started_us;
    char request_id[80];
    const char *method;
    const char *path;

    /* request */
    struct buf body;
    int body_too_large;
    int bad_framing;            /* Content-Length twice, or with Transfer-Encoding */
    int bad_host;               /* HTTP/1.1 without Host, or Host twice */
    cJSON *json;                /* the parsed body, in the worker's scratch
                                 * arena: dropped once the request is planned */
    int stream;

    /* policy (the classification and the plan are in the tables below) */
    int level;
    long prompt_tokens;
    int next_candidate;
    int clearance_excluded;     /* some backend was dropped for clearance */

    /* attempts (the records are in the tables below) */
    int n_tries;
    int backend;                /* the backend of the current/last attempt, -1 none */

    /* the current upstream transfer */
    CURL *easy;
    struct easy_tag easy_tag;   /* what its standing options are set for */
    int easy_clean_end;         /* the transfer ended with CURLE_OK, unpaused */
    struct curl_slist upstream_headers;     /* the request id, then the backend's list */
    char request_id_header[96];
    struct buf upstream_body;   /* what we send */
    struct buf upstream_resp;   /* non-stream body, or an error body (bounded) */
    long upstream_status;
    long retry_after_ms;        /* the upstream's Retry-After from now, -1 none */
    char retry_after_raw[64];   /* as it came (seconds or an HTTP date), for a passthrough */
    int got_first_byte;
    uint64_t first_byte_deadline;   /* ms, 0 = none */
    uint64_t idle_deadline;         /* ms, 0 = none */
    int deadline_fired;             /* our own timer aborted the transfer */
    enum outcome fail_outcome;      /* set by a callback that stopped the transfer */
    char fail_detail[96];
    uint64_t attempt_started_us;
    int forced;                     /* tried a backend whose state said skip */
    int holds_trial;                /* the running attempt is its backend's half-open trial */
    uint64_t retry_at;              /* ms: retry the same backend then; 0 = none */
    int cur_candidate;              /* plan index of the current/last attempt */
    int retry_candidate;
    int paused;                     /* upstream paused for backpressure */
    int want_unpause;
    struct ex_link active;          /* worker's list of running transfers */
    struct exchange *unpause_next;  /* worker's list of transfers to resume */
    int on_unpause_list;
    struct ex_link reading;         /* worker's list of bodies still arriving */

    /* stream relay */
    struct sse_parser sse;
    struct buf held;            /* events before the first one worth committing to */
    int committed;              /* bytes have been promised to the client */
    int saw_finish, saw_done, saw_content;
    unsigned dropped_events;

    /* response to the client */
    struct MHD_Response *response;  /* ready to queue (EX_RESPOND) */
    unsigned response_status;
    int ended_early;            /* an answer was under way when the connection ended */
    int request_id_replaced;    /* the client's x-request-id looked sensitive */
    int log_redact_path;        /* an unknown path, or a method, that looked sensitive */
    int log_redact_method;
    struct buf out;             /* stream bytes not yet taken by MHD */
    size_t out_off;
    int out_finished;           /* no more bytes will come */
    int suspended;
    int client_fd;              /* the client's socket once watched, else -1 */
    int peer_closed;            /* the client's socket said end-of-file */
    int client_gone;            /* ...while the request waited: it was abandoned */
    size_t bytes_in;            /* request body bytes received, kept or not */
    size_t bytes_out;
    int classified;             /* the level and plan are known (x-airlock-* headers) */

    /* Tables, each with its own count, every entry written in full when it
     * is added: a reused exchange is zeroed only up to here (7 of its 8.7 KB
     * are these) and exchange_new empties them by their counts. */
    struct classification cls;
    struct plan plan;
    struct attempt_record tries[MAX_ATTEMPTS];
};

/* Where the zeroing of a reused exchange stops. */
#define EXCHANGE_ZEROED offsetof(struct exchange, cls)

/* http/server.c: lists through the ex_link at `off` in each exchange
 * (offsetof(struct exchange, active), ...); adding twice, removing an
 * exchange not on the list: no-ops. */
void ex_list_add(struct exchange **head, struct exchange *ex, size_t off);
void ex_list_remove(struct exchange **head, struct exchange *ex, size_t off);

/* http/request.c */
int request_add_common_headers(struct exchange *ex, struct MHD_Response *r);
/* Parks the connection while nothing can be sent / wakes it up. Counted per
 * worker: libmicrohttpd must not be stopped with a connection parked.
 * While parked, the worker watches the client's socket itself (MHD does
 * not): exchange_suspend returns -1, parking nothing, when the client has
 * already hung up; the caller then ends the request. */
int exchange_suspend(struct exchange *ex);
void exchange_resume(struct exchange *ex);
/* The client left: its upstream work is cancelled (no fallback, no retry)
 * and the request ends without an answer. */
void exchange_abandon(struct exchange *ex);
/* The worker saw the client of this parked exchange hang up: it is
 * abandoned and the connection woken to be closed. */
void request_client_hung_up(struct exchange *ex);

/* http/errors.c: builds OpenAI's error object and makes it the response. */
void respond_error(struct exchange *ex, unsigned status, const char *type,
                   const char *code, const char *param, const char *message);
void respond_buffer(struct exchange *ex, unsigned status, const char *content_type,
                    const char *data, size_t len);
/* Hands a prepared response to the connection: queued now if the handler is
 * running, else when the resumed connection calls the handler again. */
void respond_ready(struct exchange *ex, struct MHD_Response *r, unsigned status);

/* upstream/proxy.c */
void proxy_start(struct exchange *ex);
int proxy_attempts(const struct exchange *ex); /* transfers started, skips not counted */
void proxy_abort(struct exchange *ex);           /* the client left */
/* Shutdown past the drain time: answer or end everything still waiting. */
void proxy_cancel_all(struct worker *w);
void proxy_check_deadlines(struct worker *w, uint64_t now);
void proxy_transfer_done(struct worker *w, CURL *easy, CURLcode result);
void proxy_unpause_ready(struct worker *w);
ssize_t proxy_stream_reader(void *cls, uint64_t pos, char *buf, size_t max);

/* obs/log.c */
/* Adds the request's line to its worker's log buffer; log_flush() hands it
 * on (the worker loop does before it sleeps): one hand-off for many requests. */
void log_exchange(const struct exchange *ex);

const char *outcome_name(enum outcome o);

#endif
