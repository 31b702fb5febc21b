/* test_body.c — the upstream body keeps the client's bytes and changes only
 * the top-level model; context-length errors of every server are known. */
#include "t.h"
#include "airlock/util.h"
#include "airlock/upstream.h"

#include <cjson/cJSON.h>

static const char *splice(const char *in, const char *model, struct buf *out)
{
    out->len = 0;
    if (body_with_model(out, in, strlen(in), model) < 0)
        return NULL;
    return out->data;
}

static void test_replaces_top_level_model_only(void)
{
    struct buf b = { 0 };
    CHECK_STR(splice("{\"model\":\"x\",\"seed\":12345678901234567890,\"m\":{\"model\":\"keep\"}}", "llama3", &b),
              "{\"model\":\"llama3\",\"seed\":12345678901234567890,\"m\":{\"model\":\"keep\"}}");
    CHECK_STR(splice(" { \"a\" : [1, {\"model\": 2}], \"model\" : null } ", "m", &b),
              " { \"a\" : [1, {\"model\": 2}], \"model\" : \"m\" } ");
    buf_free(&b);
}

static void test_adds_missing_model(void)
{
    struct buf b = { 0 };
    CHECK_STR(splice("{\"messages\":[]}", "m", &b), "{\"model\":\"m\",\"messages\":[]}");
    CHECK_STR(splice("{}", "m", &b), "{\"model\":\"m\"}");
    buf_free(&b);
}

static void test_duplicate_models_all_replaced(void)
{
    struct buf b = { 0 };
    CHECK_STR(splice("{\"model\":\"a\",\"model\":\"b\"}", "m", &b), "{\"model\":\"m\",\"model\":\"m\"}");
    buf_free(&b);
}

static void test_declines_what_it_cannot_splice(void)
{
    struct buf b = { 0 };
    CHECK(splice("{\"mod\\u0065l\":\"a\"}", "m", &b) == NULL);
    CHECK(splice("[1,2]", "m", &b) == NULL);
    CHECK(splice("{\"a\":\"unterminated}", "m", &b) == NULL);
    buf_free(&b);
}

static void test_model_is_escaped(void)
{
    struct buf b = { 0 };
    CHECK_STR(splice("{\"model\":1}", "a\"b", &b), "{\"model\":\"a\\\"b\"}");
    buf_free(&b);
}

static void test_context_length_phrasings(void)
{
    const char *openai = "{\"error\":{\"message\":\"This model's maximum context length is 8192 tokens.\","
                         "\"type\":\"invalid_request_error\",\"param\":\"messages\",\"code\":\"context_length_exceeded\"}}";
    const char *llamacpp = "{\"error\":{\"code\":400,\"message\":\"the request exceeds the available context size, "
                           "try increasing it\",\"type\":\"exceed_context_size_error\"}}";
    const char *vllm = "{\"object\":\"error\",\"message\":\"This model's maximum context length is 4096 tokens. "
                       "However, you requested 5000 tokens\",\"type\":\"BadRequestError\",\"param\":null,\"code\":400}";
    const char *other = "{\"error\":{\"message\":\"Invalid value for 'temperature'\"}}";
    CHECK(is_context_length_error(400, openai, strlen(openai)));
    CHECK(is_context_length_error(400, llamacpp, strlen(llamacpp)));
    CHECK(is_context_length_error(400, vllm, strlen(vllm)));
    CHECK(!is_context_length_error(400, other, strlen(other)));
    CHECK(!is_context_length_error(200, openai, strlen(openai)));
    CHECK(!is_context_length_error(400, NULL, 0));
}

