/* server.h — worker threads, each with its own event loop: one epoll set
 * driving its own libmicrohttpd daemon (SO_REUSEPORT on the shared port) and
 * its own curl multi handle. Nothing is shared between workers but the
 * current config pointer and the backend state (health, circuits). */
#ifndef AIRLOCK_SERVER_H
#define AIRLOCK_SERVER_H

#include <pthread.h>
#include <stdint.h>
#include <curl/curl.h>
#include <microhttpd.h>

#include "airlock/config.h"
#include "airlock/util.h"

struct exchange;

/* What an easy handle's standing options are set for: one endpoint of one
 * backend of one config (attempt.c sets them). serial 0: none, the handle
 * is new or reset. */
struct easy_tag {
    uint64_t serial;            /* config->serial */
    int backend, path;
};

struct spare_easy {
    CURL *easy;
    struct easy_tag tag;
};

/* One client connection's hang-up watch (http/server.c). */
struct client_watch {
    struct exchange *ex;        /* the exchange parked on the connection, if any */
    int armed;                  /* the socket is in the worker's epoll set */
    int hung_up;                /* the client shut its side of the connection */
};

struct worker {
    int id;
    pthread_t thread;
    int epfd;                   /* the loop's epoll set */
    int wakefd;                 /* eventfd: stop / drain requests from main */
    struct MHD_Daemon *mhd;
    int mhd_epfd;
    CURLM *multi;
    uint32_t *curl_fd_events;   /* per fd: epoll mask curl asked for, PARKED, or 0 */
    int n_curl_fd;
    long curl_timeout_ms;       /* from CURLMOPT_TIMERFUNCTION; -1 = none */
    uint64_t curl_timer_set_at;
    struct exchange *active;    /* transfers with deadlines of our own */
    uint64_t next_deadline;     /* ms; 0 = none */
    struct exchange *unpause;   /* paused transfers whose client has drained */
    struct exchange *reading;   /* requests whose body is still arriving */
    struct client_watch *clients;   /* per client fd: its hang-up watch */
    int n_clients;
    struct buf log;             /* request lines not yet written */
    uint64_t next_reap;         /* ms: next look for clients that hung up mid-body */
    int draining;
    int in_flight;              /* exchanges not yet completed */
    int suspended;              /* connections parked with MHD_suspend_connection */
    int mhd_due;                /* MHD has work: ready socket or resumed connection */
    uint64_t drain_deadline;
    unsigned connections;       /* client connections open */
    unsigned connection_limit;  /* MHD's, from the open-file limit */
    uint64_t limit_logged_at;   /* ms: last "at the connection limit" line */
    uint64_t last_event_us;     /* busy polling: when epoll last had events */
    struct spare_easy spare[64];    /* finished easy handles, kept for reuse */
    int n_spare;
    struct exchange *spare_ex;  /* freed exchanges, reused: a 7 KB calloc per
                                   request made malloc consolidate */
    int n_spare_ex;
};

/* Starts cfg->workers workers listening on cfg->listen_*. Returns 0 or -1
 * (message already logged). */
int server_start(struct config *cfg);

/* Stops accepting, lets in-flight exchanges finish for up to timeout_ms, then
 * stops every worker. */
void server_drain_and_stop(long timeout_ms);

/* The config new requests use; the caller owns a reference. */
struct config *server_config(void);
/* Swaps in a new config (takes the caller's reference). */
void server_set_config(struct config *cfg);

/* Registers a transfer's easy handle with the worker's multi. */
/* A client's socket is watched for its hang-up (EPOLLRDHUP, edge-triggered)
 * from the moment its connection is accepted, one epoll_ctl per connection;
 * a hang-up is remembered until the connection closes. worker_watch_client
 * names the exchange parked on it: 0, or 1 when the client has already
 * hung up (nothing is then watched), or -1 when it cannot be watched. The
 * exchange is forgotten by worker_unwatch_client. */
int worker_watch_client(struct worker *w, struct exchange *ex, int fd);
void worker_unwatch_client(struct worker *w, struct exchange *ex);
int worker_add_transfer(struct worker *w, CURL *easy);
void worker_remove_transfer(struct worker *w, CURL *easy);
/* An easy handle for a transfer to `want`: *standing is 1 when its standing
 * options are already set for it, else 0 (a new or reset handle). NULL when
 * out of memory. */
CURL *worker_easy_get(struct worker *w, struct easy_tag want, int *standing);
/* Back after worker_remove_transfer; tag.serial 0 when its options are not
 * to be trusted (the transfer did not end cleanly). */
void worker_easy_put(struct worker *w, CURL *easy, struct easy_tag tag);
void worker_track(struct worker *w, struct exchange *ex);
void exchange_pool_free(struct worker *w);    /* at worker exit */
void worker_untrack(struct worker *w, struct exchange *ex);
void worker_note_deadline(struct worker *w, uint64_t deadline_ms);

#endif
