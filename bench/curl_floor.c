/* curl_floor.c — what one upstream request costs through libcurl's multi
 * interface, set up as upstream/attempt.c sets it up, next to the same bytes
 * written and read on a plain keep-alive socket. One connection, one request
 * at a time, against the bench's upstream: the floor under airlock's added
 * latency that no change to airlock's own code can lower.
 *
 *   curl_floor PORT N     prints one JSON object: microseconds per request
 *                         (in all; until the send returned; waiting; reading)
 *                         and user/system CPU per request, for "raw" and for
 *                         "curl". When the answer is back before curl's poll
 *                         after the send, curl reads it at once: compare the
 *                         totals, not the parts.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define WARMUP 200

static const char chat_body[] =
    "{\"model\":\"bench-model\",\"messages\":[{\"role\":\"system\",\"content\":\"You are a "
    "helpful assistant.\"},{\"role\":\"user\",\"content\":\"Say hello in one short "
    "sentence.\"}],\"max_tokens\":32}";

struct cost {
    double send_us, wait_us, read_us, user_us, sys_us;
};

static uint64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static double cpu_us(const struct timeval *tv)
{
    return (double)tv->tv_sec * 1e6 + (double)tv->tv_usec;
}

/* Runs fn n times after a warm-up; CPU from getrusage around the timed part. */
static void timed(int n, void (*fn)(void *, uint64_t *), void *arg, struct cost *c)
{
    uint64_t ns[3] = { 0 }, skip[3];
    for (int i = 0; i < WARMUP; i++)
        fn(arg, skip);
    struct rusage r0, r1;
    getrusage(RUSAGE_SELF, &r0);
    for (int i = 0; i < n; i++)
        fn(arg, ns);
    getrusage(RUSAGE_SELF, &r1);
    c->send_us = (double)ns[0] / 1e3 / n;
    c->wait_us = (double)ns[1] / 1e3 / n;
    c->read_us = (double)ns[2] / 1e3 / n;
    c->user_us = (cpu_us(&r1.ru_utime) - cpu_us(&r0.ru_utime)) / n;
    c->sys_us = (cpu_us(&r1.ru_stime) - cpu_us(&r0.ru_stime)) / n;
}

/* ---- a plain socket: send, block in recv, the whole answer in one read ---- */

struct raw {
    int fd;
    char req[1024];
    int req_len;
};

static void raw_one(void *arg, uint64_t *ns)
{
    struct raw *r = arg;
    char buf[8192];
    uint64_t t0 = now_ns();
    if (send(r->fd, r->req, (size_t)r->req_len, MSG_NOSIGNAL) != r->req_len)
        exit(1);
    uint64_t t1 = now_ns();
    if (recv(r->fd, buf, sizeof buf, 0) <= 0)
        exit(1);
    ns[0] += t1 - t0;
    ns[1] += now_ns() - t1;     /* the wait and the read are one call here */
}

/* ---- libcurl multi, driven by epoll the way a worker drives it ---- */

struct multi {
    CURLM *multi;
    CURL *easy;
    int epfd;
    char url[128];
    CURLU *parsed_url;
    struct curl_slist *headers;     /* the backend's constant list */
};

static size_t discard(char *d, size_t size, size_t n, void *u)
{
    (void)d, (void)u;
    return size * n;
}

static size_t ignore_header(char *d, size_t size, size_t n, void *u)
{
    (void)d, (void)u;
    return size * n;
}

/* attempt.c's standing options, set once per handle and backend. */
static void standing_options(struct multi *m)
{
    CURL *e = m->easy;
    m->parsed_url = curl_url();
    curl_url_set(m->parsed_url, CURLUPART_URL, m->url, 0);
    m->headers = curl_slist_append(NULL, "Content-Type: application/json");
    m->headers = curl_slist_append(m->headers, "Expect:");
    m->headers = curl_slist_append(m->headers, "Accept: application/json");
    curl_easy_setopt(e, CURLOPT_CURLU, m->parsed_url);
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 2000L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 60000L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, ignore_header);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_PROXY, "");
}

static int on_socket(CURL *e, curl_socket_t s, int what, void *userp, void *socketp)
{
    (void)e, (void)socketp;
    struct multi *m = userp;
    struct epoll_event ev = { .data.fd = s };
    if (what == CURL_POLL_REMOVE) {
        epoll_ctl(m->epfd, EPOLL_CTL_DEL, s, NULL);
        return 0;
    }
    ev.events = (what & CURL_POLL_IN ? EPOLLIN : 0) | (what & CURL_POLL_OUT ? EPOLLOUT : 0);
    if (epoll_ctl(m->epfd, EPOLL_CTL_MOD, s, &ev) < 0)
        epoll_ctl(m->epfd, EPOLL_CTL_ADD, s, &ev);
    return 0;
}


