/* phone.c — the `phone` built-in: international numbers (+CC or 00CC, 8-15
 * digits) and the common national shapes (US 555-123-4567 / (555) 123-4567,
 * trunk-prefixed European numbers: UK 020 7946 0958, DE 030 12345678, FR
 * 01 42 68 53 00). A number is read as digit groups and accepted only when
 * the groups have one of those shapes, so dates, times, versions, decimals,
 * order numbers and plain digit runs stay out. */
#include "policy/detectors/detectors.h"

#define MAX_GROUPS 12

struct number {
    int plus;                   /* began with '+' */
    int paren;                  /* index of the parenthesized group, or -1 */
    int ng;
    int len[MAX_GROUPS];        /* digits per group */
    size_t gstart[MAX_GROUPS];  /* offset of each group's first digit */
    size_t gend[MAX_GROUPS];    /* offset just past each group (incl. ')') */
    unsigned char sep[MAX_GROUPS];  /* separator before group g (0 for g == 0) */
};

static int is_sep(unsigned char c)
{
    return c == ' ' || c == '-' || c == '.' || c == '/';
}

/* Reads digit groups from p (at '+', '(' or a digit). Returns 0 if none. */
static int read_number(const unsigned char *s, size_t n, size_t p, struct number *num)
{
    num->plus = 0;
    num->paren = -1;
    num->ng = 0;
    if (s[p] == '+') {
        num->plus = 1;
        p++;
    }
    unsigned char sep = 0;
    while (p < n && num->ng < MAX_GROUPS) {
        int g = num->ng, paren = 0;
        size_t q = p;
        if (s[q] == '(' && num->paren < 0) {
            paren = 1;
            q++;
        }
        size_t d = q;
        while (q < n && is_digit(s[q]) && q - d < 16)
            q++;
        if (q == d || (q < n && is_digit(s[q])))
            break;
        if (paren) {
            if (q >= n || s[q] != ')')
                break;
            num->paren = g;
        }
        num->len[g] = (int)(q - d);
        num->gstart[g] = d;
        num->gend[g] = q + (size_t)paren;
        num->sep[g] = sep;
        num->ng++;
        p = q + (size_t)paren;
        if (p >= n)
            break;
        sep = 0;
        if (paren && s[p] == ' ') {
            sep = ' ';
            p++;
        } else if (is_sep(s[p]) && p + 1 < n) {
            sep = s[p];
            p++;
        } else if (paren) {
            sep = ')';
        }
        if (p >= n || !(is_digit(s[p]) || (s[p] == '(' && num->paren < 0)))
            break;
    }
    return num->ng;
}

static int total_digits(const struct number *num, int k)
{
    int t = 0;
    for (int g = 0; g < k; g++)
        t += num->len[g];
    return t;
}

static int seps_all(const struct number *num, int from, int k, unsigned char c)
{
    for (int g = from; g < k; g++)
        if (num->sep[g] != c)
            return 0;
    return 1;
}

/* +CC groups..., or 00CC groups... (`skip` leading digits of the 00). */
static int international(const struct number *num, int k, int skip)
{
    int t = total_digits(num, k) - skip;
    if (t < 8 || t > 15)
        return 0;
    if (k == 1)
        return 1;
    if (num->len[0] - skip > 4 || num->len[0] - skip < 1)
        return 0;
    for (int g = 1; g < k; g++) {
        if (num->sep[g] == '/')
            return 0;
        /* a one-digit area code may follow the country code (+61 2, +33 6) */
        if (num->len[g] < 2 && g != 1 && !(g == num->paren && num->len[g] == 1))
            return 0;
    }
    return 1;
}

static int us_shape(const struct number *num, int k, const unsigned char *s)
{
    int f = 0;
    if (k == 4 && num->len[0] == 1 && s[num->gstart[0]] == '1' && num->paren != 0)
        f = 1;
    if (k - f != 3 || num->len[f] != 3 || num->len[f + 1] != 3 || num->len[f + 2] != 4)
        return 0;
    unsigned char a = s[num->gstart[f]];
    if (a < '2')
        return 0;
    if (num->paren == f)
        return num->sep[f + 2] == '-' || num->sep[f + 2] == ' ' || num->sep[f + 2] == '.';
    if (num->paren >= 0)
        return 0;
    unsigned char c = num->sep[f + 1];
    return (c == '-' || c == '.' || c == ' ') && seps_all(num, f + 1, k, c) &&
           (f == 0 || num->sep[1] == c || num->sep[1] == ' ');
}

/* Trunk-prefixed national numbers (0...), grouped: 020 7946 0958, 0151-1234567. */
static int national_shape(const struct number *num, int k, const unsigned char *s)
{
    if (k < 2 || s[num->gstart[0]] != '0' || num->len[0] < 2 || num->len[0] > 5)
        return 0;
    int t = total_digits(num, k);
    if (t < 9 || t > 12)
        return 0;
    int dots = 0;
    for (int g = 1; g < k; g++) {
        if (num->len[g] < 2)
            return 0;
        if (num->sep[g] == '.')
            dots++;
        if (num->sep[g] == '/' && g != 1)
            return 0;
    }
    if (dots && (dots != k - 1 || k < 4))
        return 0;
    return 1;
}

static int shape_ok(const struct number *num, int k, const unsigned char *s)
{
    if (num->plus)
        return international(num, k, 0);
    if (num->paren < 0 && num->len[0] >= 3 && s[num->gstart[0]] == '0' &&
        s[num->gstart[0] + 1] == '0' && s[num->gstart[0] + 2] != '0')
        return international(num, k, 2);
    return us_shape(num, k, s) || national_shape(num, k, s);
}

/* What follows a candidate ending at e must not continue it. */
static int right_ok(const unsigned char *s, size_t n, size_t e, int full)
{
    if (e >= n)
        return 1;
    unsigned char c = s[e];
    if (is_alnum(c) || c == '@')
        return 0;
    if (!full)
        return c == ' ';
    if ((c == '-' || c == '.' || c == '/' || c == ':' || c == '+') && e + 1 < n && is_digit(s[e + 1]))
        return 0;
    return 1;
}

/* What precedes a candidate starting at b must not make it part of a token. */
/* A phone number around the digit run starting at i (it may begin one byte
 * earlier, at '+' or '(')? Returns its end and start, or 0. */
size_t phone_at(const unsigned char *s, size_t n, size_t i, size_t *start)
{
    struct number num;
    size_t b = i;
    if (b > 0 && (s[b - 1] == '+' || s[b - 1] == '('))
        b--;
    for (;;) {
        /* Four groups of four without '+' are card-shaped, not a phone,
         * nor is any prefix of them (issue 17). */
        if (number_left_ok(s, b) && read_number(s, n, b, &num) &&
            !(!num.plus && num.ng == 4 && num.len[0] == 4 && num.len[1] == 4 &&
              num.len[2] == 4 && num.len[3] == 4)) {
            for (int g = num.ng; g >= 1; g--) {
                if (shape_ok(&num, g, s) && right_ok(s, n, num.gend[g - 1], g == num.ng)) {
                    *start = b;
                    return num.gend[g - 1];
                }
            }
        }
        if (b == i || s[b] != '(')
            return 0;
        b = i;      /* "(555 123 4567)": the parenthesis encloses the number */
    }
}
