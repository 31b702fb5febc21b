/* test_classify.c — the classifier: each built-in detector on positives and
 * negatives, keywords and regexes, what in a request body is scanned (JSON
 * escapes, content parts, tool calls, tools, embeddings), unreadable content,
 * and the level. The config is built by hand; no YAML involved. */
#include <stdlib.h>
#include "t.h"
#include "airlock/classify.h"

enum { PUBLIC, INTERNAL, CONFIDENTIAL, SECRET };

static char *kw_codenames[] = { "Nightjar", "Bluebird", "project x-ray" };

static struct detector all_detectors[] = {
    { "email", DETECTOR_BUILTIN, BUILTIN_EMAIL, NULL, 0, NULL, CONFIDENTIAL },
    { "phone", DETECTOR_BUILTIN, BUILTIN_PHONE, NULL, 0, NULL, CONFIDENTIAL },
    { "credit_card", DETECTOR_BUILTIN, BUILTIN_CREDIT_CARD, NULL, 0, NULL, SECRET },
    { "us_ssn", DETECTOR_BUILTIN, BUILTIN_US_SSN, NULL, 0, NULL, SECRET },
    { "iban", DETECTOR_BUILTIN, BUILTIN_IBAN, NULL, 0, NULL, SECRET },
    { "secret_key", DETECTOR_BUILTIN, BUILTIN_SECRET_KEY, NULL, 0, NULL, SECRET },
    { "ipv4", DETECTOR_BUILTIN, BUILTIN_IPV4, NULL, 0, NULL, INTERNAL },
    { "codenames", DETECTOR_KEYWORDS, 0, kw_codenames, 3, NULL, CONFIDENTIAL },
    { "corp-hosts", DETECTOR_REGEX, 0, NULL, 0, "[a-z0-9-]+\\.corp\\.example\\.com", INTERNAL },
};

static struct config cfg;
static struct classifier *cls;
static int unreadable_level = SECRET;

static void setup(struct detector *dets, int n)
{
    static char *levels[] = { "public", "internal", "confidential", "secret" };
    char err[256] = "";
    memset(&cfg, 0, sizeof(cfg));
    for (int i = 0; i < 4; i++)
        cfg.levels[i] = levels[i];
    cfg.n_levels = 4;
    cfg.unreadable_level = unreadable_level;
    cfg.detectors = dets;
    cfg.n_detectors = n;
    classifier_free(cls);
    cls = classifier_build(&cfg, err, sizeof(err));
    if (!cls)
        fprintf(stderr, "classifier_build: %s\n", err);
    cfg.classifier = cls;
}

static const struct detector_hit *find_hit(const struct classification *c, const char *name)
{
    for (int i = 0; i < c->n_hits; i++)
        if (strcmp(c->hits[i].detector, name) == 0)
            return &c->hits[i];
    return NULL;
}

/* Count of matches of detector `name` in text (0 if it did not fire). */
static unsigned text_hits(const char *text, const char *name)
{
    struct classification c;
    classify_text(cls, text, strlen(text), &c);
    const struct detector_hit *h = find_hit(&c, name);
    return h ? h->count : 0;
}

static struct classification request(const char *json)
{
    struct classification c;
    cJSON *body = cJSON_Parse(json);
    if (!body)
        fprintf(stderr, "bad test JSON: %s\n", json);
    classify_request(cls, &cfg, body, &c);
    cJSON_Delete(body);
    return c;
}

static void test_email(void)
{
    CHECK(text_hits("write to jane.doe@example.com today", "email") == 1);
    CHECK(text_hits("<j_smith+tag@mail.co.uk>", "email") == 1);
    CHECK(text_hits("a@b.io and c@d.org", "email") == 2);
    CHECK(text_hits("ping @jane on slack", "email") == 0);
    CHECK(text_hits("use icon@2x.png here", "email") == 0);
    CHECK(text_hits("npm i lodash@4.17.21", "email") == 0);
    CHECK(text_hits("user@localhost", "email") == 0);
    CHECK(text_hits("@decorator\ndef f(): pass", "email") == 0);
}

