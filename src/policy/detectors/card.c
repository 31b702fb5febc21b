/* card.c — the `credit_card` built-in: 13-19 digits, plain or grouped with
 * spaces or dashes, accepted only when the Luhn check passes and the leading
 * digits (IIN) and length belong to a known scheme (Visa, Mastercard, Amex,
 * Discover, JCB, Diners, UnionPay, Maestro, Mir). */
#include "policy/detectors/detectors.h"

#define CARD_MIN 13
#define CARD_MAX 19
#define MAX_GROUPS 8

int luhn_valid(const unsigned char *digits, size_t n)
{
    unsigned sum = 0;
    int dbl = 0;
    for (size_t i = n; i-- > 0;) {
        unsigned d = (unsigned)(digits[i] - '0');
        if (dbl) {
            d *= 2;
            if (d > 9)
                d -= 9;
        }
        sum += d;
        dbl = !dbl;
    }
    return n > 0 && sum % 10 == 0;
}

static unsigned prefix(const unsigned char *d, int k)
{
    unsigned v = 0;
    for (int i = 0; i < k; i++)
        v = v * 10 + (unsigned)(d[i] - '0');
    return v;
}

/* Is a number of `len` digits with these leading digits a known card? */
static int known_iin(const unsigned char *d, int len)
{
    unsigned p1 = prefix(d, 1), p2 = prefix(d, 2), p3 = prefix(d, 3), p4 = prefix(d, 4),
             p6 = prefix(d, 6);
    if (p1 == 4)                                         /* Visa */
        return len == 13 || len == 16 || len == 19;
    if ((p2 >= 51 && p2 <= 55) || (p4 >= 2221 && p4 <= 2720))   /* Mastercard */
        return len == 16;
    if (p4 >= 2200 && p4 <= 2204)                        /* Mir */
        return len >= 16 && len <= 19;
    if (p2 == 34 || p2 == 37)                            /* Amex */
        return len == 15;
    if (p4 == 6011 || (p3 >= 644 && p3 <= 649) || p2 == 65 ||
        (p6 >= 622126 && p6 <= 622925))                  /* Discover */
        return len >= 16 && len <= 19;
    if (p4 >= 3528 && p4 <= 3589)                        /* JCB */
        return len >= 16 && len <= 19;
    if (p2 == 36)                                        /* Diners */
        return len == 14;
    if ((p3 >= 300 && p3 <= 305) || p2 == 38 || p2 == 39)
        return len == 14 || len == 16;
    if (p2 == 62)                                        /* UnionPay */
        return len >= 16 && len <= 19;
    if (p4 == 5018 || p4 == 5020 || p4 == 5038 || p4 == 5893 || p4 == 6304 ||
        p4 == 6759 || (p4 >= 6761 && p4 <= 6763) || p2 == 50 || (p2 >= 56 && p2 <= 58) ||
        p2 == 63 || p2 == 67)                            /* Maestro */
        return len >= 13 && len <= 19;
    return 0;
}

/* A card may follow anything but a letter or digit (it would be part of a
 * longer token) or a decimal point after a digit (0.4111... is a fraction):
 * the Luhn and IIN checks carry the rest, so "Jane,4111...", "pay/4111...",
 * "cc_4111..." are cards. */
static int left_ok(const unsigned char *s, size_t b)
{
    if (b == 0)
        return 1;
    unsigned char c = s[b - 1];
    if (is_alnum(c))
        return 0;
    if (c == '.' && b >= 2 && is_digit(s[b - 2]))
        return 0;
    return 1;
}

static int right_ok(const unsigned char *s, size_t n, size_t e, int full)
{
    if (e >= n)
        return 1;
    unsigned char c = s[e];
    if (is_alnum(c))
        return 0;
    if (!full)
        return c == ' ';
    if (c == '.' && e + 1 < n && is_digit(s[e + 1]))
        return 0;       /* 4111...1111.5 is a decimal; a ',' or '/' ends it */
    return 1;
}

/* A card starting at the digit run [i, run_end)? Returns its end or 0. */
size_t card_at(const unsigned char *s, size_t n, size_t i, size_t run_end)
{
    unsigned char digits[CARD_MAX + 8];
    if (!left_ok(s, i) || run_end - i > CARD_MAX || (run_end - i < CARD_MIN && run_end - i != 4))
        return 0;
    /* Groups: one plain run, or a 4-digit first group then groups of 1-6
     * digits joined by one kind of separator. */
    int ng = 0, nd = 0;
    int cum[MAX_GROUPS];
    size_t gend[MAX_GROUPS];
    unsigned char sep = 0;
    size_t p = i;
    while (ng < MAX_GROUPS) {
        size_t q = p;
        while (q < n && is_digit(s[q]) && nd + (int)(q - p) < CARD_MAX + 1)
            q++;
        int len = (int)(q - p);
        if ((ng > 0 && len > 6) || (q < n && is_digit(s[q])))
            break;
        memcpy(digits + nd, s + p, (size_t)len);
        nd += len;
        cum[ng] = nd;
        gend[ng] = q;
        ng++;
        if (nd > CARD_MAX || q + 1 >= n || !is_digit(s[q + 1]))
            break;
        if (s[q] != ' ' && s[q] != '-')
            break;
        if (sep && s[q] != sep)
            break;
        if (ng == 1 && len != 4)
            break;
        sep = s[q];
        p = q + 1;
    }
    for (int g = ng; g >= 1; g--) {
        if (cum[g - 1] < CARD_MIN || cum[g - 1] > CARD_MAX)
            continue;
        /* 16 digits then a 3-digit group may be one 19-digit number, or a
         * card and its CVV: when in doubt, a card (fail closed; the leak
         * test found "card 4475 9928 1359 2694 093" getting through). */
        if (known_iin(digits, cum[g - 1]) && luhn_valid(digits, (size_t)cum[g - 1]) &&
            right_ok(s, n, gend[g - 1], g == ng))
            return gend[g - 1];
    }
    return 0;
}
