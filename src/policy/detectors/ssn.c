/* ssn.c — the `us_ssn` built-in: AAA-GG-SSSS (each separator a dash, space
 * or dot, mixed allowed: 123.45.6789, 123-45 6789), or nine
 * plain digits right after an "SSN" / "social security" label. Numbers the
 * SSA never issues are rejected: area 000, 666 or 900-999, group 00, serial
 * 0000. */
#include "policy/detectors/detectors.h"

#define LABEL_WINDOW 24

static int issued(const unsigned char *a, const unsigned char *g, const unsigned char *sr)
{
    unsigned area = (unsigned)((a[0] - '0') * 100 + (a[1] - '0') * 10 + (a[2] - '0'));
    if (area == 0 || area == 666 || area >= 900)
        return 0;
    if (g[0] == '0' && g[1] == '0')
        return 0;
    return !(sr[0] == '0' && sr[1] == '0' && sr[2] == '0' && sr[3] == '0');
}

static int ssn_sep(unsigned char c)
{
    return c == '-' || c == ' ' || c == '.';
}

static int right_ok(const unsigned char *s, size_t n, size_t e)
{
    if (e >= n)
        return 1;
    unsigned char c = s[e];
    if (is_alnum(c))
        return 0;
    if ((c == '-' || c == '.' || c == '/' || c == ':') && e + 1 < n && is_digit(s[e + 1]))
        return 0;
    return 1;
}

/* Is there an "ssn" or "social security" label just before b? */
static int labelled(const unsigned char *s, size_t b)
{
    size_t from = b > LABEL_WINDOW ? b - LABEL_WINDOW : 0;
    for (size_t p = from; p < b; p++) {
        unsigned char c = to_lower(s[p]);
        if (c == 's' && (p == 0 || !is_alpha(s[p - 1])) &&
            (starts_with_ci(s, p, b, "ssn") || starts_with_ci(s, p, b, "social security")))
            return 1;
    }
    return 0;
}

/* An SSN starting at the digit run [i, run_end)? Returns its end or 0. */
size_t ssn_at(const unsigned char *s, size_t n, size_t i, size_t run_end)
{
    size_t len = run_end - i;
    if (!number_left_ok(s, i) && !labelled(s, i))
        return 0;
    if (len == 3 && run_end + 8 <= n) {
        const unsigned char *p = s + i;
        if (ssn_sep(p[3]) && is_digit(p[4]) && is_digit(p[5]) && ssn_sep(p[6]) &&
            is_digit(p[7]) && is_digit(p[8]) && is_digit(p[9]) && is_digit(p[10]) &&
            issued(p, p + 4, p + 7) && right_ok(s, n, i + 11))
            return i + 11;
    } else if (len == 9 && right_ok(s, n, run_end) && labelled(s, i) &&
               issued(s + i, s + i + 3, s + i + 5)) {
        return run_end;
    }
    return 0;
}
