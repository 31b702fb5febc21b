/* usage.c — token figures from an upstream's answer in any of the shapes
 * OpenAI-compatible servers use, a cheap estimate when there are none, and
 * their price in exact integer pico-USD. */
#include <stdio.h>
#include <string.h>
#include <cjson/cJSON.h>

#include "airlock/upstream.h"
#include "airlock/usage.h"

static int64_t number(const cJSON *o, const char *key, int *found)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0))
        return 0;
    *found = 1;
    return v->valuedouble > 1e15 ? (int64_t)1e15 : (int64_t)v->valuedouble;
}

int usage_from_json(const cJSON *usage, const cJSON *timings, struct usage *u)
{
    int found = 0;
    if (cJSON_IsObject(usage)) {
        int64_t p = number(usage, "prompt_tokens", &found);
        int64_t c = number(usage, "completion_tokens", &found);
        if (found) {
            int ignored = 0;
            u->prompt = p;
            u->completion = c;
            u->cached = number(cJSON_GetObjectItemCaseSensitive(usage, "prompt_tokens_details"),
                               "cached_tokens", &ignored);
            u->reasoning = number(cJSON_GetObjectItemCaseSensitive(usage, "completion_tokens_details"),
                                  "reasoning_tokens", &ignored);
            if (u->cached > u->prompt)
                u->cached = u->prompt;
            u->reported = 1;
            u->estimated = 0;
            return 1;
        }
    }
    if (cJSON_IsObject(timings)) {
        /* llama.cpp: prompt_n counts only the tokens it evaluated, cache_n
         * those it took from its cache */
        int ignored = 0;
        int64_t p = number(timings, "prompt_n", &found);
        int64_t c = number(timings, "predicted_n", &found);
        if (found) {
            u->cached = number(timings, "cache_n", &ignored);
            u->prompt = p + u->cached;
            u->completion = c;
            u->reasoning = 0;
            u->reported = 1;
            u->estimated = 0;
            return 1;
        }
    }
    return 0;
}

static size_t skip_ws(const char *s, size_t i, size_t n)
{
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
        i++;
    return i;
}

/* The index after the JSON value at s[i] (known valid), or n. */
static size_t value_end(const char *s, size_t i, size_t n)
{
    int depth = 0, escaped;
    while (i < n) {
        char c = s[i];
        if (c == '"') {
            size_t j = json_skip_string(s, i, n, &escaped);
            if (!j)
                return n;
            i = j;
            if (depth == 0)
                return i;
            continue;
        }
        if (c == '{' || c == '[') {
            depth++;
        } else if (c == '}' || c == ']') {
            if (depth == 0)
                return i;
            if (--depth == 0)
                return i + 1;
        } else if (depth == 0 && (c == ',' || c == ' ' || c == '\t' || c == '\n' || c == '\r')) {
            return i;
        }
        i++;
    }
    return n;
}

int usage_from_body(const char *s, size_t n, struct usage *u)
{
    size_t i = skip_ws(s, 0, n), spans[2][2] = { { 0, 0 }, { 0, 0 } };
    if (!s || i >= n || s[i] != '{')
        return 0;
    i = skip_ws(s, i + 1, n);
    while (i < n && s[i] == '"') {
        int escaped = 0;
        size_t k = i + 1, ke = json_skip_string(s, i, n, &escaped);
        if (!ke)
            return 0;
        i = skip_ws(s, ke, n);
        if (i >= n || s[i] != ':')
            return 0;
        size_t vs = skip_ws(s, i + 1, n), ve = value_end(s, vs, n);
        size_t klen = ke - 1 - k;
        if (klen == 5 && memcmp(s + k, "usage", 5) == 0)
            spans[0][0] = vs, spans[0][1] = ve;
        else if (klen == 7 && memcmp(s + k, "timings", 7) == 0)
            spans[1][0] = vs, spans[1][1] = ve;
        i = skip_ws(s, ve, n);
        if (i < n && s[i] == ',')
            i = skip_ws(s, i + 1, n);
        else
            break;
    }
    cJSON *usage = spans[0][1] > spans[0][0] ? json_parse_scratch(s + spans[0][0], spans[0][1] - spans[0][0]) : NULL;
    cJSON *timings = NULL;
    int found = usage_from_json(usage, NULL, u);
    json_scratch_free(usage);
    if (!found && spans[1][1] > spans[1][0]) {
        timings = json_parse_scratch(s + spans[1][0], spans[1][1] - spans[1][0]);
        found = usage_from_json(NULL, timings, u);
        json_scratch_free(timings);
    }
    return found;
}

long usage_text_quarters(const char *s)
{
    long q = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        q += *p < 0x80 ? 1 : *p < 0xc0 ? 0 : *p < 0xe0 ? 2 : 4;
    return q;
}

static long string_quarters(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) && v->valuestring ? usage_text_quarters(v->valuestring) : 0;
}

long usage_body_quarters(const char *s, size_t n)
{
    cJSON *root = json_parse_scratch(s, n);
    long q = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(root, "choices")) {
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(c, "message");
        q += string_quarters(m, "content") + string_quarters(m, "reasoning_content");
        const cJSON *t;
        cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(m, "tool_calls"))
            q += string_quarters(cJSON_GetObjectItemCaseSensitive(t, "function"), "arguments") + 16;
    }
    json_scratch_free(root);
    return q;
}

static int64_t mul_add(int64_t acc, int64_t tokens, int64_t ppt)
{
    if (tokens <= 0 || ppt <= 0)
        return acc;
    if (tokens > (INT64_MAX - acc) / ppt)
        return INT64_MAX;
    return acc + tokens * ppt;
}

int64_t usage_cost_ppt(const struct backend *b, const struct usage *u)
{
    int64_t cached = u->cached < u->prompt ? u->cached : u->prompt;
    int64_t c = mul_add(0, u->prompt - cached, b->price_input_ppt);
    c = mul_add(c, cached, b->price_cached_ppt);
    return mul_add(c, u->completion, b->price_output_ppt);
}

void usage_format_usd(char *out, size_t n, int64_t ppt)
{
    if (ppt < 0)
        ppt = 0;
    char frac[13];
    snprintf(frac, sizeof frac, "%012lld", (long long)(ppt % 1000000000000LL));
    int keep = 12;
    while (keep > 6 && frac[keep - 1] == '0')
        keep--;
    frac[keep] = '\0';
    snprintf(out, n, "%lld.%s", (long long)(ppt / 1000000000000LL), frac);
}