static void test_phone(void)
{
    CHECK(text_hits("call (555) 123-4567 now", "phone") == 1);
    CHECK(text_hits("call 555-123-4567", "phone") == 1);
    CHECK(text_hits("+1 555 123 4567", "phone") == 1);
    CHECK(text_hits("+44 20 7946 0958", "phone") == 1);
    CHECK(text_hits("Tel. 030 12345678", "phone") == 1);
    CHECK(text_hits("appelez le 01 42 68 53 00", "phone") == 1);
    CHECK(text_hits("+49 (0)30 1234567", "phone") == 1);
    CHECK(text_hits("at 2024-01-15 10:30:45", "phone") == 0);
    CHECK(text_hits("version 10.0.19041.1234", "phone") == 0);
    CHECK(text_hits("order 5551234567", "phone") == 0);
    CHECK(text_hits("pi is 3.14159265358", "phone") == 0);
    CHECK(text_hits("ORD-555-123-4567", "phone") == 0);
    CHECK(text_hits("on 15/01/2024", "phone") == 0);
    CHECK(text_hits("epoch 1700000000", "phone") == 0);
}

static void test_card(void)
{
    CHECK(text_hits("card 4111 1111 1111 1111 exp 12/29", "credit_card") == 1);
    CHECK(text_hits("4111-1111-1111-1111", "credit_card") == 1);
    CHECK(text_hits("amex 378282246310005", "credit_card") == 1);
    CHECK(text_hits("mc 5555555555554444.", "credit_card") == 1);
    CHECK(text_hits("4111 1111 1111 1112", "credit_card") == 0);   /* Luhn */
    CHECK(text_hits("id 1234567812345670", "credit_card") == 0);   /* no IIN */
    CHECK(text_hits("41111111111111111111", "credit_card") == 0);  /* too long */
}

static void test_ssn(void)
{
    CHECK(text_hits("SSN 123-45-6789", "us_ssn") == 1);
    CHECK(text_hits("ssn: 123456789", "us_ssn") == 1);
    CHECK(text_hits("123 45 6789", "us_ssn") == 1);
    CHECK(text_hits("000-12-3456", "us_ssn") == 0);
    CHECK(text_hits("666-12-3456", "us_ssn") == 0);
    CHECK(text_hits("912-12-3456", "us_ssn") == 0);
    CHECK(text_hits("123-00-4567", "us_ssn") == 0);
    CHECK(text_hits("123-45-0000", "us_ssn") == 0);
    CHECK(text_hits("zip 123456789", "us_ssn") == 0);
    CHECK(text_hits("AB-123-45-6789", "us_ssn") == 0);
}

static void test_iban(void)
{
    CHECK(text_hits("IBAN DE89 3704 0044 0532 0130 00.", "iban") == 1);
    CHECK(text_hits("GB82WEST12345698765432", "iban") == 1);
    CHECK(text_hits("GB82WEST12345698765433", "iban") == 0);   /* mod 97 */
    CHECK(text_hits("DE89370400440532013", "iban") == 0);      /* length */
    CHECK(text_hits("XX89370400440532013000", "iban") == 0);   /* country */
}

static void test_keys(void)
{
    CHECK(text_hits("key sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z", "secret_key") == 1);
    CHECK(text_hits("sk-ant-api03-AbCdEf1234567890GhIjKl_mn-op", "secret_key") == 1);
    CHECK(text_hits("AKIAIOSFODNN7EXAMPLE", "secret_key") == 1);
    CHECK(text_hits("ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789", "secret_key") == 1);
    CHECK(text_hits("xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOp", "secret_key") == 1);
    CHECK(text_hits("AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q", "secret_key") == 1);
    CHECK(text_hits("-----BEGIN RSA PRIVATE KEY-----\nMIIE...", "secret_key") == 1);
    CHECK(text_hits("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dBjftJeZ4CVPmB92K27uhbUJU1p1r_wW1gFWFOEjXk", "secret_key") == 1);
    CHECK(text_hits("API_KEY=\"9f8e7d6c5b4a39281706f5e4d3c2b1a0\"", "secret_key") == 1);
    CHECK(text_hits("{\"api_key\": \"Zk3u9QmX2vB7rT1pL8sW\"}", "secret_key") == 1);
    CHECK(text_hits("password=hunter2!", "secret_key") == 1);
    CHECK(text_hits("one secret: OPENAI_API_KEY=sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z", "secret_key") == 1);
    CHECK(text_hits("pip install scikit-learn sk-learn-compatible-estimators-module", "secret_key") == 0);
    CHECK(text_hits("password = os.environ[\"DB_PASSWORD\"]", "secret_key") == 0);
    CHECK(text_hits("\"api_key\": \"YOUR_API_KEY\"", "secret_key") == 0);
    CHECK(text_hits("sort_key=lambda x: x[0]", "secret_key") == 0);
    CHECK(text_hits("-----BEGIN PUBLIC KEY-----", "secret_key") == 0);
    CHECK(text_hits("the monkey=banana trick", "secret_key") == 0);
}