#define U8(lit) (const unsigned char *)(lit), sizeof(lit) - 1
static void test_utf8_validation(void)
{
    CHECK(utf8_valid(U8("plain ascii, long enough to take the 8-byte path")));
    CHECK(utf8_valid(U8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80")));   /* é € 😀 */
    CHECK(!utf8_valid(U8("\xff")));
    CHECK(!utf8_valid(U8("abc\xc3")));                  /* truncated */
    CHECK(!utf8_valid(U8("\xc0\xaf")));                 /* overlong '/' */
    CHECK(!utf8_valid(U8("\xe0\x80\xaf")));            /* overlong */
    CHECK(!utf8_valid(U8("\xed\xa0\x80")));            /* a surrogate */
    CHECK(!utf8_valid(U8("\xf4\x90\x80\x80")));       /* past U+10FFFF */
    CHECK(!utf8_valid(U8("12345678\x80")));
}

/* The scratch arena: trees parse the same, one that outgrows the arena
 * spills into malloc, a second tree while one is live is an ordinary one,
 * and freeing any of them is safe (ASan and valgrind watch this test). */
static void test_json_scratch(void)
{
    json_scratch_init();
    cJSON *a = json_parse_scratch("{\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}", 41);
    CHECK(a && cJSON_IsArray(cJSON_GetObjectItem(a, "choices")));
    cJSON *b = json_parse_scratch("[1,2,3]", 7);         /* while a is live */
    CHECK(b && cJSON_GetArraySize(b) == 3);
    json_scratch_free(b);
    json_scratch_free(a);
    CHECK(json_parse_scratch("{\"a\":", 5) == NULL);

    struct buf big = { 0 };
    buf_puts(&big, "[");
    for (int i = 0; i < 20000; i++)
        buf_appendf(&big, "%s{\"k\":%d}", i ? "," : "", i);
    buf_puts(&big, "]");
    cJSON *c = json_parse_scratch(big.data, big.len);
    CHECK(c && cJSON_GetArraySize(c) == 20000);
    CHECK(cJSON_GetObjectItem(cJSON_GetArrayItem(c, 19999), "k")->valueint == 19999);
    json_scratch_free(c);
    cJSON *d = json_parse_scratch("{\"again\":true}", 14);
    CHECK(d && cJSON_IsTrue(cJSON_GetObjectItem(d, "again")));
    json_scratch_free(d);
    buf_free(&big);
    json_scratch_thread_end();
}

static int check_json(const char *s)
{
    unsigned keys = 0;
    return json_check(s, strlen(s), &keys);
}

static void test_json_check(void)
{
    static const char *const valid[] = {
        "{}", "[]", " {\"a\":1} \n", "0", "-0", "1.5e-3", "-12E+4", "\"\"", "true", "false", "null",
        "[1,[2,[3,{}]],\"x\"]", "{\"a\":{\"b\":[null,true,false]},\"c\":\"\\u00e9\\n\\\"\\\\\\/\"}",
        "\"\\ud83d\\ude00\"", "\"caf\xc3\xa9\"", "{\"\":0}", "[ ]", "{ }",
    };
    static const char *const invalid[] = {
        "", " ", "{", "}", "[", "]", "{\"a\":1", "{\"a\":1}}", "{\"a\":1} x", "[1,]", "{\"a\":1,}",
        "{\"a\"}", "{\"a\":}", "{a:1}", "{1:1}", "[1 2]", "01", "1.", ".5", "-", "+1", "1e", "1e+",
        "0x10", "tru", "nul", "True", "\"abc", "\"\\x\"", "\"\\u12\"", "\"\\u12g4\"", "\"a\tb\"",
        "\"a\nb\"", "[1]]", "[[1]", "{\"a\":1 \"b\":2}", "NaN", "Infinity", "'a'", "\"\\",
    };
    for (size_t i = 0; i < sizeof valid / sizeof valid[0]; i++)
        if (check_json(valid[i]) != 0) {
            CHECK(!"valid JSON refused");
            fprintf(stderr, "    %s\n", valid[i]);
        }
    for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++)
        if (check_json(invalid[i]) == 0) {
            CHECK(!"invalid JSON accepted");
            fprintf(stderr, "    %s\n", invalid[i]);
        }
    /* an embedded NUL is not JSON */
    CHECK(json_check("{\"a\":\"x\0y\"}", 11, &(unsigned){ 0 }) < 0);
    /* top-level keys only, written plainly */
    unsigned keys = 0;
    CHECK(check_json("{\"error\":{\"message\":\"x\"}}") == 0);
    const char *s1 = "{\"error\":{},\"x\":{\"choices\":1}}";
    const char *s2 = "{\"choices\":[ {} ],\"error\":1,\"data\":[0]}";
    const char *s3 = "[{\"error\":1}]";
    CHECK(json_check(s1, strlen(s1), &keys) == 0 && keys == JSON_KEY_ERROR);
    CHECK(json_check(s2, strlen(s2), &keys) == 0 && keys == (JSON_KEY_ERROR | JSON_KEY_CHOICES | JSON_KEY_DATA));
    CHECK(json_check(s3, strlen(s3), &keys) == 0 && keys == 0);
    /* an empty or non-array choices/data is no answer; a null error no error */
    const char *empty[] = { "{\"choices\":[],\"error\":null,\"data\":[ ]}", "{\"choices\":{},\"data\":\"x\"}",
                            "{\"choices\":null}", "null", "{}" };
    for (size_t i = 0; i < sizeof empty / sizeof empty[0]; i++)
        CHECK(json_check(empty[i], strlen(empty[i]), &keys) == 0 && keys == 0);
    /* nesting: up to the limit and no deeper */
    char deep[2 * JSON_CHECK_DEPTH + 3];
    memset(deep, '[', JSON_CHECK_DEPTH);
    memset(deep + JSON_CHECK_DEPTH, ']', JSON_CHECK_DEPTH);
    CHECK(json_check(deep, 2 * JSON_CHECK_DEPTH, &keys) == 0);
    memset(deep, '[', JSON_CHECK_DEPTH + 1);
    memset(deep + JSON_CHECK_DEPTH + 1, ']', JSON_CHECK_DEPTH + 1);
    CHECK(json_check(deep, 2 * JSON_CHECK_DEPTH + 2, &keys) < 0);
}

static void test_buf_format_and_escape(void)
{
    struct buf b = { 0 };
    char big[1000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    /* one format that fits the room there, then one that does not */
    CHECK(buf_appendf(&b, "%d-%s", 42, "ab") == 0);
    CHECK(buf_appendf(&b, "[%s]", big) == 0);
    CHECK(b.len == 5 + 2 + 999);
    CHECK(strncmp(b.data, "42-ab[xxx", 9) == 0);
    CHECK(b.data[b.len - 1] == ']' && b.data[b.len] == '\0');
    b.len = 0;
    CHECK(buf_append_json_string(&b, "plain") == 0);
    CHECK_STR(b.data, "\"plain\"");
    b.len = 0;
    CHECK(buf_append_json_string(&b, "a\"b\\c\nd\re\tf\x01g\x1fh\xc3\xa9") == 0);
    CHECK_STR(b.data, "\"a\\\"b\\\\c\\nd\\re\\tf\\u0001g\\u001fh\xc3\xa9\"");
    b.len = 0;
    CHECK(buf_append_json_string(&b, "") == 0);
    CHECK_STR(b.data, "\"\"");
    b.len = 0;
    CHECK(buf_append_u64(&b, 0) == 0 && buf_append_u64(&b, 1203) == 0 && buf_append_u64(&b, UINT64_MAX) == 0);
    CHECK_STR(b.data, "0120318446744073709551615");
    char d[U64_DIGITS + 1];
    CHECK_STR(u64_decimal(d + U64_DIGITS, 7), "7");
    CHECK_STR(u64_decimal(d + U64_DIGITS, UINT64_MAX), "18446744073709551615");
    buf_free(&b);
}

/* The word-at-a-time scan against a byte loop, on every position and
 * length over bytes chosen to trip it: the three it stops at, their
 * neighbours, and high bytes that could fool a borrow. */
static size_t plain_run_slow(const char *s, size_t i, size_t n)
{
    for (; i < n; i++)
        if (s[i] == '"' || s[i] == '\\' || (unsigned char)s[i] < 0x20)
            return i;
    return n;
}

static void test_json_plain_run(void)
{
    static const unsigned char alphabet[] = { 'a', '"', '\\', 0x00, 0x1f, 0x20, 0x21, 0x5b, 0x5d,
                                              0x7f, 0x80, 0xa2, 0xdc, 0xff, 0x01, '#' };
    char s[40];
    unsigned seed = 12345, bad = 0;
    for (int round = 0; round < 20000; round++) {
        size_t n = (size_t)(round % 40);
        for (size_t k = 0; k < n; k++) {
            seed = seed * 1103515245u + 12345u;
            /* mostly plain bytes, so runs longer than a word occur */
            s[k] = (char)((seed >> 16) % 4 ? 'a' + (seed >> 20) % 26 : alphabet[(seed >> 20) % sizeof alphabet]);
        }
        for (size_t i = 0; i <= n; i++)
            bad += json_plain_run(s, i, n) != plain_run_slow(s, i, n);
    }
    CHECK(bad == 0);
    int esc = 0;
    const char *t = "\"abcdefghijklmnop\\\"qrstuvwxyz\"tail";
    CHECK(json_skip_string(t, 0, strlen(t), &esc) == strlen(t) - 4 && esc == 1);
    esc = 0;
    CHECK(json_skip_string("\"abcdefghij\"", 0, 12, &esc) == 12 && esc == 0);
    CHECK(json_skip_string("\"abcdefghij\\", 0, 12, &esc) == 0);     /* ends in a backslash */
    CHECK(json_skip_string("\"abcdefghijk", 0, 12, &esc) == 0);       /* no closing quote */
}

int main(void)
{
    RUN(test_json_plain_run);
    RUN(test_utf8_validation);
    RUN(test_json_scratch);
    RUN(test_buf_format_and_escape);
    RUN(test_json_check);
    RUN(test_replaces_top_level_model_only);
    RUN(test_adds_missing_model);
    RUN(test_duplicate_models_all_replaced);
    RUN(test_declines_what_it_cannot_splice);
    RUN(test_model_is_escaped);
    RUN(test_context_length_phrasings);
    TEST_DONE();
}
