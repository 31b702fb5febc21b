/* upstream.h — helpers of the upstream layer that are pure functions:
 * the body sent to a backend and the reading of an upstream's answer. */
#ifndef AIRLOCK_UPSTREAM_H
#define AIRLOCK_UPSTREAM_H

#include <stddef.h>
#include "airlock/util.h"

/* Appends to `out` the raw JSON object with every top-level "model" value
 * replaced by `model` (added if absent). Returns 0, or -1 when the body is
 * not a plain object this scanner can splice safely; the caller then falls
 * back to re-serializing the parsed tree. */
int body_with_model(struct buf *out, const char *raw, size_t len, const char *model);

/* Does an upstream error body say the prompt was too long for the model?
 * Knows OpenAI's code and the phrasings of llama.cpp, vLLM, Ollama and others. */
int is_context_length_error(long status, const char *body, size_t len);

#endif
