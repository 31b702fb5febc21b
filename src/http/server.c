/* server.c — the workers. Each is one thread running one epoll loop that
 * drives its own libmicrohttpd daemon (all daemons share the port through
 * SO_REUSEPORT) and its own curl multi handle, so a request is read, routed,
 * forwarded and relayed on a single thread without locks. */
#include <errno.h>
#include <stddef.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "airlock/exchange.h"
#include "airlock/server.h"
#include "http/request.h"

#define MAX_EVENTS 128

static struct worker *workers;
static int n_workers;
static pthread_mutex_t config_lock = PTHREAD_MUTEX_INITIALIZER;
static struct config *current_config;
static atomic_long busy_poll_us;    /* the current config's: a reload changes it */

struct config *server_config(void)
{
    pthread_mutex_lock(&config_lock);
    struct config *cfg = config_ref(current_config);
    pthread_mutex_unlock(&config_lock);
    return cfg;
}

void server_set_config(struct config *cfg)
{
    pthread_mutex_lock(&config_lock);
    struct config *old = current_config;
    current_config = cfg;
    pthread_mutex_unlock(&config_lock);
    atomic_store_explicit(&busy_poll_us, cfg ? cfg->busy_poll_us : 0, memory_order_relaxed);
    if (old)
        config_unref(old);
}

/* ---- curl multi <-> epoll ---- */

/* A socket curl no longer watches (its connection went back to the pool)
 * stays in the epoll set with its last mask, marked parked: when the next
 * request on that connection asks for the same events, no syscall at all.
 * That is safe only for sockets whose close we see: the ones curl opens and
 * closes through curl_open_socket()/curl_close_socket() (OWNED). Others
 * (the resolver's socketpair) are added and removed the plain way. An event
 * on a parked socket (the upstream closed the idle connection) takes it out
 * of the set for real. */
#define CURL_FD_OWNED 0x80000000u
#define CURL_FD_PARKED 0x40000000u
#define CURL_FD_MASK (EPOLLIN | EPOLLOUT)

/* Grows a table indexed by fd (*n entries of `size` bytes; new ones
 * zeroed) until fd fits. Returns the table, perhaps moved, or NULL when
 * fd < 0 or memory runs out (the old table then stays as it was). */
static void *fd_table_fit(void *table, int *n, size_t size, int fd)
{
    if (fd < 0)
        return NULL;
    if (fd < *n)
        return table;
    int want = *n ? *n : 256;
    while (want <= fd)
        want *= 2;
    char *t = realloc(table, (size_t)want * size);
    if (!t)
        return NULL;
    memset(t + (size_t)*n * size, 0, (size_t)(want - *n) * size);
    *n = want;
    return t;
}

static uint32_t *curl_fd_slot(struct worker *w, curl_socket_t s)
{
    uint32_t *t = fd_table_fit(w->curl_fd_events, &w->n_curl_fd, sizeof *t, s);
    if (!t)
        return NULL;
    w->curl_fd_events = t;
    return &t[s];
}

static curl_socket_t curl_open_socket(void *clientp, curlsocktype purpose, struct curl_sockaddr *a)
{
    struct worker *w = clientp;
    (void)purpose;
    curl_socket_t s = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
    uint32_t *slot = curl_fd_slot(w, s);
    if (slot)
        *slot = CURL_FD_OWNED;
    return s;
}

static int curl_close_socket(void *clientp, curl_socket_t s)
{
    struct worker *w = clientp;
    if (s >= 0 && s < w->n_curl_fd)
        w->curl_fd_events[s] = 0;     /* close() takes it out of the epoll set */
    return close(s);
}