static void test_ipv4(void)
{
    CHECK(text_hits("host 192.168.1.20 is up", "ipv4") == 1);
    CHECK(text_hits("10.0.0.1:8080", "ipv4") == 1);
    CHECK(text_hits("version 1.2.3.4.5", "ipv4") == 0);
    CHECK(text_hits("v1.2.3.4", "ipv4") == 0);
    CHECK(text_hits("256.1.1.1", "ipv4") == 0);
    CHECK(text_hits("1.2.3", "ipv4") == 0);
    CHECK(text_hits("11.2.3.4.", "ipv4") == 1);
}

/* A match is refused only when a letter or digit touches it (or it
 * continues a longer number or token); '_' and punctuation separate:
 * CSV fields, paths, identifiers, labels. */
static void test_glued_to_punctuation(void)
{
    CHECK(text_hits("Jane,4111111111111111,12/29", "credit_card") == 1);
    CHECK(text_hits("/pay/4111-1111-1111-1111/charge", "credit_card") == 1);
    CHECK(text_hits("cc_4111111111111111_exp", "credit_card") == 1);
    CHECK(text_hits("w+4111111111111111", "credit_card") == 1);
    CHECK(text_hits("x4111111111111111", "credit_card") == 0);      /* inside a token */
    CHECK(text_hits("0.4111111111111111", "credit_card") == 0);     /* a fraction */
    CHECK(text_hits("Jane,123-45-6789,NY", "us_ssn") == 1);
    CHECK(text_hits("SSN#123-45-6789", "us_ssn") == 1);
    CHECK(text_hits("id_123-45-6789", "us_ssn") == 1);
    CHECK(text_hits("ssn-123-45-6789", "us_ssn") == 1);             /* labelled */
    CHECK(text_hits("tel:555-123-4567", "phone") == 1);
    CHECK(text_hits("Jane,+44 20 7946 0958", "phone") == 1);
    CHECK(text_hits("12:555-123-4567", "phone") == 0);              /* a time first */
    CHECK(text_hits("host_10.20.30.40_db", "ipv4") == 1);
    CHECK(text_hits("iban_GB82WEST12345698765432", "iban") == 1);
    CHECK(text_hits("aws_AKIAIOSFODNN7EXAMPLE_x", "secret_key") == 1);
    CHECK(text_hits("key_sk-proj-a1B2c3D4e5F6g7H8i9J0a1B2c3D4e5F6g7H8i9J0", "secret_key") == 1);
    CHECK(text_hits("id_eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
                    "secret_key") == 1);
    /* a key body dense with '-' and '_' (no alphanumeric run of 16) */
    CHECK(text_hits("sk-proj-QdeAJryXe-g4q0OkAK_Ez0f-6467jRAfw5Q_RPuzwT72R_kTGIDBF_hfp2mc-J-x", "secret_key") == 1);
    CHECK(text_hits("sk-learn-compatible-estimator-wrapper-for-pipelines", "secret_key") == 0);
}

static void test_keywords_and_regex(void)
{
    CHECK(text_hits("status of NIGHTJAR?", "codenames") == 1);
    CHECK(text_hits("the nightjar's nest", "codenames") == 1);
    CHECK(text_hits("nightjars", "codenames") == 0);
    CHECK(text_hits("xbluebird", "codenames") == 0);
    CHECK(text_hits("Project X-Ray.", "codenames") == 1);
    CHECK(text_hits("ssh db-1.corp.example.com", "corp-hosts") == 1);
    CHECK(text_hits("example.com", "corp-hosts") == 0);

    struct classification c;
    const char *t = "Nightjar and Bluebird";
    classify_text(cls, t, strlen(t), &c);
    const struct detector_hit *h = find_hit(&c, "codenames");
    CHECK(h && h->count == 2 && h->n_offsets == 2 && h->offsets[0] == 0 && h->offsets[1] == 13);
}

static void test_bad_regex(void)
{
    struct detector bad[] = {
        { "broken", DETECTOR_REGEX, 0, NULL, 0, "([a-z", INTERNAL },
    };
    struct config c2 = cfg;
    char err[256] = "";
    c2.detectors = bad;
    c2.n_detectors = 1;
    struct classifier *b = classifier_build(&c2, err, sizeof(err));
    CHECK(b == NULL);
    CHECK(strstr(err, "broken") != NULL);
    classifier_free(b);
}

