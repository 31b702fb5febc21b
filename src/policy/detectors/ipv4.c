/* ipv4.c — the `ipv4` built-in: dotted quads a.b.c.d, each octet 0-255
 * without leading zeros. Not when part of a longer dotted sequence (versions
 * like 1.2.3.4.5), glued to letters or digits (v1.2.3.4), or announced as a
 * version ("version 1.2.3.4"). */
#include "policy/detectors/detectors.h"

/* Reads one octet at p; returns its end or 0. */
static size_t octet(const unsigned char *s, size_t n, size_t p)
{
    size_t q = p;
    unsigned v = 0;
    while (q < n && is_digit(s[q]) && q - p < 4) {
        v = v * 10 + (unsigned)(s[q] - '0');
        q++;
    }
    if (q == p || q - p > 3 || v > 255 || (q - p > 1 && s[p] == '0'))
        return 0;
    return q;
}

static int version_label(const unsigned char *s, size_t b)
{
    size_t p = b;
    while (p > 0 && (s[p - 1] == ' ' || s[p - 1] == ':') && b - p < 3)
        p--;
    if (p == b)
        return 0;
    static const char *const words[] = { "version", "release", "build", "ver", NULL };
    for (int i = 0; words[i]; i++) {
        size_t wl = strlen(words[i]);
        if (p >= wl && starts_with_ci(s, p - wl, p, words[i]) &&
            (p == wl || !is_alpha(s[p - wl - 1])))
            return 1;
    }
    return 0;
}

/* An address starting at the digit b? Returns its end or 0. */
size_t ipv4_at(const unsigned char *s, size_t n, size_t b)
{
    if (b > 0 && (is_alnum(s[b - 1]) || s[b - 1] == '.'))
        return 0;
    size_t p = b;
    int parts = 0;
    while (parts < 4) {
        size_t q = octet(s, n, p);
        if (!q)
            return 0;
        parts++;
        p = q;
        if (parts < 4) {
            if (p + 1 >= n || s[p] != '.' || !is_digit(s[p + 1]))
                return 0;
            p++;
        }
    }
    if (p < n && (is_alnum(s[p]) || (s[p] == '.' && p + 1 < n && is_digit(s[p + 1]))))
        return 0;
    return version_label(s, b) ? 0 : p;
}
