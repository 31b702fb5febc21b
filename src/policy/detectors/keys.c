/* keys.c — the `secret_key` built-in: provider API keys (OpenAI sk-/sk-proj-,
 * Anthropic sk-ant-, AWS AKIA/ASIA, GitHub ghp_/gho_/ghs_/ghu_/github_pat_,
 * Slack xox?-, Google AIza), PEM private key blocks, JWTs, and high-entropy
 * values assigned to key/token/secret/password-like names. One pass over the
 * bytes that can anchor one of those: - _ A J = : */
#include <math.h>
#include "policy/detectors/detectors.h"

#define VALUE_MAX 512
#define NAME_MAX_LEN 64

static int b64url(unsigned char c) { return is_alnum(c) || c == '-' || c == '_'; }

/* A key may follow anything but a letter or digit: "aws_AKIA...",
 * "key_sk-..." are keys (when in doubt, sensitive). */
static int boundary_before(const unsigned char *s, size_t b)
{
    return b == 0 || !is_alnum(s[b - 1]);
}

static size_t run_of(const unsigned char *s, size_t n, size_t p, int (*ok)(unsigned char))
{
    while (p < n && ok(s[p]))
        p++;
    return p;
}

/* sk-..., sk-proj-..., sk-ant-api03-...: the '-' is at t. */
static size_t openai_like(const unsigned char *s, size_t n, size_t t, size_t *start)
{
    if (t < 2 || s[t - 2] != 's' || s[t - 1] != 'k' || !boundary_before(s, t - 2))
        return 0;
    size_t e = run_of(s, n, t + 1, b64url);
    if (e - t - 1 < 20)
        return 0;
    /* Random keys have a long stretch of mixed letters and digits; hyphenated
     * words (sk-learn-compatible-...) do not. */
    size_t best = 0, cur = 0;
    int digits = 0, letters = 0, upper = 0, lower = 0;
    for (size_t p = t + 1; p < e; p++) {
        if (is_alnum(s[p])) {
            cur++;
            digits += is_digit(s[p]);
            letters += is_alpha(s[p]);
            upper += is_upper(s[p]);
            lower += is_lower(s[p]);
        } else {
            cur = 0;
        }
        if (cur > best)
            best = cur;
    }
    /* Mixed case over a long run counts too: 1 random key in ~500 has fewer
     * than two digits (the leak test met one). */
    int mixed = digits >= 2 && letters >= 2;
    int cased = best >= 20 && upper >= 3 && lower >= 3;
    /* A body dense with '-' and '_' has short runs, but hyphenated words
     * never mix both cases and digits over 32 bytes. */
    int dense = e - t - 1 >= 32 && digits >= 2 && upper >= 3 && lower >= 3;
    if (!dense && (best < 16 || !(mixed || cased)))
        return 0;
    *start = t - 2;
    return e;
}

/* xoxb-, xoxa-, xoxp-, xoxr-, xoxs-: the '-' is at t. */
static size_t slack(const unsigned char *s, size_t n, size_t t, size_t *start)
{
    if (t < 4 || memcmp(s + t - 4, "xox", 3) != 0 || !s[t - 1] || !strchr("baprs", s[t - 1]) ||
        !boundary_before(s, t - 4))
        return 0;
    size_t e = t + 1;
    int digits = 0;
    while (e < n && (is_alnum(s[e]) || s[e] == '-')) {
        digits += is_digit(s[e]);
        e++;
    }
    if (e - t - 1 < 10 || digits < 4)
        return 0;
    *start = t - 4;
    return e;
}

/* -----BEGIN ... PRIVATE KEY----- (also PGP PRIVATE KEY BLOCK). */
static size_t pem(const unsigned char *s, size_t n, size_t t, size_t *start)
{
    if (n - t < 16 || memcmp(s + t, "-----BEGIN ", 11) != 0)
        return 0;
    size_t p = t + 11, lim = p + 48 < n ? p + 48 : n;
    while (p < lim && (is_upper(s[p]) || s[p] == ' '))
        p++;
    if (p + 5 > n || memcmp(s + p, "-----", 5) != 0)
        return 0;
    size_t label = p - (t + 11);
    if ((label >= 11 && memcmp(s + p - 11, "PRIVATE KEY", 11) == 0) ||
        (label >= 17 && memcmp(s + p - 17, "PRIVATE KEY BLOCK", 17) == 0)) {
        *start = t;
        return p + 5;
    }
    return 0;
}

