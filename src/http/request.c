/* request.c — reads a client request (headers, body within max_body_bytes),
 * validates it, levels and routes it, then either answers at once (errors,
 * models, health, explain) or hands it to the proxy. Also owns the
 * exchange's lifetime: created on the first callback, freed on completion. */
#include <arpa/inet.h>
#include <ctype.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "airlock/exchange.h"
#include "airlock/server.h"
#include "http/handlers.h"
#include "http/request.h"

int request_in_flight(const struct worker *w)
{
    return w->in_flight;
}

/* Only from the access handler or the content reader (MHD's rule). */
int exchange_suspend(struct exchange *ex)
{
    if (ex->peer_closed)
        return -1;
    if (ex->suspended)
        return 0;
    if (ex->client_fd < 0) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(ex->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        int watch = ci ? worker_watch_client(ex->worker, ex, ci->connect_fd) : -1;
        if (watch == 1) {           /* it hung up before this request parked */
            ex->peer_closed = 1;
            return -1;
        }
        if (watch == 0)
            ex->client_fd = ci->connect_fd;
    }
    ex->suspended = 1;
    ex->worker->suspended++;
    MHD_suspend_connection(ex->conn);
    return 0;
}

void exchange_abandon(struct exchange *ex)
{
    ex->client_gone = 1;
    proxy_abort(ex);
}

void request_client_hung_up(struct exchange *ex)
{
    ex->peer_closed = 1;
    if (!ex->suspended)
        return;         /* MHD has the connection; the next suspend says -1 */
    exchange_abandon(ex);
    exchange_resume(ex);
}

/* The client left while its request waited: MHD_NO makes MHD close the
 * connection (logged as 499). */
static enum MHD_Result client_left(struct exchange *ex)
{
    exchange_abandon(ex);
    return MHD_NO;
}

void exchange_resume(struct exchange *ex)
{
    if (!ex->suspended)
        return;
    ex->suspended = 0;
    ex->worker->suspended--;
    ex->worker->mhd_due = 1;
    MHD_resume_connection(ex->conn);
}

static void reading_add(struct worker *w, struct exchange *ex)
{
    ex_list_add(&w->reading, ex, offsetof(struct exchange, reading));
}

static void reading_remove(struct worker *w, struct exchange *ex)
{
    ex_list_remove(&w->reading, ex, offsetof(struct exchange, reading));
}

/* A request still reading its body whose socket says end-of-file (nothing
 * left unread) can never complete. Shutting the socket down gives MHD the
 * edge it missed: it reads the EOF and completes the request as aborted. */
