/* errors.c — recognising an upstream's context-length error, whatever the
 * server: OpenAI's `context_length_exceeded` code and the phrasings of
 * llama.cpp, vLLM, Ollama, LM Studio and Anthropic. */
#include <string.h>
#include <strings.h>

#include "airlock/upstream.h"

static const char *const context_phrases[] = {
    "context_length_exceeded",              /* OpenAI, Azure */
    "maximum context length",               /* OpenAI, vLLM message */
    "exceed_context_size_error",            /* llama.cpp type */
    "exceeds the available context size",   /* llama.cpp message */
    "exceeds maximum context length",       /* Ollama */
    "input length exceeds",                 /* Ollama embeddings */
    "context window",                       /* generic, LM Studio */
    "context length",
    "prompt is too long",                   /* Anthropic */
    "too many tokens",
};

static int contains_nocase(const char *hay, size_t n, const char *needle)
{
    size_t m = strlen(needle);
    for (size_t i = 0; m <= n && i <= n - m; i++)
        if (strncasecmp(hay + i, needle, m) == 0)
            return 1;
    return 0;
}

int is_context_length_error(long status, const char *body, size_t len)
{
    if (status != 400 && status != 413 && status != 422 && status != 500)
        return 0;
    if (!body)
        return 0;
    for (size_t i = 0; i < sizeof context_phrases / sizeof context_phrases[0]; i++)
        if (contains_nocase(body, len, context_phrases[i]))
            return 1;
    return 0;
}