/* ghp_/gho_/ghs_/ghu_/ghr_ + 30+ alphanumerics, or github_pat_...: '_' at t. */
static size_t github(const unsigned char *s, size_t n, size_t t, size_t *start)
{
    if (t >= 3 && s[t - 3] == 'g' && s[t - 2] == 'h' && s[t - 1] && strchr("posur", s[t - 1]) &&
        boundary_before(s, t - 3)) {
        size_t e = t + 1;
        while (e < n && is_alnum(s[e]))
            e++;
        if (e - t - 1 >= 30 && (e >= n || s[e] != '_')) {
            *start = t - 3;
            return e;
        }
    }
    if (t >= 6 && memcmp(s + t - 6, "github", 6) == 0 && n - t > 5 &&
        memcmp(s + t, "_pat_", 5) == 0 && boundary_before(s, t - 6)) {
        size_t e = t + 5;
        while (e < n && (is_alnum(s[e]) || s[e] == '_'))
            e++;
        if (e - t - 5 >= 22) {
            *start = t - 6;
            return e;
        }
    }
    return 0;
}

/* AWS access key ids (AKIA/ASIA/... + 16) and Google API keys (AIza + 35). */
static size_t aws_google(const unsigned char *s, size_t n, size_t t, size_t *start)
{
    static const char *const aws[] = { "AKIA", "ASIA", "AGPA", "AIDA", "AROA", "ANPA",
                                       "ANVA", "ABIA", "ACCA", NULL };
    if (n - t < 20 || !boundary_before(s, t))
        return 0;
    if (memcmp(s + t, "AIza", 4) == 0) {
        size_t e = run_of(s, n, t + 4, b64url);
        if (e - t - 4 == 35) {
            *start = t;
            return e;
        }
        return 0;
    }
    for (int i = 0; aws[i]; i++) {
        if (memcmp(s + t, aws[i], 4) != 0)
            continue;
        size_t e = t + 4;
        while (e < n && (is_upper(s[e]) || is_digit(s[e])) && e - t < 21)
            e++;
        if (e - t == 20 && (e >= n || !is_alnum(s[e]))) {
            *start = t;
            return e;
        }
        return 0;
    }
    return 0;
}

/* header.payload.signature, base64url, header starting eyJ ('J' at t). */
static size_t jwt(const unsigned char *s, size_t n, size_t t, size_t *start)
{
    if (t < 2 || s[t - 2] != 'e' || s[t - 1] != 'y' || !(t == 2 || !is_alnum(s[t - 3])))
        return 0;
    size_t e1 = run_of(s, n, t, b64url);
    if (e1 - t < 8 || e1 >= n || s[e1] != '.')
        return 0;
    size_t e2 = run_of(s, n, e1 + 1, b64url);
    if (e2 - e1 - 1 < 10 || e2 >= n || s[e2] != '.')
        return 0;
    size_t e3 = run_of(s, n, e2 + 1, b64url);
    *start = t - 2;
    return e3;
}

enum name_kind { NAME_NONE, NAME_KEY, NAME_PASSWORD };

/* The last word of an identifier (API_KEY -> key, apiKey -> key, db.password
 * -> password) decides whether its value is a secret. */
