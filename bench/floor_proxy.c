/* floor_proxy.c — the required libraries alone, as a proxy: libmicrohttpd in
 * airlock's mode (external epoll, suspend while the upstream works, resume
 * with the answer) in front of libcurl's multi interface on a kept easy
 * handle, with none of airlock's own work (no JSON parse, no classification,
 * no route, no verdict, no headers of its own, no log line). Its added
 * latency is the floor under airlock's that no change to airlock's own code
 * can lower; `make bench` runs it next to nginx and airlock.
 *
 *   floor_proxy LISTEN_PORT UPSTREAM_URL [THREADS]
 *
 * Listens on 127.0.0.1 only. Each thread has its own MHD daemon on the port (SO_REUSEPORT), its own
 * epoll set and its own curl multi handle, as airlock's workers do. Every
 * request's body is sent as it came to UPSTREAM_URL and the answer's status
 * and body are passed back. Not a product: no limits, no fallback, no errors
 * beyond a 502. Stops on SIGTERM/SIGINT.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <curl/curl.h>
#include <microhttpd.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#define MAX_EVENTS 64
#define SPARE 64

struct blob {
    char *data;
    size_t len, cap;
};

struct floor_worker {
    struct MHD_Daemon *mhd;
    int mhd_epfd, epfd;
    CURLM *multi;
    long curl_timeout_ms;
    uint64_t curl_timer_at;
    int mhd_due;
    CURL *spare[SPARE];
    int n_spare;
    pthread_t thread;
};

struct floor_request {
    struct floor_worker *w;
    struct MHD_Connection *conn;
    CURL *easy;
    struct blob body, answer;
    long status;
    int started, done;
};

static const char *upstream_url;
static volatile sig_atomic_t stopping;

static uint64_t now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000u + (uint64_t)t.tv_nsec / 1000000u;
}

static int blob_add(struct blob *b, const void *p, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->len + n)
            cap *= 2;
        char *d = realloc(b->data, cap);
        if (!d)
            return -1;
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    struct floor_request *r = arg;
    return blob_add(&r->answer, p, size * n) < 0 ? 0 : size * n;
}

/* A kept easy handle keeps its standing options, as airlock's do. */
static CURL *easy_get(struct floor_worker *w)
{
    if (w->n_spare > 0)
        return w->spare[--w->n_spare];
    CURL *e = curl_easy_init();
    if (!e)
        return NULL;
    static struct curl_slist json = { "Content-Type: application/json", NULL };
    curl_easy_setopt(e, CURLOPT_URL, upstream_url);
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, &json);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_PROXY, "");
    curl_easy_setopt(e, CURLOPT_NOPROXY, "*");
    return e;
}

static void easy_put(struct floor_worker *w, CURL *e)
{
    if (w->n_spare < SPARE)
        w->spare[w->n_spare++] = e;
    else
        curl_easy_cleanup(e);
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *conn, const char *url,
                               const char *method, const char *version, const char *upload,
                               size_t *upload_size, void **con_cls)
{
    struct floor_worker *w = cls;
    struct floor_request *r = *con_cls;
    (void)url;
    (void)method;
    (void)version;
    if (!r) {
        r = calloc(1, sizeof *r);
        if (!r)
            return MHD_NO;
        r->w = w;
        r->conn = conn;
        *con_cls = r;
        return MHD_YES;
    }
    if (*upload_size) {
        if (blob_add(&r->body, upload, *upload_size) < 0)
            return MHD_NO;
        *upload_size = 0;
        return MHD_YES;
    }
    if (!r->started) {
        r->started = 1;
        r->easy = easy_get(w);
        if (r->easy) {
            curl_easy_setopt(r->easy, CURLOPT_POSTFIELDS, r->body.data ? r->body.data : "");
            curl_easy_setopt(r->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body.len);
            curl_easy_setopt(r->easy, CURLOPT_WRITEDATA, r);
            curl_easy_setopt(r->easy, CURLOPT_PRIVATE, r);
            if (curl_multi_add_handle(w->multi, r->easy) == CURLM_OK) {
                MHD_suspend_connection(conn);
                return MHD_YES;
            }
            easy_put(w, r->easy);
            r->easy = NULL;
        }
        r->done = 1;
        r->status = 0;
    }
    int ok = r->status >= 200;
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        ok ? r->answer.len : 4, ok ? r->answer.data : "{}\r\n", MHD_RESPMEM_MUST_COPY);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", "application/json");
    enum MHD_Result rc = MHD_queue_response(conn, ok ? (unsigned)r->status : 502u, resp);
    MHD_destroy_response(resp);
    return rc;
}

static void completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
    struct floor_worker *w = cls;
    struct floor_request *r = *con_cls;
    (void)conn;
    (void)toe;
    if (!r)
        return;
    if (r->easy && !r->done)
        curl_multi_remove_handle(w->multi, r->easy);
    if (r->easy)
        easy_put(w, r->easy);
    free(r->body.data);
    free(r->answer.data);
    free(r);
    *con_cls = NULL;
}

static int socket_cb(CURL *e, curl_socket_t s, int what, void *userp, void *socketp)
{
    struct floor_worker *w = userp;
    (void)e;
    (void)socketp;
    if (what == CURL_POLL_REMOVE) {
        epoll_ctl(w->epfd, EPOLL_CTL_DEL, s, NULL);
        return 0;
    }
    struct epoll_event ev = { .events = ((what & CURL_POLL_IN) ? EPOLLIN : 0u) |
                                        ((what & CURL_POLL_OUT) ? EPOLLOUT : 0u) };
    ev.data.fd = s;
    if (epoll_ctl(w->epfd, EPOLL_CTL_MOD, s, &ev) < 0)
        epoll_ctl(w->epfd, EPOLL_CTL_ADD, s, &ev);
    return 0;
}