static void test_level_is_max(void)
{
    struct classification c = request("{\"messages\":[{\"role\":\"user\",\"content\":"
                                       "\"host 10.1.2.3 mail a@b.io\"}]}");
    CHECK(c.level == CONFIDENTIAL);
    CHECK(find_hit(&c, "ipv4") && find_hit(&c, "email"));
    c = request("{\"messages\":[{\"role\":\"user\",\"content\":\"hello world\"}]}");
    CHECK(c.level == PUBLIC && c.n_hits == 0 && c.unreadable == 0);
    c = request("{\"messages\":[{\"role\":\"user\",\"content\":\"10.1.2.3 and 4111111111111111\"}]}");
    CHECK(c.level == SECRET);
}

static void test_json_escapes(void)
{
    struct classification c = request("{\"messages\":[{\"role\":\"user\",\"content\":"
                                       "\"mail jane\\u0040example.com\"}]}");
    CHECK(find_hit(&c, "email") != NULL);
    /* U+1F600 as a surrogate pair right before the address */
    c = request("{\"messages\":[{\"role\":\"user\",\"content\":\"\\ud83d\\ude00 bob@example.org\"}]}");
    CHECK(find_hit(&c, "email") != NULL);
    c = request("{\"model\":\"x\",\"user\":\"b\\u006fb@ex\\u0061mple.com\"}");
    CHECK(find_hit(&c, "email") != NULL);
}

static void test_content_parts(void)
{
    struct classification c = request(
        "{\"messages\":[{\"role\":\"user\",\"content\":["
        "{\"type\":\"text\",\"text\":\"my card is 4111 1111 \"},"
        "{\"type\":\"text\",\"text\":\"1111 1111 thanks\"}]}]}");
    const struct detector_hit *h = find_hit(&c, "credit_card");
    CHECK(h && h->count == 1);
    CHECK(c.level == SECRET && c.unreadable == 0);
    /* one email inside one part is counted once, not again in the join */
    c = request("{\"messages\":[{\"role\":\"user\",\"content\":["
                "{\"type\":\"text\",\"text\":\"x a@b.io\"},{\"type\":\"text\",\"text\":\" y\"}]}]}");
    h = find_hit(&c, "email");
    CHECK(h && h->count == 1);
    c = request("{\"messages\":[{\"role\":\"user\",\"content\":["
                "{\"type\":\"text\",\"text\":\"Night\"},{\"type\":\"text\",\"text\":\"jar\"}]}]}");
    CHECK(find_hit(&c, "codenames") != NULL);
}

static void test_unreadable(void)
{
    struct classification c = request(
        "{\"messages\":[{\"role\":\"user\",\"content\":["
        "{\"type\":\"text\",\"text\":\"what is this?\"},"
        "{\"type\":\"image_url\",\"image_url\":{\"url\":\"https://example.org/cat.png\"}}]}]}");
    CHECK(c.unreadable == 1 && c.level == SECRET);
    c = request("{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"input_audio\","
                "\"input_audio\":{\"data\":\"AAAA\",\"format\":\"wav\"}}]}]}");
    CHECK(c.unreadable >= 1 && c.level == SECRET);
    c = request("{\"messages\":[{\"role\":\"user\",\"content\":\"see data:image/png;base64,iVBORw0KGgo=\"}]}");
    CHECK(c.unreadable == 0);   /* not a URI field: short inline text stays readable */
    c = request("{\"x\":\"data:image/png;base64,iVBORw0KGgo=\"}");
    CHECK(c.unreadable == 1 && c.level == SECRET);

    char blob[400 + 64];
    strcpy(blob, "{\"content\":\"");
    size_t n = strlen(blob);
    for (int i = 0; i < 300; i++)
        blob[n++] = "AbC0dEf1GhI2jKl3+/"[i % 18];
    strcpy(blob + n, "\"}");
    c = request(blob);
    CHECK(c.unreadable == 1 && c.level == SECRET);
    /* a long rule of '=' is not a blob */
    char rule[400];
    strcpy(rule, "{\"content\":\"");
    n = strlen(rule);
    memset(rule + n, '=', 300);
    strcpy(rule + n + 300, "\"}");
    c = request(rule);
    CHECK(c.unreadable == 0 && c.level == PUBLIC);

    unreadable_level = INTERNAL;
    setup(all_detectors, (int)(sizeof(all_detectors) / sizeof(all_detectors[0])));
    c = request("{\"input\":[[1,2,3],[4,5]]}");
    CHECK(c.unreadable == 2 && c.level == INTERNAL);
    unreadable_level = SECRET;
    setup(all_detectors, (int)(sizeof(all_detectors) / sizeof(all_detectors[0])));
}