static int curl_socket_cb(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    struct worker *w = userp;
    (void)easy;
    (void)socketp;
    uint32_t *slot = curl_fd_slot(w, s);
    uint32_t owned = slot && (*slot & CURL_FD_OWNED);
    if (what == CURL_POLL_REMOVE) {
        if (owned && (*slot & CURL_FD_MASK))
            *slot |= CURL_FD_PARKED;
        else
            epoll_ctl(w->epfd, EPOLL_CTL_DEL, s, NULL);
        return 0;
    }
    struct epoll_event ev = { 0 };
    ev.events = ((what & CURL_POLL_IN) ? EPOLLIN : 0u) | ((what & CURL_POLL_OUT) ? EPOLLOUT : 0u);
    ev.data.fd = s;
    if (owned && (*slot & CURL_FD_MASK) == ev.events) {
        *slot = CURL_FD_OWNED | ev.events;      /* already in the set as wanted */
        return 0;
    }
    int op = owned && (*slot & CURL_FD_MASK) ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    if (epoll_ctl(w->epfd, op, s, &ev) < 0 &&
        epoll_ctl(w->epfd, op == EPOLL_CTL_ADD ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, s, &ev) < 0)
        log_event("warn", "worker %d: epoll_ctl on upstream socket: %s", w->id, strerror(errno));
    if (owned)
        *slot = CURL_FD_OWNED | ev.events;
    return 0;
}

static int curl_timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    struct worker *w = userp;
    (void)multi;
    w->curl_timeout_ms = timeout_ms;
    w->curl_timer_set_at = now_ms();
    return 0;
}

/* ---- clients of parked connections ---- */

/* The tag in an epoll event's data for a watched client socket (the fd in
 * the low bits); curl's sockets and our own fds carry their plain fd. */
#define CLIENT_WATCH (1ull << 63)

static struct client_watch *client_slot(struct worker *w, int fd)
{
    struct client_watch *t = fd_table_fit(w->clients, &w->n_clients, sizeof *t, fd);
    if (!t)
        return NULL;
    w->clients = t;
    return &t[fd];
}

/* Puts the socket in the set; ADD reports a hang-up that already happened. */
static int client_arm(struct worker *w, struct client_watch *c, int fd)
{
    struct epoll_event ev = { .events = EPOLLRDHUP | EPOLLET };
    ev.data.u64 = CLIENT_WATCH | (uint64_t)(unsigned)fd;
    c->armed = epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &ev) == 0 ||
               (errno == EEXIST && epoll_ctl(w->epfd, EPOLL_CTL_MOD, fd, &ev) == 0);
    return c->armed ? 0 : -1;
}

/* MHD_OPTION_NOTIFY_CONNECTION: a connection's socket is watched from its
 * accept to its close (close() takes it out of the set), so a request does
 * not pay an epoll_ctl of its own. */
static void connection_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                              enum MHD_ConnectionNotificationCode code)
{
    struct worker *w = cls;
    (void)socket_context;
    if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        w->connections--;
        /* At its connection limit, or after accept() failed with EMFILE,
         * MHD takes the listening socket out of its epoll set, and puts it
         * back only at the start of its next run once a connection has
         * closed. Nothing in the set would wake us for that run, and the
         * listen backlog would wait for ever: it is run again now. */
        w->mhd_due = 1;
    } else if (++w->connections >= w->connection_limit) {
        uint64_t now = now_ms();
        if (!w->limit_logged_at || now - w->limit_logged_at >= 60000) {
            w->limit_logged_at = now;
            log_event("warn", "worker %d is at its limit of %u client connections (from the open-file "
                      "limit); new connections wait in the listen backlog", w->id, w->connections);
        }
    }
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    struct client_watch *c = ci ? client_slot(w, ci->connect_fd) : NULL;
    if (!c)
        return;                 /* watched when a request parks, then */
    *c = (struct client_watch){ 0 };
    if (code == MHD_CONNECTION_NOTIFY_STARTED)
        client_arm(w, c, ci->connect_fd);
}

int worker_watch_client(struct worker *w, struct exchange *ex, int fd)
{
    struct client_watch *c = client_slot(w, fd);
    if (!c || (!c->armed && client_arm(w, c, fd) < 0))
        return -1;
    if (c->hung_up)
        return 1;
    c->ex = ex;
    return 0;
}

void worker_unwatch_client(struct worker *w, struct exchange *ex)
{
    if (ex->client_fd >= 0 && ex->client_fd < w->n_clients && w->clients[ex->client_fd].ex == ex)
        w->clients[ex->client_fd].ex = NULL;
    ex->client_fd = -1;
}