static int timer_cb(CURLM *m, long ms, void *userp)
{
    struct floor_worker *w = userp;
    (void)m;
    w->curl_timeout_ms = ms;
    w->curl_timer_at = now_ms();
    return 0;
}

static void finish_transfers(struct floor_worker *w)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(w->multi, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        struct floor_request *r;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&r);
        if (msg->data.result == CURLE_OK)
            curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &r->status);
        curl_multi_remove_handle(w->multi, msg->easy_handle);
        r->done = 1;
        MHD_resume_connection(r->conn);
        w->mhd_due = 1;
    }
}

static int loop_timeout(struct floor_worker *w)
{
    long t = -1;
    if (w->curl_timeout_ms >= 0) {
        uint64_t due = w->curl_timer_at + (uint64_t)w->curl_timeout_ms, now = now_ms();
        t = due > now ? (long)(due - now) : 0;
    }
    MHD_UNSIGNED_LONG_LONG mt;
    if (MHD_get_timeout(w->mhd, &mt) == MHD_YES && (t < 0 || (long)mt < t))
        t = (long)mt;
    return t < 0 || t > 200 ? 200 : (int)t;
}

static void *worker_main(void *arg)
{
    struct floor_worker *w = arg;
    struct epoll_event events[MAX_EVENTS];
    int running;
    while (!stopping) {
        int n = epoll_wait(w->epfd, events, MAX_EVENTS, loop_timeout(w));
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;
            if (fd == w->mhd_epfd) {
                w->mhd_due = 1;
                continue;
            }
            int flags = ((events[i].events & EPOLLIN) ? CURL_CSELECT_IN : 0) |
                        ((events[i].events & EPOLLOUT) ? CURL_CSELECT_OUT : 0) |
                        ((events[i].events & (EPOLLERR | EPOLLHUP)) ? CURL_CSELECT_ERR : 0);
            curl_multi_socket_action(w->multi, fd, flags, &running);
        }
        /* Work that makes more work in the same turn, as airlock's loop does. */
        for (int turn = 0; turn < 4; turn++) {
            if (w->curl_timeout_ms == 0 ||
                (w->curl_timeout_ms > 0 && now_ms() >= w->curl_timer_at + (uint64_t)w->curl_timeout_ms)) {
                w->curl_timeout_ms = -1;
                curl_multi_socket_action(w->multi, CURL_SOCKET_TIMEOUT, 0, &running);
            }
            finish_transfers(w);
            MHD_UNSIGNED_LONG_LONG mt;
            if (w->mhd_due || (MHD_get_timeout(w->mhd, &mt) == MHD_YES && mt == 0)) {
                w->mhd_due = 0;
                MHD_run(w->mhd);
            }
            if (w->curl_timeout_ms != 0 && !(MHD_get_timeout(w->mhd, &mt) == MHD_YES && mt == 0))
                break;
        }
    }
    return NULL;
}

static void on_signal(int sig)
{
    (void)sig;
    stopping = 1;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: floor_proxy LISTEN_PORT UPSTREAM_URL [THREADS]\n");
        return 2;
    }
    int port = atoi(argv[1]), threads = argc > 3 ? atoi(argv[3]) : 2;
    upstream_url = argv[2];
    if (port <= 0 || port > 65535 || threads < 1 || threads > 64) {
        fprintf(stderr, "floor_proxy: bad port or thread count\n");
        return 2;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    signal(SIGPIPE, SIG_IGN);
    struct floor_worker *ws = calloc((size_t)threads, sizeof *ws);
    if (!ws)
        return 1;
    for (int i = 0; i < threads; i++) {
        struct floor_worker *w = &ws[i];
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        w->mhd = MHD_start_daemon(MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_TURBO,
                                  0, NULL, NULL, handler, w,
                                  MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                                  MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned)1,
                                  MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(16 * 1024),
                                  MHD_OPTION_NOTIFY_COMPLETED, completed, w, MHD_OPTION_END);
        const union MHD_DaemonInfo *info =
            w->mhd ? MHD_get_daemon_info(w->mhd, MHD_DAEMON_INFO_EPOLL_FD) : NULL;
        w->mhd_epfd = info ? info->epoll_fd : -1;
        w->epfd = epoll_create1(EPOLL_CLOEXEC);
        w->multi = curl_multi_init();
        if (w->mhd_epfd < 0 || w->epfd < 0 || !w->multi) {
            fprintf(stderr, "floor_proxy: cannot start on port %d\n", port);
            return 1;
        }
        struct epoll_event ev = { .events = EPOLLIN };
        ev.data.fd = w->mhd_epfd;
        epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->mhd_epfd, &ev);
        w->curl_timeout_ms = -1;
        curl_multi_setopt(w->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
        curl_multi_setopt(w->multi, CURLMOPT_SOCKETDATA, w);
        curl_multi_setopt(w->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
        curl_multi_setopt(w->multi, CURLMOPT_TIMERDATA, w);
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0)
            return 1;
    }
    for (int i = 0; i < threads; i++) {
        pthread_join(ws[i].thread, NULL);
        while (ws[i].n_spare > 0)
            curl_easy_cleanup(ws[i].spare[--ws[i].n_spare]);
        curl_multi_cleanup(ws[i].multi);
        MHD_stop_daemon(ws[i].mhd);
        close(ws[i].epfd);
    }
    free(ws);
    curl_global_cleanup();
    return 0;
}