static enum name_kind classify_name(const unsigned char *s, size_t ns, size_t ne)
{
    size_t b = ne;
    if (b > ns && is_upper(s[b - 1])) {
        while (b > ns && (is_upper(s[b - 1]) || is_digit(s[b - 1])))
            b--;
    } else {
        while (b > ns && (is_lower(s[b - 1]) || is_digit(s[b - 1])))
            b--;
        if (b > ns && is_upper(s[b - 1]))
            b--;
    }
    size_t len = ne - b;
    static const struct { const char *word; unsigned char len; enum name_kind kind; } names[] = {
        { "key", 3, NAME_KEY }, { "apikey", 6, NAME_KEY }, { "token", 5, NAME_KEY },
        { "secret", 6, NAME_KEY }, { "auth", 4, NAME_KEY }, { "authorization", 13, NAME_KEY },
        { "credential", 10, NAME_KEY }, { "credentials", 11, NAME_KEY }, { "bearer", 6, NAME_KEY },
        { "password", 8, NAME_PASSWORD }, { "passwd", 6, NAME_PASSWORD }, { "pwd", 3, NAME_PASSWORD },
        { "pass", 4, NAME_PASSWORD }, { "passphrase", 10, NAME_PASSWORD }, { "pw", 2, NAME_PASSWORD },
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (names[i].len == len && starts_with_ci(s, b, ne, names[i].word))
            return names[i].kind;
    return NAME_NONE;
}

static int placeholder(const unsigned char *v, size_t len)
{
    static const char *const marks[] = { "your", "xxx", "example", "placeholder", "changeme",
                                         "redacted", "dummy", "***", "...", "${", "{{", "%s",
                                         "<", "replace", NULL };
    for (size_t p = 0; p < len; p++)
        for (int i = 0; marks[i]; i++)
            if (to_lower(v[p]) == (unsigned char)marks[i][0] && starts_with_ci(v, p, len, marks[i]))
                return 1;
    return 0;
}

static double entropy(const unsigned char *v, size_t len)
{
    unsigned counts[256] = { 0 };
    for (size_t i = 0; i < len; i++)
        counts[v[i]]++;
    double h = 0;
    for (int c = 0; c < 256; c++) {
        if (counts[c]) {
            double p = (double)counts[c] / (double)len;
            h -= p * log2(p);
        }
    }
    return h;
}

static int value_is_secret(enum name_kind kind, const unsigned char *v, size_t len, int quoted)
{
    int digits = 0, letters = 0, upper = 0, symbols = 0, spaces = 0, ident = 1;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = v[i];
        digits += is_digit(c);
        letters += is_alpha(c);
        upper += is_upper(c);
        spaces += c == ' ';
        if (!is_alnum(c) && c != ' ')
            symbols++;
        if (!(is_alpha(c) || c == '_' || c == '.'))
            ident = 0;
    }
    if ((ident && !quoted) || placeholder(v, len) || strchr("$<{%[(*", v[0]))
        return 0;
    if (kind == NAME_PASSWORD)
        return len >= 6 && spaces == 0 && (digits > 0 || symbols > 0);
    if (len < 16 || spaces || letters < 2)
        return 0;
    /* random keys: digits and letters, or (base64 without digits) both cases */
    double h = entropy(v, len);
    if (digits >= 2)
        return h >= 3.0;
    return upper >= 2 && letters - upper >= 2 && len >= 20 && h >= 3.5;
}

static int value_stop(unsigned char c)
{
    switch (c) {
    case ' ': case '\t': case ',': case ';': case '(': case ')': case '[': case ']':
    case '&': case '"': case '\'': case '<': case '>': case '}': case '\0':
        return 1;
    default:
        return 0;
    }
}

/* name = value, name: value, "name": "value" ('=' or ':' at t). */
static size_t assignment(const unsigned char *s, size_t n, size_t t, size_t *start)
{
    if (t + 1 < n && (s[t + 1] == '=' || (s[t] == ':' && s[t + 1] == ':')))
        return 0;
    if (t > 0 && (s[t - 1] == '=' || s[t - 1] == '!' || s[t - 1] == '<' || s[t - 1] == '>' || s[t - 1] == ':'))
        return 0;       /* ==, !=, <=, >=, :: are no assignments */
    size_t p = t;
    while (p > 0 && s[p - 1] == ' ' && t - p < 4)
        p--;
    if (p > 0 && (s[p - 1] == '"' || s[p - 1] == '\''))
        p--;
    size_t ne = p, ns = p;
    while (ns > 0 && ne - ns < NAME_MAX_LEN &&
           (is_alnum(s[ns - 1]) || s[ns - 1] == '_' || s[ns - 1] == '-' || s[ns - 1] == '.'))
        ns--;
    if (ns == ne)
        return 0;
    enum name_kind kind = classify_name(s, ns, ne);
    if (kind == NAME_NONE)
        return 0;

    size_t v = t + 1;
    while (v < n && s[v] == ' ' && v - t < 4)
        v++;
    if (starts_with_ci(s, v, n, "bearer ") || starts_with_ci(s, v, n, "token "))
        v += s[v] == 'b' || s[v] == 'B' ? 7 : 6;
    else if (starts_with_ci(s, v, n, "basic "))
        v += 6;
    int quoted = 0;
    unsigned char q = 0;
    if (v < n && (s[v] == '"' || s[v] == '\'' || s[v] == '`')) {
        q = s[v++];
        quoted = 1;
    }
    size_t e = v;
    while (e < n && e - v < VALUE_MAX && s[e] != '\n' && s[e] != '\r') {
        if (quoted ? s[e] == q : value_stop(s[e]))
            break;
        /* unquoted, '=' or ':' before a letter or digit starts the next
         * assignment (a=b:token=...); base64's '==' and URLs' :// do not.
         * It also keeps "KEY=KEY=KEY..." linear: each value ends at the
         * next '=' instead of running VALUE_MAX bytes. */
        if (!quoted && e > v && (s[e] == '=' || s[e] == ':') && e + 1 < n && is_alnum(s[e + 1]))
            break;
        e++;
    }
    if (e == v || (quoted && (e >= n || s[e] != q)))
        return 0;
    if (!value_is_secret(kind, s + v, e - v, quoted))
        return 0;
    *start = ns;
    return e;
}

