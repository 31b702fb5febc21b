/* usage.h — what one answer cost: its token figures as the upstream
 * reported them (OpenAI's `usage`, with vLLM's, llama.cpp's `timings` and
 * Ollama's variants) or estimated when it reported none, and their price in
 * exact integers of pico-USD. Pure functions, no state. */
#ifndef AIRLOCK_USAGE_H
#define AIRLOCK_USAGE_H

#include <stddef.h>
#include <stdint.h>
#include "airlock/config.h"
#include "airlock/util.h"

struct cJSON;

struct usage {
    int64_t prompt;             /* every prompt token, cached ones included */
    int64_t completion;         /* reasoning tokens included, as OpenAI counts them */
    int64_t cached;             /* prompt tokens read from the upstream's cache */
    int64_t reasoning;
    int reported;               /* the upstream gave figures */
    int estimated;              /* some figure is airlock's estimate */
};

/* Reads `usage` (an object: prompt_tokens, completion_tokens,
 * prompt_tokens_details.cached_tokens, completion_tokens_details.reasoning_tokens)
 * or, without one, llama.cpp's `timings` (prompt_n, predicted_n, cache_n).
 * Either may be NULL. Returns 1 and fills *u when figures were found, else 0. */
int usage_from_json(const struct cJSON *usage, const struct cJSON *timings, struct usage *u);
/* The same from a whole non-streamed answer s[0..n) (already checked to be
 * JSON): only its top-level "usage" and "timings" values are parsed. */
int usage_from_body(const char *s, size_t n, struct usage *u);
/* Estimated completion quarter-tokens of a non-streamed answer's
 * choices[].message content, reasoning and tool call arguments. */
long usage_body_quarters(const char *s, size_t n);
/* Quarter-tokens of UTF-8 text: ASCII a quarter token a byte, a 2-byte
 * letter half a token, a CJK character or an emoji one token. */
long usage_text_quarters(const char *s);

/* Price of `u` on `b` in pico-USD (1e-12 USD): uncached prompt tokens at
 * the input price, cached ones at cached_input_per_mtok, completion at the
 * output price. Saturates at INT64_MAX. */
int64_t usage_cost_ppt(const struct backend *b, const struct usage *u);
/* "0.000123" style: pico-USD as USD with 6 to 12 decimals. */
void usage_format_usd(char *out, size_t n, int64_t ppt);

#endif
