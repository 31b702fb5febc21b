/* test_log.c — the log writer: a stderr that stops taking lines never
 * blocks the thread logging; lines past the bound are dropped and counted,
 * the count is logged, and nothing else is lost or reordered. */
#include "t.h"
#include "airlock/util.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#define LINES 400

static void *stop_writer(void *done)
{
    log_stop(10000);
    *(volatile int *)done = 1;
    return NULL;
}

/* Reads what the pipe gets until the writer has stopped and the pipe is empty. */
static char *drain(int fd, volatile int *done, size_t *len)
{
    size_t cap = 1 << 20, n = 0;
    char *out = malloc(cap);
    fcntl(fd, F_SETFL, O_NONBLOCK);
    for (;;) {
        ssize_t k = out && n < cap - 1 ? read(fd, out + n, cap - 1 - n) : -1;
        if (k > 0) {
            n += (size_t)k;
            continue;
        }
        if (*done) {
            k = out && n < cap - 1 ? read(fd, out + n, cap - 1 - n) : 0;
            if (k > 0) {
                n += (size_t)k;
                continue;
            }
            break;
        }
        usleep(1000);
    }
    if (out)
        out[n] = '\0';
    *len = n;
    return out;
}

static void test_stalled_stderr_drops_and_counts(void)
{
    int p[2];
    CHECK(pipe(p) == 0);
    fcntl(p[1], F_SETPIPE_SZ, 4096);    /* the smallest pipe: full after a few dozen lines */
    int saved = dup(STDERR_FILENO);
    dup2(p[1], STDERR_FILENO);

    CHECK(log_start(8192) == 0);
    /* Nobody reads the pipe: were a write made here, this loop would block. */
    for (int i = 0; i < LINES; i++)
        log_event("info", "line %04d of the stalled-stderr test", i);
    volatile int done = 0;
    pthread_t t;
    pthread_create(&t, NULL, stop_writer, (void *)&done);
    size_t len = 0;
    char *out = drain(p[0], &done, &len);
    pthread_join(t, NULL);

    dup2(saved, STDERR_FILENO);
    close(saved);
    close(p[0]);
    close(p[1]);

    int got = 0, last = -1, ordered = 1;
    unsigned long dropped = 0;
    for (char *line = out; line && *line;) {
        char *nl = strchr(line, '\n');
        CHECK(nl != NULL);      /* whole lines only */
        if (!nl)
            break;
        *nl = '\0';
        const char *m = strstr(line, "\"msg\":\"line ");
        const char *d = strstr(line, "log lines dropped");
        if (m) {
            int i = atoi(m + 12);
            ordered &= i > last;
            last = i;
            got++;
        } else if (d) {
            const char *q = strstr(line, "\"msg\":\"");
            dropped += q ? strtoul(q + 7, NULL, 10) : 0;
        }
        line = nl + 1;
    }
    CHECK(got > 0);
    CHECK(dropped > 0);
    CHECK(ordered);
    CHECK((unsigned long)got + dropped == LINES);
    free(out);
}

static void test_without_writer_lines_are_written_at_once(void)
{
    int p[2];
    CHECK(pipe(p) == 0);
    int saved = dup(STDERR_FILENO);
    dup2(p[1], STDERR_FILENO);
    log_event("info", "direct");
    dup2(saved, STDERR_FILENO);
    close(saved);
    char b[256] = { 0 };
    fcntl(p[0], F_SETFL, O_NONBLOCK);
    ssize_t k = read(p[0], b, sizeof b - 1);
    CHECK(k > 0 && strstr(b, "\"msg\":\"direct\"}\n") != NULL);
    close(p[0]);
    close(p[1]);
}

int main(void)
{
    alarm(30);                  /* a write that blocks ends the test, not the suite */
    RUN(test_without_writer_lines_are_written_at_once);
    RUN(test_stalled_stderr_drops_and_counts);
    RUN(test_without_writer_lines_are_written_at_once);     /* and again once stopped */
    TEST_DONE();
}