void request_reap_half_closed(struct worker *w)
{
    for (struct exchange *ex = w->reading, *next; ex; ex = next) {
        next = ex->reading.next;
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(ex->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        char c;
        if (ci && recv(ci->connect_fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) == 0) {
            reading_remove(w, ex);
            shutdown(ci->connect_fd, SHUT_RDWR);
            w->mhd_due = 1;
        }
    }
}

static enum endpoint endpoint_of(const char *url)
{
    static const struct { const char *path; enum endpoint ep; } table[] = {
        { "/v1/chat/completions", EP_CHAT },
        { "/chat/completions", EP_CHAT },
        { "/v1/embeddings", EP_EMBEDDINGS },
        { "/embeddings", EP_EMBEDDINGS },
        { "/v1/airlock/explain", EP_EXPLAIN },
        { "/v1/models", EP_MODELS },
        { "/models", EP_MODELS },
        { "/healthz", EP_HEALTHZ },
        { "/readyz", EP_READYZ },
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (strcmp(url, table[i].path) == 0)
            return table[i].ep;
    return EP_NONE;
}

static int endpoint_wants_body(enum endpoint ep)
{
    return ep == EP_CHAT || ep == EP_EMBEDDINGS || ep == EP_EXPLAIN;
}

/* True when the classifier finds anything in `s` (or cannot tell): such
 * client text is never forwarded upstream or written to the log. */
static int looks_sensitive(const struct config *cfg, const char *s, size_t n)
{
    struct classification c;
    classify_text(cfg->classifier, s, n, &c);
    return c.n_hits > 0 || c.unreadable > 0 || c.level > 0;
}

/* The client's x-request-id is kept when it is a plain token, because it
 * goes upstream and into the log; one that looks like sensitive data (a card
 * number, a key) is replaced by a generated id, used everywhere instead. */
static void make_request_id(struct exchange *ex)
{
    const char *given = MHD_lookup_connection_value(ex->conn, MHD_HEADER_KIND, "x-request-id");
    if (given) {
        size_t n = strlen(given);
        int ok = n > 0 && n < sizeof ex->request_id;
        for (size_t i = 0; ok && i < n; i++)
            ok = isalnum((unsigned char)given[i]) || strchr("-_.:/+=", given[i]);
        if (ok && looks_sensitive(ex->cfg, given, n)) {
            ok = 0;
            ex->request_id_replaced = 1;
        }
        if (ok) {
            memcpy(ex->request_id, given, n + 1);
            return;
        }
    }
    static __thread uint64_t state;
    if (!state)
        state = now_us() ^ ((uint64_t)(uintptr_t)&state << 16) ^ 0x9e3779b97f4a7c15ull;
    /* xorshift64*: unique enough for a request id, not a secret */
    state ^= state >> 12;
    state ^= state << 25;
    state ^= state >> 27;
    uint64_t a = state * 0x2545f4914f6cdd1dull;
    static const char hex[] = "0123456789abcdef";
    memcpy(ex->request_id, "req_", 4);
    for (int i = 0; i < 16; i++)
        ex->request_id[4 + i] = hex[(a >> (60 - 4 * i)) & 15];
    ex->request_id[20] = '\0';
}

int request_add_common_headers(struct exchange *ex, struct MHD_Response *r)
{
    char n[U64_DIGITS + 1];
    MHD_add_response_header(r, "x-request-id", ex->request_id);
    if ((ex->endpoint != EP_CHAT && ex->endpoint != EP_EMBEDDINGS) || !ex->classified)
        return 0;       /* a request refused before it was classified has no level */
    const struct config *cfg = ex->cfg;
    MHD_add_response_header(r, "x-airlock-level",
                            ex->level >= 0 && ex->level < cfg->n_levels ? cfg->levels[ex->level] : "unknown");
    MHD_add_response_header(r, "x-airlock-rule", ex->plan.route ? ex->plan.route->name : "none");
    MHD_add_response_header(r, "x-airlock-backend",
                            ex->backend >= 0 ? cfg->backends[ex->backend].name : "none");
    MHD_add_response_header(r, "x-airlock-attempts", u64_decimal(n + U64_DIGITS, (uint64_t)proxy_attempts(ex)));
    return 0;
}

static struct exchange *exchange_new(struct worker *w, struct MHD_Connection *conn,
                                     const char *url, const char *method)
{
    struct exchange *ex = w->spare_ex;
    if (ex) {
        w->spare_ex = ex->spare_next;
        w->n_spare_ex--;
    } else {
        ex = malloc(sizeof(*ex));
    }
    if (!ex)
        return NULL;
    memset(ex, 0, EXCHANGE_ZEROED);
    classification_clear(&ex->cls);
    plan_clear(&ex->plan);
    ex->cfg = server_config();
    if (!ex->cfg) {
        free(ex);
        return NULL;
    }
    ex->worker = w;
    ex->conn = conn;
    ex->client_fd = -1;
    ex->started_us = now_us();
    ex->method = method;
    ex->path = url;
    ex->endpoint = endpoint_of(url);
    /* an unknown path or method is client text headed for the log */
    ex->log_redact_path = ex->endpoint == EP_NONE && looks_sensitive(ex->cfg, url, strlen(url));
    ex->log_redact_method = strcmp(method, "GET") && strcmp(method, "POST") && strcmp(method, "HEAD") &&
                            looks_sensitive(ex->cfg, method, strlen(method));
    ex->backend = -1;
    ex->level = ex->cfg->n_levels - 1;  /* until classified: the top (fail closed) */
    make_request_id(ex);
    w->in_flight++;
    reading_add(w, ex);
    return ex;
}

static void exchange_free(struct exchange *ex)
{
    if (ex->response)
        MHD_destroy_response(ex->response);
    json_scratch_free(ex->json);
    buf_free(&ex->body);
    buf_free(&ex->upstream_body);
    buf_free(&ex->upstream_resp);
    buf_free(&ex->held);
    buf_free(&ex->out);
    sse_free(&ex->sse);
    struct worker *w = ex->worker;
    worker_unwatch_client(w, ex);
    w->in_flight--;
    reading_remove(w, ex);
    config_unref(ex->cfg);
    if (w->n_spare_ex < 256) {
        ex->spare_next = w->spare_ex;
        w->spare_ex = ex;
        w->n_spare_ex++;
    } else {
        free(ex);
    }
}

void exchange_pool_free(struct worker *w)
{
    while (w->spare_ex) {
        struct exchange *ex = w->spare_ex;
        w->spare_ex = ex->spare_next;
        free(ex);
    }
    w->n_spare_ex = 0;
}

/* Only loopback peers may connect. (Client keys, on the roadmap, will let
 * others in; the loader refuses `clients:` until they are checked.) */
static int peer_allowed(struct exchange *ex)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(ex->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (!ci || !ci->client_addr)
        return 0;
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in4 = (const struct sockaddr_in *)sa;
        return (ntohl(in4->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (IN6_IS_ADDR_LOOPBACK(a))
            return 1;
        return IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127;
    }
    return 0;
}

/* A 400 after which the connection is not read further: where a badly
 * framed body ends is what a request smuggler plays on. */
static void refuse_and_close(struct exchange *ex, const char *code, const char *message)
{
    respond_error(ex, 400, "invalid_request_error", code, NULL, message);
    if (ex->response)
        MHD_add_response_header(ex->response, MHD_HTTP_HEADER_CONNECTION, "close");
}

static void dispatch(struct exchange *ex)
{
    reading_remove(ex->worker, ex);
    if (ex->bad_framing) {
        refuse_and_close(ex, "invalid_framing", "The request has Content-Length twice with different "
                                                "values, or both Content-Length and Transfer-Encoding");
        return;
    }
    if (ex->bad_host) {
        refuse_and_close(ex, "invalid_host", "An HTTP/1.1 request needs exactly one Host header");
        return;
    }
    if (!peer_allowed(ex)) {
        respond_error(ex, 403, "permission_error", "forbidden", NULL,
                      "only loopback clients may connect when no client keys are configured");
        return;
    }
    /* the path and method are echoed unless they look sensitive */
    const char *method = ex->log_redact_method ? "(method)" : ex->method;
    if (ex->endpoint == EP_NONE) {
        char msg[300];
        snprintf(msg, sizeof msg, "Unknown request URL: %.8s %.200s", method,
                 ex->log_redact_path ? "(path)" : ex->path);
        respond_error(ex, 404, "invalid_request_error", "unknown_url", NULL, msg);
        return;
    }
    int post = strcmp(ex->method, "POST") == 0;
    int get = strcmp(ex->method, "GET") == 0 || strcmp(ex->method, "HEAD") == 0;
    if (endpoint_wants_body(ex->endpoint) ? !post : !get) {
        char msg[300];
        const char *allow = endpoint_wants_body(ex->endpoint) ? "POST" : "GET, HEAD";
        snprintf(msg, sizeof msg, "Method %.8s is not allowed on %.200s; use %s", method, ex->path, allow);
        respond_error(ex, 405, "invalid_request_error", "method_not_allowed", NULL, msg);
        if (ex->response)
            MHD_add_response_header(ex->response, MHD_HTTP_HEADER_ALLOW, allow);
        return;
    }
    switch (ex->endpoint) {
    case EP_HEALTHZ:
        handle_healthz(ex);
        return;
    case EP_READYZ:
        handle_readyz(ex);
        return;
    case EP_MODELS:
        handle_models(ex);
        return;
    default:
        break;
    }
    if (ex->body_too_large) {
        char msg[128];
        snprintf(msg, sizeof msg, "Request body is larger than the limit of %zu bytes",
                 ex->cfg->max_body_bytes);
        respond_error(ex, 413, "invalid_request_error", "request_too_large", NULL, msg);
        return;
    }
    int prepared = handle_prepare(ex);
    /* What the tree was for (checks, classification, the plan) is done: it
     * is not held while the upstream works, and the arena is free again. */
    json_scratch_free(ex->json);
    ex->json = NULL;
    if (prepared < 0)
        return;                 /* answered with an error */
    if (ex->endpoint == EP_EXPLAIN)
        handle_explain(ex);
    else
        proxy_start(ex);
}

static enum MHD_Result queue_ready_response(struct exchange *ex)
{
    struct MHD_Response *r = ex->response;
    ex->response = NULL;
    ex->state = ex->committed ? EX_STREAMING : EX_DONE;
    enum MHD_Result rc = MHD_queue_response(ex->conn, ex->response_status, r);
    MHD_destroy_response(r);
    return rc;
}

struct head_check {
    const char *length;         /* the first Content-Length: the one libmicrohttpd frames by */
    int lengths_differ, transfer_encoding, hosts;
};

static enum MHD_Result check_header(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    struct head_check *h = cls;
    (void)kind;
    if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0) {
        if (!h->length)
            h->length = value ? value : "";
        else
            h->lengths_differ |= strcmp(h->length, value ? value : "") != 0;
    } else if (strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0) {
        h->transfer_encoding = 1;
    } else if (strcasecmp(key, MHD_HTTP_HEADER_HOST) == 0) {
        h->hosts++;
    }
    return MHD_YES;
}

/* What libmicrohttpd 0.9.75 lets through and RFC 9112 refuses: a body
 * framed two ways (it reads by the first Content-Length, or by chunked when
 * Transfer-Encoding is there too; 6.3 asks that such a request be refused,
 * or answered and its connection closed), and an HTTP/1.1 request without
 * exactly one Host (3.2). Returns the Content-Length, or NULL. */
static const char *check_headers(struct exchange *ex, struct MHD_Connection *conn, const char *version)
{
    struct head_check h = { 0 };
    MHD_get_connection_values(conn, MHD_HEADER_KIND, check_header, &h);
    ex->bad_framing = h.lengths_differ || (h.length && h.transfer_encoding);
    ex->bad_host = h.hosts > 1 || (h.hosts == 0 && strcmp(version, MHD_HTTP_VERSION_1_1) == 0);
    return h.length;
}

/* The most an over-limit body is read (and dropped) for a clean 413. */
#define DISCARD_MAX_BYTES (64ull << 20)

enum MHD_Result request_handler(void *cls, struct MHD_Connection *conn, const char *url,
                                const char *method, const char *version,
                                const char *upload_data, size_t *upload_data_size,
                                void **con_cls)
{
    struct worker *w = cls;
    struct exchange *ex = *con_cls;

    if (!ex) {
        ex = exchange_new(w, conn, url, method);
        if (!ex)
            return MHD_NO;
        *con_cls = ex;
        const char *cl = check_headers(ex, conn, version);
        unsigned long long len = cl ? strtoull(cl, NULL, 10) : 0;
        if (cl && len > ex->cfg->max_body_bytes) {
            ex->body_too_large = 1;
            /* A client waiting for "100 Continue", or about to send far more
             * than we would read, gets its 413 at once. Others are read and
             * discarded first: answering mid-upload makes the kernel reset
             * the connection, and the client sees that instead of the 413. */
            const char *expect = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_EXPECT);
            if ((expect && strcasecmp(expect, "100-continue") == 0) || len > DISCARD_MAX_BYTES) {
                dispatch(ex);
                if (ex->state == EX_RESPOND)
                    return queue_ready_response(ex);
            }
        }
        return MHD_YES;
    }

    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        ex->bytes_in += n;
        if (ex->body_too_large && ex->bytes_in > DISCARD_MAX_BYTES && ex->state == EX_READING) {
            dispatch(ex);       /* a chunked upload that never ends: its 413 now */
            if (ex->state == EX_RESPOND)
                return queue_ready_response(ex);
            return MHD_NO;
        }
        if (ex->body_too_large || !endpoint_wants_body(ex->endpoint))
            return MHD_YES;     /* discard */
        if (ex->body.len + n > ex->cfg->max_body_bytes) {
            ex->body_too_large = 1;
            buf_free(&ex->body);
            return MHD_YES;
        }
        return buf_append(&ex->body, upload_data, n) < 0 ? MHD_NO : MHD_YES;
    }

    if (ex->client_gone)
        return MHD_NO;
    switch (ex->state) {
    case EX_READING:
        dispatch(ex);
        if (ex->state == EX_RESPOND)
            return queue_ready_response(ex);
        if (ex->state == EX_WAITING && exchange_suspend(ex) < 0)
            return client_left(ex);
        return ex->state == EX_DONE ? MHD_NO : MHD_YES;
    case EX_RESPOND:
        return queue_ready_response(ex);
    case EX_WAITING:
        if (exchange_suspend(ex) < 0)
            return client_left(ex);
        return MHD_YES;
    default:
        return MHD_YES;
    }
}

void request_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                       enum MHD_RequestTerminationCode toe)
{
    struct exchange *ex = *con_cls;
    (void)cls;
    (void)conn;
    if (!ex)
        return;
    *con_cls = NULL;
    if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK) {
        if (ex->response_status == 0)
            ex->response_status = 499;  /* the client went away before an answer */
        else
            ex->ended_early = 1;        /* the answer may not have reached it whole */
    }
    proxy_abort(ex);
    log_exchange(ex);
    exchange_free(ex);
}
