/* test_usage.c — token figures from each upstream shape (OpenAI, vLLM,
 * llama.cpp's timings, Ollama) and their price in exact pico-USD. */
#include <string.h>
#include <cjson/cJSON.h>

#include "airlock/usage.h"
#include "t.h"

static int from(const char *body, struct usage *u)
{
    memset(u, 0, sizeof(*u));
    return usage_from_body(body, strlen(body), u);
}

static void test_openai_details(void)
{
    struct usage u;
    CHECK(from("{\"id\":\"x\",\"choices\":[{\"message\":{\"content\":\"hi\"}}],\"usage\":{\"prompt_tokens\":100,"
               "\"completion_tokens\":40,\"total_tokens\":140,\"prompt_tokens_details\":{\"cached_tokens\":60},"
               "\"completion_tokens_details\":{\"reasoning_tokens\":30}}}", &u) == 1);
    CHECK(u.prompt == 100 && u.completion == 40 && u.cached == 60 && u.reasoning == 30 && u.reported);
}

static void test_vllm_ollama_plain(void)
{
    struct usage u;
    /* vLLM: details null; Ollama: plain figures after choices */
    CHECK(from("{\"object\":\"chat.completion\",\"usage\":{\"prompt_tokens\":12,\"total_tokens\":17,"
               "\"completion_tokens\":5,\"prompt_tokens_details\":null}}", &u) == 1);
    CHECK(u.prompt == 12 && u.completion == 5 && u.cached == 0);
    CHECK(from("{\"choices\":[],\"system_fingerprint\":\"fp_ollama\",\"usage\":{\"prompt_tokens\":7,"
               "\"completion_tokens\":3,\"total_tokens\":10}}", &u) == 1);
    CHECK(u.prompt == 7 && u.completion == 3);
}

static void test_llamacpp_timings(void)
{
    struct usage u;
    CHECK(from("{\"choices\":[],\"timings\":{\"prompt_n\":10,\"cache_n\":4,\"predicted_n\":9,"
               "\"predicted_ms\":12.5}}", &u) == 1);
    CHECK(u.prompt == 14 && u.cached == 4 && u.completion == 9);
    /* usage wins over timings when both are there */
    CHECK(from("{\"timings\":{\"prompt_n\":1,\"predicted_n\":1},\"usage\":{\"prompt_tokens\":12,"
               "\"completion_tokens\":5}}", &u) == 1);
    CHECK(u.prompt == 12 && u.completion == 5);
}

static void test_none(void)
{
    struct usage u;
    CHECK(from("{\"choices\":[{\"message\":{\"content\":\"hello world\"}}]}", &u) == 0);
    CHECK(from("{\"usage\":null}", &u) == 0);
    CHECK(from("{\"usage\":{\"total_tokens\":\"x\"}}", &u) == 0);
    const char *b = "{\"choices\":[{\"message\":{\"content\":\"abcdefgh\"}}]}";
    CHECK(usage_body_quarters(b, strlen(b)) == 8);
    CHECK(usage_text_quarters("\xe4\xbd\xa0\xe5\xa5\xbd") == 8);   /* two CJK characters: 2 tokens */
}

static void test_cost_exact(void)
{
    struct backend b = { 0 };
    b.price_input_ppt = 150000;     /* 0.15 USD/Mtok */
    b.price_output_ppt = 600000;
    b.price_cached_ppt = 75000;
    struct usage u = { .prompt = 1000, .completion = 500, .cached = 400 };
    /* 600 x 0.15e-6 + 400 x 0.075e-6 + 500 x 0.6e-6 = 0.00042 USD */
    CHECK(usage_cost_ppt(&b, &u) == 420000000LL);
    char s[32];
    usage_format_usd(s, sizeof s, usage_cost_ppt(&b, &u));
    CHECK_STR(s, "0.000420");
    usage_format_usd(s, sizeof s, 1);
    CHECK_STR(s, "0.000000000001");
    b.price_output_ppt = INT64_MAX / 2;
    u.completion = 1000;
    CHECK(usage_cost_ppt(&b, &u) == INT64_MAX);
}

int main(void)
{
    json_scratch_init();
    RUN(test_openai_details);
    RUN(test_vllm_ollama_plain);
    RUN(test_llamacpp_timings);
    RUN(test_none);
    RUN(test_cost_exact);
    TEST_DONE();
}
