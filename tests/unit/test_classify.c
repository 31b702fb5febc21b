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

/* A chat request whose one message is `content` (no JSON escaping needed). */
static struct classification chat(const char *content)
{
    struct classification c;
    cJSON *body = cJSON_CreateObject();
    cJSON *msgs = cJSON_AddArrayToObject(body, "messages");
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "role", "user");
    cJSON_AddStringToObject(m, "content", content);
    cJSON_AddItemToArray(msgs, m);
    classify_request(cls, &cfg, body, &c);
    cJSON_Delete(body);
    return c;
}

/* Appends the base64 of src[0..n) to out: `extra` gives the alphabet's last two
 * characters ("+/" or "-_"), '=' padding when pad, and a line end `eol` after
 * every `width` characters (0: one unbroken run). Returns the new end of out. */
static char *base64(char *out, const char *src, size_t n, const char *extra, int pad,
                    int width, const char *eol)
{
    static const char alnum[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    size_t col = 0;
    for (size_t i = 0; i < n; i += 3) {
        size_t left = n - i;
        unsigned v = (unsigned)(unsigned char)src[i] << 16;
        if (left > 1)
            v |= (unsigned)(unsigned char)src[i + 1] << 8;
        if (left > 2)
            v |= (unsigned char)src[i + 2];
        for (size_t k = 0; k < 4; k++) {
            unsigned d = (v >> (18 - 6 * k)) & 63;
            char ch = d < 62 ? alnum[d] : extra[d - 62];
            if (k > left) {
                if (!pad)
                    break;
                ch = '=';
            }
            if (width && col == (size_t)width) {
                strcpy(out, eol);
                out += strlen(eol);
                col = 0;
            }
            *out++ = ch;
            col++;
        }
    }
    *out = '\0';
    return out;
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
    /* text in another script glued to the address (CJK has no spaces) */
    CHECK(text_hits("\xe8\xaf\xb7\xe8\x81\x94\xe7\xb3\xbbjane@example.com\xe8\xb0\xa2\xe8\xb0\xa2", "email") == 1);
    CHECK(text_hits("\xf0\x9f\x98\x80jane@example.com\xf0\x9f\x98\x80", "email") == 1);
    CHECK(text_hits("mail jane@\xe4\xbe\x8b\xe3\x81\x88.jp now", "email") == 1);
    CHECK(text_hits("icon@2x.png\xf0\x9f\x98\x80", "email") == 0);
}

static void test_phone(void)
{
    CHECK(text_hits("call (555) 123-4567 now", "phone") == 1);
    CHECK(text_hits("call 555-123-4567", "phone") == 1);
    CHECK(text_hits("+1 555 123 4567", "phone") == 1);
    CHECK(text_hits("ref 0012 3456 7890 1234 ok", "phone") == 0);
    CHECK(text_hits("ref 0049 3012 3456 7812", "phone") == 0);
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
    /* issue 17: dots and mixed separators */
    CHECK(text_hits("SSN 123.45.6789", "us_ssn") == 1);
    CHECK(text_hits("123-45 6789", "us_ssn") == 1);
    CHECK(text_hits("123 45.6789", "us_ssn") == 1);
    CHECK(text_hits("000.12.3456", "us_ssn") == 0);
    CHECK(text_hits("v123.45.6789.1", "us_ssn") == 0);
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

/* Country code and BBAN letters in any case; mod 97 reads them the same. */
static void test_iban_lower_case(void)
{
    CHECK(text_hits("gb82west12345698765432", "iban") == 1);
    CHECK(text_hits("gb82 west 1234 5698 7654 32", "iban") == 1);
    CHECK(text_hits("iban: Gb82West12345698765432.", "iban") == 1);
    CHECK(text_hits("de89 3704 0044 0532 0130 00", "iban") == 1);
    CHECK(text_hits("iban_gb82west12345698765432", "iban") == 1);
    CHECK(text_hits("gb82west12345698765433", "iban") == 0);   /* mod 97 */
    CHECK(text_hits("de89370400440532013", "iban") == 0);      /* length */
    CHECK(text_hits("xgb82west12345698765432", "iban") == 0);  /* glued to a word */
    CHECK(text_hits("7gb82west12345698765432", "iban") == 0);
    CHECK(text_hits("gb82west123456987654321", "iban") == 0);  /* longer token */
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
    CHECK(text_hits("Project  X-Ray", "codenames") == 1);
    CHECK(text_hits("Project\nX-Ray", "codenames") == 1);
    CHECK(text_hits("Project\tX-Ray", "codenames") == 1);
    CHECK(text_hits("PROJECT \r\n\t x-ray!", "codenames") == 1);
    CHECK(text_hits("ProjectX-Ray", "codenames") == 0);
    CHECK(text_hits("Project-X-Ray", "codenames") == 0);
    CHECK(text_hits("Project X-Rays", "codenames") == 0);
    CHECK(text_hits("subProject\nX-Ray", "codenames") == 0);
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

/* A text a user might hide in base64: an SSN, a card and an email. */
static const char secret_note[] =
    "Hi team, here are the details for the new account we discussed on Monday. "
    "The customer is Jane Doe, social security number 123-45-6789, and she asked "
    "us to bill the card 4111 1111 1111 1111, expiry 12/29. Please send the signed "
    "contract and the welcome pack to jane.doe@example.com before Friday, and copy "
    "the regional office so they can set up the account on their side. If anything "
    "is unclear, call me. Thanks again for handling this so quickly. Best, Tom.";

/* Base64 wrapped into lines (MIME at 76 columns, PEM at 64) is one blob
 * when the wrapped run holds 256+ characters; so is a base64url run. */
static void test_unreadable_wrapped_base64(void)
{
    char text[2048], *p;
    CHECK(strlen(secret_note) > 380);
    p = text + sprintf(text, "Decode this base64:\n");
    base64(p, secret_note, strlen(secret_note), "+/", 1, 76, "\n");
    struct classification c = chat(text);
    CHECK(c.unreadable == 1 && c.level == SECRET);

    base64(text, secret_note, strlen(secret_note), "+/", 1, 64, "\r\n");
    c = chat(text);
    CHECK(c.unreadable == 1 && c.level == SECRET);
    /* PEM armour around it, then more text */
    p = text + sprintf(text, "-----BEGIN MESSAGE-----\n");
    p = base64(p, secret_note, 300, "+/", 1, 64, "\n");
    strcpy(p, "\n-----END MESSAGE-----\nwhat does it say?");
    c = chat(text);
    CHECK(c.unreadable == 1 && c.level == SECRET);
    /* two blobs, told apart by a line of prose */
    p = base64(text, secret_note, 240, "+/", 1, 76, "\n");
    p += sprintf(p, "\nand the second one:\n");
    base64(p, secret_note + 100, 240, "+/", 1, 76, "\n");
    c = chat(text);
    CHECK(c.unreadable == 2);

    /* a short first line right after a line of prose, wherever the samples
     * fall: 30 + 3 x 76 + 2 characters, under 256 without the first line */
    for (int pre = 60; pre < 200; pre++) {
        memset(text, 'x', (size_t)pre);
        for (int i = 5; i < pre; i += 6)
            text[i] = ' ';
        p = text + pre;
        p += sprintf(p, " base64\n");
        char *b = p;
        base64(b, secret_note, 195, "+/", 0, 0, "");
        CHECK(strlen(b) == 260);
        memmove(b + 31, b + 30, 231);
        b[30] = '\n';
        p = b + 31;
        for (int line = 0; line < 3; line++) {
            memmove(p + 77, p + 76, strlen(p + 76) + 1);
            p[76] = '\n';
            p += 77;
        }
        classify_text(cls, text, strlen(text), &c);
        CHECK(c.unreadable == 1);
    }

    /* base64url of binary data (a '-' or '_' every 32 characters or so),
     * with and without padding, unbroken and wrapped */
    char bin[300];
    unsigned seed = 7;
    for (size_t i = 0; i < sizeof(bin); i++) {
        seed = seed * 1103515245u + 12345u;
        bin[i] = (char)(seed >> 16);
    }
    base64(text, bin, 200, "-_", 0, 0, "");
    CHECK(strchr(text, '-') && strchr(text, '_') && strlen(text) == 267);
    c = chat(text);
    CHECK(c.unreadable == 1 && c.level == SECRET);
    base64(text, bin, 250, "-_", 1, 0, "");
    classify_text(cls, text, strlen(text), &c);
    CHECK(c.unreadable == 1);
    base64(text, bin, 300, "-_", 1, 76, "\r\n");
    c = chat(text);
    CHECK(c.unreadable == 1);
}

static void test_readable_not_blobs(void)
{
    char text[4096], *p;
    /* three wrapped lines: 228 characters, under the 256 of a blob */
    base64(text, secret_note, 171, "+/", 1, 76, "\n");
    CHECK(chat(text).unreadable == 0);
    /* a long URL with a query string */
    p = text + sprintf(text, "see https://shop.example.com/search/results?category=garden-tools");
    for (int i = 0; i < 20; i++)
        p += sprintf(p, "&filter_%d=brand-%d_size-large", i, i * 7);
    CHECK(strlen(text) > 500);
    CHECK(chat(text).unreadable == 0);
    /* a URL slug or identifier dense with '-' and '_' */
    p = text;
    for (int i = 0; i < 30; i++)
        p += sprintf(p, "%s-%d_", i % 2 ? "section" : "part", i);
    CHECK(strlen(text) > 256);
    CHECK(chat(text).unreadable == 0);
    /* hex hashes under 256 characters, one per line, and a sha512 */
    CHECK(chat("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
               "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\n"
               "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae\n")
              .unreadable == 0);
    CHECK(chat("sha512: cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce"
               "47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e").unreadable == 0);
    /* prose and code wrapped at 76 columns */
    p = text;
    for (int i = 0; i < 12; i++)
        p += sprintf(p, "%s\n", i % 2 ? "The quarterly numbers look better than expected and the team is happy."
                                      : "for (int i = 0; i < n; i++) total += values[i] * weights[i]; // sum");
    CHECK(chat(text).unreadable == 0);
    /* rules of '-', '=' and '_' between headings */
    p = text;
    for (int i = 0; i < 8; i++) {
        memset(p, "-=_"[i % 3], 76);
        p += 76;
        p += sprintf(p, "\nHeading%d\n", i);
    }
    CHECK(chat(text).unreadable == 0);
    memset(text, '-', 300);
    text[300] = '\0';
    CHECK(chat(text).unreadable == 0);
}

/* A string that is not complete JSON but holds escapes is scanned once
 * more with them decoded. */
static void test_escapes_outside_json(void)
{
    /* truncated tool call arguments */
    struct classification c = request(
        "{\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"c1\",\"type\":\"function\","
        "\"function\":{\"name\":\"send\",\"arguments\":\"{\\\"to\\\":\\\"ann\\\\u0040corp.io\\\"\"}}]}]}");
    CHECK(find_hit(&c, "email") != NULL);
    c = chat("to: ann\\u0040corp.io");
    CHECK(find_hit(&c, "email") != NULL);
    c = chat("\\u0034111 1111 1111 1111");
    CHECK(find_hit(&c, "credit_card") != NULL);
    /* two-character escapes, a surrogate pair, invalid escapes left alone */
    c = chat("\\ud83d\\ude00 \\q \\u12 \\uZZZZ \\x41 ann\\u0040corp\\u002eio");
    CHECK(find_hit(&c, "email") != NULL);
    c = chat("a\\tb \\\"ann\\u0040corp.io\\\"\\n");
    CHECK(find_hit(&c, "email") != NULL);
    c = chat("Project\\nX-Ray");
    CHECK(find_hit(&c, "codenames") != NULL);
    /* three levels: \\\\u0040 -> \\u0040 -> \u0040 -> @ */
    c = chat("to: ann\\\\\\\\u0040corp.io");
    CHECK(find_hit(&c, "email") != NULL);
    /* a lone surrogate is left as it is; what follows is still decoded */
    c = chat("\\ud800 x \\u0034111111111111111");
    CHECK(find_hit(&c, "credit_card") != NULL);

    /* keys too */
    c = request("{\"metadata\":{\"ann\\\\u0040corp.io\":true}}");
    CHECK(find_hit(&c, "email") != NULL);
    c = request("{\"Project\\\\tX-Ray\":1}");
    CHECK(find_hit(&c, "codenames") != NULL);

    /* the decoded copy follows the string: "a\n" + 20 bytes + "\n" */
    c = request("{\"a\":\"to: ann\\\\u0040corp.io\"}");
    const struct detector_hit *h = find_hit(&c, "email");
    CHECK(h && h->count == 1 && h->n_offsets == 1 && h->offsets[0] == 27);
    /* nothing to decode: scanned once */
    c = request("{\"a\":\"x a@b.io \\\\w\"}");
    h = find_hit(&c, "email");
    CHECK(h && h->count == 1);
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
    RUN(test_iban_lower_case);
    RUN(test_keys);
    RUN(test_ipv4);
    RUN(test_glued_to_punctuation);
    RUN(test_keywords_and_regex);
    RUN(test_bad_regex);
    RUN(test_level_is_max);
    RUN(test_json_escapes);
    RUN(test_content_parts);
    RUN(test_unreadable);
    RUN(test_unreadable_wrapped_base64);
    RUN(test_readable_not_blobs);
    RUN(test_tool_calls);
    RUN(test_escapes_outside_json);
    RUN(test_embeddings);
    RUN(test_invalid_utf8);
    RUN(test_offsets);
    RUN(test_no_detectors);
    classifier_free(cls);
    classify_thread_release();
    TEST_DONE();
}