/* Cheap tests on the bytes around a trigger before any real work. */
static int worth_a_look(const unsigned char *s, size_t n, size_t i)
{
    unsigned char c;
    switch (s[i]) {
    case '-':
        return (i + 1 < n && s[i + 1] == '-') || (i >= 2 && s[i - 1] == 'k' && s[i - 2] == 's') ||
               (i >= 4 && s[i - 3] == 'o' && s[i - 4] == 'x');
    case '_':
        return i >= 3 && ((s[i - 2] == 'h' && s[i - 3] == 'g') || s[i - 1] == 'b');
    case 'A':
        return i + 1 < n && (s[i + 1] == 'K' || s[i + 1] == 'S' || s[i + 1] == 'I' ||
                             s[i + 1] == 'G' || s[i + 1] == 'R' || s[i + 1] == 'N' ||
                             s[i + 1] == 'B' || s[i + 1] == 'C');
    case 'J':
        return i >= 2 && s[i - 1] == 'y' && s[i - 2] == 'e';
    default:
        /* the name before '=' / ':' must end like one classify_name knows:
         * its last two letters, of key, apikey, token, authorization,
         * secret, auth, credential(s), pass, bearer, password, passwd, pwd,
         * passphrase, pw */
        for (int skip = 0; skip < 5 && i > 0 && (s[i - 1] == ' ' || s[i - 1] == '"' || s[i - 1] == '\''); skip++)
            i--;
        if (i < 2)
            return 0;
        c = to_lower(s[i - 1]);
        unsigned char b = to_lower(s[i - 2]);
        switch (c) {
        case 'y': return b == 'e';
        case 'n': return b == 'e' || b == 'o';
        case 't': return b == 'e';
        case 'h': return b == 't';
        case 'l': return b == 'a';
        case 's': return b == 'l' || b == 's';
        case 'r': return b == 'e';
        case 'd': return b == 'r' || b == 'w';
        case 'e': return b == 's';
        case 'w': return b == 'p';
        default: return 0;
        }
    }
}

void detect_keys(const unsigned char *s, size_t n, const struct hit_sink *k)
{
    size_t i = 0;
    while ((i = next_of6(s, i, n, '-', '_', 'A', 'J', '=', ':')) < n) {
        size_t start = 0, end = 0;
        if (!worth_a_look(s, n, i)) {
            i++;
            continue;
        }
        switch (s[i]) {
        case '-':
            end = pem(s, n, i, &start);
            if (!end)
                end = openai_like(s, n, i, &start);
            if (!end)
                end = slack(s, n, i, &start);
            break;
        case '_':
            end = github(s, n, i, &start);
            break;
        case 'A':
            end = aws_google(s, n, i, &start);
            break;
        case 'J':
            end = jwt(s, n, i, &start);
            break;
        default:
            end = assignment(s, n, i, &start);
            break;
        }
        if (end) {
            sink_hit(k, start, end);
            i = end;
        } else {
            i++;
        }
    }
}