static void client_event(struct worker *w, int fd)
{
    if (fd < 0 || fd >= w->n_clients)
        return;
    struct client_watch *c = &w->clients[fd];
    c->hung_up = 1;
    if (c->ex)
        request_client_hung_up(c->ex);
}

int worker_add_transfer(struct worker *w, CURL *easy)
{
    return curl_multi_add_handle(w->multi, easy) == CURLM_OK ? 0 : -1;
}

void worker_remove_transfer(struct worker *w, CURL *easy)
{
    curl_multi_remove_handle(w->multi, easy);
}

/* Easy handles are reused: curl_easy_init() callocs several kilobytes, and
 * a handle that keeps its standing options for the same backend spares the
 * reset and the twenty options that follow it (a fifth of curl's work per
 * request, counted with callgrind). A handle for another backend is taken
 * and reset only when none matches. */
CURL *worker_easy_get(struct worker *w, struct easy_tag want, int *standing)
{
    *standing = 0;
    for (int i = w->n_spare - 1; i >= 0; i--) {
        struct spare_easy *s = &w->spare[i];
        if (s->tag.serial == want.serial && s->tag.backend == want.backend && s->tag.path == want.path) {
            CURL *e = s->easy;
            *s = w->spare[--w->n_spare];
            *standing = 1;
            return e;
        }
    }
    CURL *e;
    if (w->n_spare == 0) {
        e = curl_easy_init();
    } else {
        e = w->spare[--w->n_spare].easy;
        curl_easy_reset(e);
    }
    if (e) {
        curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, curl_open_socket);
        curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, w);
        curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, curl_close_socket);
        curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, w);
    }
    return e;
}

void worker_easy_put(struct worker *w, CURL *easy, struct easy_tag tag)
{
    if (w->n_spare < (int)(sizeof w->spare / sizeof w->spare[0]))
        w->spare[w->n_spare++] = (struct spare_easy){ easy, tag };
    else
        curl_easy_cleanup(easy);
}

static void drain_curl_messages(struct worker *w)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(w->multi, &left)))
        if (msg->msg == CURLMSG_DONE)
            proxy_transfer_done(w, msg->easy_handle, msg->data.result);
}

/* ---- deadlines of our own (first byte, idle) ---- */

static struct ex_link *link_at(struct exchange *ex, size_t off)
{
    return (struct ex_link *)((char *)ex + off);
}

void ex_list_add(struct exchange **head, struct exchange *ex, size_t off)
{
    struct ex_link *l = link_at(ex, off);
    if (l->linked)
        return;
    l->prev = NULL;
    l->next = *head;
    if (*head)
        link_at(*head, off)->prev = ex;
    *head = ex;
    l->linked = 1;
}

void ex_list_remove(struct exchange **head, struct exchange *ex, size_t off)
{
    struct ex_link *l = link_at(ex, off);
    if (!l->linked)
        return;
    if (l->prev)
        link_at(l->prev, off)->next = l->next;
    else
        *head = l->next;
    if (l->next)
        link_at(l->next, off)->prev = l->prev;
    l->prev = l->next = NULL;
    l->linked = 0;
}

void worker_track(struct worker *w, struct exchange *ex)
{
    ex_list_add(&w->active, ex, offsetof(struct exchange, active));
}

void worker_untrack(struct worker *w, struct exchange *ex)
{
    ex_list_remove(&w->active, ex, offsetof(struct exchange, active));
}

void worker_note_deadline(struct worker *w, uint64_t deadline_ms)
{
    if (deadline_ms && (!w->next_deadline || deadline_ms < w->next_deadline))
        w->next_deadline = deadline_ms;
}

/* ---- the loop ---- */

static int loop_timeout(struct worker *w, uint64_t now)
{
    if (w->mhd_due)
        return 0;
    long t = -1;
    if (w->curl_timeout_ms >= 0) {
        uint64_t due = w->curl_timer_set_at + (uint64_t)w->curl_timeout_ms;
        t = due > now ? (long)(due - now) : 0;
    }
    MHD_UNSIGNED_LONG_LONG mt;
    if (MHD_get_timeout(w->mhd, &mt) == MHD_YES && (t < 0 || (long)mt < t))
        t = (long)mt;
    if (w->next_deadline) {
        long d = w->next_deadline > now ? (long)(w->next_deadline - now) : 0;
        if (t < 0 || d < t)
            t = d;
    }
    if (w->draining && (t < 0 || t > 50))
        t = 50;
    return t > 1000 ? 1000 : (int)t;
}