static void curl_one(void *arg, uint64_t *ns)
{
    struct multi *m = arg;
    CURL *e = m->easy;
    int running;
    uint64_t t0 = now_ns();
    /* What attempt_begin() sets per request on a handle that keeps its
     * standing options (set once in main, as attempt.c's
     * set_standing_options() does): the request id in front of the
     * backend's constant header list, and the body. */
    struct curl_slist rid = { "x-request-id: 0123456789abcdef0123456789abcdef", m->headers };
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, &rid);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, chat_body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(chat_body));
    curl_easy_setopt(e, CURLOPT_WRITEDATA, m);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, m);
    curl_easy_setopt(e, CURLOPT_PRIVATE, m);
    curl_multi_add_handle(m->multi, e);
    curl_multi_socket_action(m->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    ns[0] += now_ns() - t0;     /* set-up, the pooled connection's check, the send */
    while (running) {
        struct epoll_event ev[4];
        uint64_t t1 = now_ns();
        int n = epoll_wait(m->epfd, ev, 4, 1000);
        uint64_t t2 = now_ns();
        ns[1] += t2 - t1;
        for (int k = 0; k < n; k++) {
            int flags = (ev[k].events & EPOLLIN ? CURL_CSELECT_IN : 0) |
                        (ev[k].events & EPOLLOUT ? CURL_CSELECT_OUT : 0);
            curl_multi_socket_action(m->multi, ev[k].data.fd, flags, &running);
        }
        if (n == 0)
            curl_multi_socket_action(m->multi, CURL_SOCKET_TIMEOUT, 0, &running);
        ns[2] += now_ns() - t2;
    }
    int left;
    CURLMsg *msg;
    while ((msg = curl_multi_info_read(m->multi, &left)))
        if (msg->msg == CURLMSG_DONE && msg->data.result != CURLE_OK)
            exit(1);
    curl_multi_remove_handle(m->multi, e);
}

static void print_cost(const char *name, const struct cost *c, const char *sep)
{
    printf("\"%s\":{\"total_us\":%.1f,\"send_us\":%.1f,\"wait_us\":%.1f,\"read_us\":%.1f,"
           "\"user_us\":%.1f,\"sys_us\":%.1f}%s", name, c->send_us + c->wait_us + c->read_us,
           c->send_us, c->wait_us, c->read_us, c->user_us, c->sys_us, sep);
}

int main(int argc, char **argv)
{
    if (argc != 3 || atoi(argv[1]) <= 0 || atoi(argv[2]) <= 0) {
        fprintf(stderr, "usage: curl_floor PORT N\n");
        return 2;
    }
    int port = atoi(argv[1]), n = atoi(argv[2]);

    struct raw r;
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    r.fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    if (r.fd < 0 || connect(r.fd, (struct sockaddr *)&a, sizeof a) < 0) {
        perror("curl_floor: connect");
        return 1;
    }
    setsockopt(r.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    r.req_len = snprintf(r.req, sizeof r.req,
                         "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                         "Content-Type: application/json\r\nAccept: application/json\r\n"
                         "Content-Length: %zu\r\n\r\n%s", port, strlen(chat_body), chat_body);

    struct multi m = { 0 };
    curl_global_init(CURL_GLOBAL_ALL);
    m.multi = curl_multi_init();
    m.easy = curl_easy_init();
    m.epfd = epoll_create1(EPOLL_CLOEXEC);
    snprintf(m.url, sizeof m.url, "http://127.0.0.1:%d/v1/chat/completions", port);
    standing_options(&m);
    curl_multi_setopt(m.multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(m.multi, CURLMOPT_SOCKETDATA, &m);

    struct cost raw, crl;
    timed(n, raw_one, &r, &raw);
    timed(n, curl_one, &m, &crl);
    printf("{\"n\":%d,", n);
    print_cost("raw", &raw, ",");
    print_cost("curl", &crl, "}\n");

    close(r.fd);
    curl_easy_cleanup(m.easy);
    curl_url_cleanup(m.parsed_url);
    curl_slist_free_all(m.headers);
    curl_multi_cleanup(m.multi);
    close(m.epfd);
    curl_global_cleanup();
    return 0;
}