static void test_tool_calls(void)
{
    /* arguments is a JSON string whose own strings are escaped once more */
    struct classification c = request(
        "{\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"c1\",\"type\":\"function\","
        "\"function\":{\"name\":\"send\",\"arguments\":\"{\\\"to\\\":\\\"ann\\\\u0040corp.io\\\"}\"}}]}]}");
    CHECK(find_hit(&c, "email") != NULL);
    c = request("{\"messages\":[{\"role\":\"tool\",\"tool_call_id\":\"c1\","
                "\"content\":\"{\\\"ssn\\\": \\\"123-45-6789\\\"}\"}]}");
    CHECK(find_hit(&c, "us_ssn") != NULL);
    c = request("{\"messages\":[],\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\","
                "\"description\":\"notify ops@corp.io\",\"parameters\":{\"type\":\"object\"}}}]}");
    CHECK(find_hit(&c, "email") != NULL);
    c = request("{\"messages\":[],\"functions\":[{\"name\":\"Bluebird\",\"parameters\":{}}]}");
    CHECK(find_hit(&c, "codenames") != NULL);
    c = request("{\"messages\":[{\"role\":\"user\",\"name\":\"eve@corp.io\",\"content\":\"hi\"}]}");
    CHECK(find_hit(&c, "email") != NULL);
    /* keys are scanned too */
    c = request("{\"metadata\":{\"10.0.0.7\":true}}");
    CHECK(find_hit(&c, "ipv4") != NULL);
}

static void test_embeddings(void)
{
    struct classification c = request("{\"model\":\"e\",\"input\":\"mail x@y.com\"}");
    CHECK(find_hit(&c, "email") != NULL && c.unreadable == 0);
    c = request("{\"model\":\"e\",\"input\":[\"fine\",\"4111111111111111\"]}");
    CHECK(find_hit(&c, "credit_card") != NULL);
    c = request("{\"model\":\"e\",\"input\":[101,2023,3000]}");
    CHECK(c.unreadable == 1 && c.level == SECRET);
    c = request("{\"model\":\"e\",\"input\":\"x\",\"dimensions\":256}");
    CHECK(c.unreadable == 0 && c.level == PUBLIC);
}

static void test_invalid_utf8(void)
{
    const char text[] = "\xff\xfe a@b.io \xc3\x28 4111111111111111";
    struct classification c;
    classify_text(cls, text, sizeof(text) - 1, &c);
    CHECK(find_hit(&c, "email") && find_hit(&c, "credit_card"));
    const char with_nul[] = "x\0y a@b.io";
    classify_text(cls, with_nul, sizeof(with_nul) - 1, &c);
    CHECK(find_hit(&c, "email") != NULL);
}

static void test_offsets(void)
{
    struct classification c = request("{\"a\":\"x a@b.io\"}");
    /* scanned text: "a\nx a@b.io\n" */
    const struct detector_hit *h = find_hit(&c, "email");
    CHECK(h && h->n_offsets == 1 && h->offsets[0] == 4);
}

static void test_no_detectors(void)
{
    setup(NULL, 0);
    struct classification c = request("{\"messages\":[{\"role\":\"user\",\"content\":\"a@b.io\"}]}");
    CHECK(c.level == PUBLIC && c.n_hits == 0);
    setup(all_detectors, (int)(sizeof(all_detectors) / sizeof(all_detectors[0])));
}

int main(void)
{
    setup(all_detectors, (int)(sizeof(all_detectors) / sizeof(all_detectors[0])));
    if (!cls)
        return 1;
    RUN(test_email);
    RUN(test_phone);
    RUN(test_card);
    RUN(test_ssn);
    RUN(test_iban);
    RUN(test_keys);
    RUN(test_ipv4);
    RUN(test_glued_to_punctuation);
    RUN(test_keywords_and_regex);
    RUN(test_bad_regex);
    RUN(test_level_is_max);
    RUN(test_json_escapes);
    RUN(test_content_parts);
    RUN(test_unreadable);
    RUN(test_tool_calls);
    RUN(test_embeddings);
    RUN(test_invalid_utf8);
    RUN(test_offsets);
    RUN(test_no_detectors);
    classifier_free(cls);
    classify_thread_release();
    TEST_DONE();
}