/* Waits for events. With busy_poll_us, a worker that has just had some
 * polls without sleeping for that long first, yielding its vCPU to any
 * other runnable task between polls: on a virtual machine, waking a halted
 * vCPU can cost more than the whole proxying (docs/benchmarks.md), and the
 * upstream's answer, or the client's next request, is usually that close. */
static int wait_events(struct worker *w, struct epoll_event *events)
{
    int timeout = loop_timeout(w, now_ms());
    long spin = atomic_load_explicit(&busy_poll_us, memory_order_relaxed);
    if (spin <= 0 || timeout == 0)
        return epoll_wait(w->epfd, events, MAX_EVENTS, timeout);
    uint64_t now = now_us(), idle_from = w->last_event_us + (uint64_t)spin, until = idle_from;
    if (timeout > 0 && now + (uint64_t)timeout * 1000 < until)
        until = now + (uint64_t)timeout * 1000;
    int n = 0;
    while (now < until && (n = epoll_wait(w->epfd, events, MAX_EVENTS, 0)) == 0) {
        sched_yield();
        now = now_us();
    }
    if (n == 0 && now >= idle_from)
        n = epoll_wait(w->epfd, events, MAX_EVENTS, loop_timeout(w, now / 1000));
    if (n > 0)
        w->last_event_us = now_us();
    return n;
}

static void begin_drain(struct worker *w)
{
    if (w->draining)
        return;
    w->draining = 1;
    MHD_socket fd = MHD_quiesce_daemon(w->mhd);
    if (fd != MHD_INVALID_SOCKET)
        close(fd);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct epoll_event events[MAX_EVENTS];
    int running;

    for (;;) {
        if (w->log.len)
            log_flush(&w->log);
        int n = wait_events(w, events);
        if (n < 0 && errno != EINTR)
            break;
        for (int i = 0; i < n; i++) {
            if (events[i].data.u64 & CLIENT_WATCH) {
                client_event(w, (int)(events[i].data.u64 & 0x7fffffff));
                continue;
            }
            int fd = events[i].data.fd;
            if (fd == w->mhd_epfd) {
                w->mhd_due = 1; /* MHD_run below */
                continue;
            }
            if (fd == w->wakefd) {
                uint64_t v;
                if (read(w->wakefd, &v, sizeof v) < 0 && errno != EAGAIN)
                    log_event("warn", "worker %d: wake read failed", w->id);
                begin_drain(w);
                continue;
            }
            if (fd >= 0 && fd < w->n_curl_fd && (w->curl_fd_events[fd] & CURL_FD_PARKED)) {
                epoll_ctl(w->epfd, EPOLL_CTL_DEL, fd, NULL);  /* a pooled connection closed */
                w->curl_fd_events[fd] = CURL_FD_OWNED;
                continue;
            }
            int flags = 0;
            if (events[i].events & EPOLLIN)
                flags |= CURL_CSELECT_IN;
            if (events[i].events & EPOLLOUT)
                flags |= CURL_CSELECT_OUT;
            if (events[i].events & (EPOLLERR | EPOLLHUP))
                flags |= CURL_CSELECT_ERR;
            curl_multi_socket_action(w->multi, fd, flags, &running);
        }
        uint64_t now = now_ms();
        /* Work that makes more work (a new transfer asks for an immediate
         * curl timeout; a finished one resumes a connection) is done in the
         * same turn rather than after another trip through epoll_wait. */
        for (int turn = 0; turn < 4; turn++) {
            if (w->curl_timeout_ms >= 0 &&
                (w->curl_timeout_ms == 0 || now >= w->curl_timer_set_at + (uint64_t)w->curl_timeout_ms)) {
                w->curl_timeout_ms = -1;
                curl_multi_socket_action(w->multi, CURL_SOCKET_TIMEOUT, 0, &running);
            }
            drain_curl_messages(w);
            if (w->next_deadline && now >= w->next_deadline)
                proxy_check_deadlines(w, now);
            proxy_unpause_ready(w);
            drain_curl_messages(w);
            /* MHD_run costs an epoll_wait of its own: only when MHD has a
             * ready socket, a resumed connection or a timeout due. */
            MHD_UNSIGNED_LONG_LONG mt;
            if (w->mhd_due || w->draining || (MHD_get_timeout(w->mhd, &mt) == MHD_YES && mt == 0)) {
                w->mhd_due = 0;
                MHD_run(w->mhd);
            }
            /* MHD keeps a connection it has just served on its ready list
             * (it reads for the next request, re-arms the socket): that is
             * a zero timeout, taken here rather than via epoll_wait(0). */
            if (w->curl_timeout_ms != 0 && !w->mhd_due &&
                !(MHD_get_timeout(w->mhd, &mt) == MHD_YES && mt == 0))
                break;
        }

        if (w->reading && (w->draining || now >= w->next_reap)) {
            request_reap_half_closed(w);
            w->next_reap = now + 1000;
            if (w->mhd_due) {
                w->mhd_due = 0;
                MHD_run(w->mhd);
            }
        }
        if (w->draining) {
            if (request_in_flight(w) == 0 || now >= w->drain_deadline)
                break;
        }
    }
    if (request_in_flight(w) > 0) {
        log_event("warn", "worker %d: drain timeout, %d requests cut", w->id, request_in_flight(w));
        proxy_cancel_all(w);
        /* Their answers (a 503, a stream's error event) go out before MHD
         * stops, within a second: resumed connections are written only
         * inside MHD_run, and MHD_stop_daemon would just close them. */
        uint64_t until = now_ms() + 1000;
        while (request_in_flight(w) > 0 && now_ms() < until) {
            MHD_run(w->mhd);
            if (request_in_flight(w) > 0)
                epoll_wait(w->epfd, events, MAX_EVENTS, 10);
        }
    }
    log_flush(&w->log);
    json_scratch_thread_end();
    return NULL;
}

