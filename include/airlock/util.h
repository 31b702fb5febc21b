/* util.h — small helpers every directory uses: a growable byte buffer,
 * monotonic milliseconds, and bounded string copies. */
#ifndef AIRLOCK_UTIL_H
#define AIRLOCK_UTIL_H

#include <stddef.h>
#include <stdint.h>

struct buf {
    char *data;
    size_t len, cap;
};

/* Appends n bytes; returns 0, or -1 when out of memory (buf unchanged). */
int buf_append(struct buf *b, const void *p, size_t n);
/* Appends a NUL-terminated string. */
int buf_puts(struct buf *b, const char *s);
int buf_appendf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* v in decimal, written to end just before `end` (which gets the NUL):
 * returns where the digits start; the room before `end` must hold
 * U64_DIGITS. Cheaper than snprintf on the request path. */
#define U64_DIGITS 20
char *u64_decimal(char *end, uint64_t v);
/* Appends v in decimal. */
int buf_append_u64(struct buf *b, uint64_t v);
/* Appends s as a JSON string literal, quotes included. */
int buf_append_json_string(struct buf *b, const char *s);
/* Drops the first n bytes. */
void buf_consume(struct buf *b, size_t n);
void buf_free(struct buf *b);

uint64_t now_ms(void);
uint64_t now_us(void);

/* One JSON line on stderr: {"ts","level","msg"}. Never pass prompt text,
 * keys or matched text in fmt's arguments. */
void log_event(const char *level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Hands whole lines to the log writer and empties `lines`; without a
 * running writer, writes them at once. */
void log_flush(struct buf *lines);
/* The writer thread (obs/log.c): a stderr that stops taking lines never
 * blocks the caller; up to pending_max bytes wait, lines past that are
 * dropped and counted. log_stop writes what waits, for up to wait_ms
 * (-1: stuck in a write; the thread is left to exit with the process). */
#define LOG_PENDING_MAX ((size_t)4 << 20)
int log_start(size_t pending_max);
int log_stop(long wait_ms);

/* 1 when s[0..n) is well-formed UTF-8 (no overlongs, surrogates or values
 * past U+10FFFF): JSON must be, and the classifier must see what the
 * backend will. */
int utf8_valid(const unsigned char *s, size_t n);

/* The index of the first '"', '\\' or control byte (below 0x20) in
 * s[i..n), or n: the plain run of a JSON string, eight bytes at a time. */
size_t json_plain_run(const char *s, size_t i, size_t n);
/* s[i] is '"': the index after the string's closing quote, or 0 when it has
 * none. Escapes are stepped over, not checked; *escaped is set to 1 when
 * the string held one. */
size_t json_skip_string(const char *s, size_t i, size_t n, int *escaped);

/* JSON that is parsed, looked at and dropped at once (each stream event, a
 * non-streamed answer) goes into a per-thread scratch arena instead of a
 * malloc per node. json_scratch_init() installs the cJSON hooks, once,
 * before any thread starts; json_parse_scratch() is cJSON_ParseWithLength
 * (with the arena when it is free); json_scratch_free() ends the tree. */
struct cJSON;
void json_scratch_init(void);
struct cJSON *json_parse_scratch(const char *s, size_t n);
/* The same for a whole document: s[n] must be a NUL, and only white space
 * may follow the value; *end says where parsing stopped. */
struct cJSON *json_parse_scratch_whole(const char *s, size_t n, const char **end);
void json_scratch_free(struct cJSON *tree);
/* Frees this thread's arena (a worker, as it ends). */
void json_scratch_thread_end(void);

#endif
