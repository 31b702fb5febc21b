/* upstream.h — helpers of the upstream layer that keep no state: the body
 * and key header sent to a backend, and the reading of an upstream's answer. */
#ifndef AIRLOCK_UPSTREAM_H
#define AIRLOCK_UPSTREAM_H

#include <stddef.h>
#include <curl/curl.h>
#include "airlock/config.h"
#include "airlock/util.h"

/* Appends to `out` the raw JSON object with every top-level "model" value
 * replaced by `model` (added if absent). Returns 0, or -1 when the body is
 * not a plain object this scanner can splice safely; the caller then falls
 * back to re-serializing the parsed tree. */
/* Appends the backend's key header (Authorization: Bearer, or api-key for
 * Azure) to h when it has a key; the secret's scratch copy is wiped. */
struct curl_slist *upstream_add_auth(struct curl_slist *h, const struct backend *b);

/* What every request to one backend shares, built once per config load so
 * that a request sets only its own options: each endpoint's URL, parsed
 * (CURLOPT_CURLU), and the header list but for the request id (type,
 * accept, the key), for a stream and for a plain answer. Read-only once
 * built, so every worker uses it at once; owned by the backend. */
enum { UPSTREAM_CHAT, UPSTREAM_EMBEDDINGS, UPSTREAM_N_PATHS };
struct upstream_template {
    CURLU *url[UPSTREAM_N_PATHS];
    struct curl_slist *headers[2];      /* [stream] */
};
/* NULL when out of memory (the URL was validated by the loader). */
struct upstream_template *upstream_template_build(const struct backend *b);
void upstream_template_free(struct upstream_template *t);

int body_with_model(struct buf *out, const char *raw, size_t len, const char *model);

/* Top-level keys json_check() reports, the ones a verdict needs. */
enum { JSON_KEY_ERROR = 1, JSON_KEY_CHOICES = 2, JSON_KEY_DATA = 4 };
#define JSON_CHECK_DEPTH 1000

/* Is s[0..n) exactly one JSON value (RFC 8259 grammar, whitespace around it
 * allowed, nesting at most JSON_CHECK_DEPTH)? No tree is built and nothing
 * is allocated. When it is an object, *keys gets the JSON_KEY_* bits of its
 * top-level keys (written unescaped): "error" when its value is not null,
 * "choices" and "data" when they are non-empty arrays. Returns 0 when
 * valid, else -1. */
int json_check(const char *s, size_t n, unsigned *keys);

/* Does an upstream error body say the prompt was too long for the model?
 * Knows OpenAI's code and the phrasings of llama.cpp, vLLM, Ollama and others. */
int is_context_length_error(long status, const char *body, size_t len);

#endif