/* ---- start and stop ---- */

/* Each client connection may hold an upstream socket, and a worker keeps
 * up to as many idle ones for reuse: three descriptors per connection, after
 * a reserve for listeners, epoll sets, probes, logs and config reads. At its
 * limit MHD leaves new connections in the listen backlog, as HAProxy's
 * maxconn does, where past the open-file limit accept() would fail. */
#define FD_RESERVE 64
#define MAX_CONNECTIONS 60000u

static unsigned connection_limit(int n)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
        return MAX_CONNECTIONS;
    rlim_t per = rl.rlim_cur > FD_RESERVE ? (rl.rlim_cur - FD_RESERVE) / (rlim_t)n / 3 : 1;
    return per < 1 ? 1 : per > MAX_CONNECTIONS ? MAX_CONNECTIONS : (unsigned)per;
}

static int worker_init(struct worker *w, const struct config *cfg, int port, unsigned limit)
{
    struct sockaddr_storage ss;
    int v6;
    if (config_listen_address(cfg->listen_host, port, &ss, &v6) < 0) {
        log_event("error", "listen: '%s' is not a numeric address", cfg->listen_host);
        return -1;
    }
    unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_TURBO;
    if (v6)
        flags |= MHD_USE_IPv6;
    w->mhd = MHD_start_daemon(flags, 0, NULL, NULL, request_handler, w,
                              MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
                              MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned)1,
                              MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)4096,
                              MHD_OPTION_CONNECTION_LIMIT, limit,
                              MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120,
                              MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(16 * 1024),
                              MHD_OPTION_NOTIFY_COMPLETED, request_completed, w,
                              MHD_OPTION_NOTIFY_CONNECTION, connection_notify, w,
                              MHD_OPTION_END);
    if (!w->mhd) {
        log_event("error", "cannot listen on %s:%d: %s", cfg->listen_host, port, strerror(errno));
        return -1;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(w->mhd, MHD_DAEMON_INFO_EPOLL_FD);
    w->mhd_epfd = info ? info->epoll_fd : -1;
    w->epfd = epoll_create1(EPOLL_CLOEXEC);
    w->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    w->multi = curl_multi_init();
    if (w->mhd_epfd < 0 || w->epfd < 0 || w->wakefd < 0 || !w->multi)
        return -1;
    struct epoll_event ev = { .events = EPOLLIN };
    ev.data.fd = w->mhd_epfd;
    epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->mhd_epfd, &ev);
    ev.data.fd = w->wakefd;
    epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->wakefd, &ev);
    w->curl_timeout_ms = -1;
    curl_multi_setopt(w->multi, CURLMOPT_SOCKETFUNCTION, curl_socket_cb);
    curl_multi_setopt(w->multi, CURLMOPT_SOCKETDATA, w);
    curl_multi_setopt(w->multi, CURLMOPT_TIMERFUNCTION, curl_timer_cb);
    curl_multi_setopt(w->multi, CURLMOPT_TIMERDATA, w);
    curl_multi_setopt(w->multi, CURLMOPT_MAX_HOST_CONNECTIONS, 0L);
    curl_multi_setopt(w->multi, CURLMOPT_MAXCONNECTS, (long)(limit < 1024 ? limit : 1024));
    w->connection_limit = limit;
    return 0;
}

static void worker_fini(struct worker *w)
{
    if (w->mhd)
        MHD_stop_daemon(w->mhd);
    while (w->n_spare > 0)
        curl_easy_cleanup(w->spare[--w->n_spare].easy);
    exchange_pool_free(w);
    log_flush(&w->log);         /* lines of connections MHD_stop_daemon ended */
    buf_free(&w->log);
    if (w->multi)
        curl_multi_cleanup(w->multi);
    free(w->curl_fd_events);
    free(w->clients);
    if (w->epfd >= 0)
        close(w->epfd);
    if (w->wakefd >= 0)
        close(w->wakefd);
}

int server_start(struct config *cfg)
{
    server_set_config(config_ref(cfg));
    n_workers = cfg->workers > 0 ? cfg->workers : 1;
    workers = calloc((size_t)n_workers, sizeof(*workers));
    if (!workers)
        return -1;
    int port = cfg->listen_port;
    unsigned limit = connection_limit(n_workers);
    if (limit < 1024)
        log_event("warn", "the open-file limit allows %u client connections per worker, %u in all; "
                  "raise it (LimitNOFILE=) for more", limit, limit * (unsigned)n_workers);
    for (int i = 0; i < n_workers; i++) {
        struct worker *w = &workers[i];
        w->id = i;
        w->epfd = w->wakefd = -1;
        if (worker_init(w, cfg, port, limit) < 0)
            goto fail;
        if (port == 0) {
            const union MHD_DaemonInfo *info = MHD_get_daemon_info(w->mhd, MHD_DAEMON_INFO_BIND_PORT);
            port = info ? info->port : 0;
        }
    }
    for (int i = 0; i < n_workers; i++) {
        if (pthread_create(&workers[i].thread, NULL, worker_main, &workers[i]) != 0) {
            log_event("error", "cannot start worker thread");
            goto fail;
        }
    }
    log_event("info", "listening on %s:%d with %d workers", cfg->listen_host, port, n_workers);
    return 0;
fail:
    for (int i = 0; i < n_workers; i++)
        worker_fini(&workers[i]);
    free(workers);
    workers = NULL;
    return -1;
}

void server_drain_and_stop(long timeout_ms)
{
    uint64_t deadline = now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
    for (int i = 0; i < n_workers; i++) {
        uint64_t one = 1;
        workers[i].drain_deadline = deadline;
        if (write(workers[i].wakefd, &one, sizeof one) < 0)
            log_event("warn", "cannot wake worker %d", i);
    }
    for (int i = 0; i < n_workers; i++)
        pthread_join(workers[i].thread, NULL);
    for (int i = 0; i < n_workers; i++)
        worker_fini(&workers[i]);
    free(workers);
    workers = NULL;
    n_workers = 0;
    server_set_config(NULL);
}
