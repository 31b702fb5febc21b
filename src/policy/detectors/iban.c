/* iban.c — the `iban` built-in: country code, two check digits and the
 * BBAN, compact (GB82WEST12345698765432) or in groups of four separated by
 * single spaces. Accepted only at the exact length registered for the country
 * and when the ISO 13616 mod-97 check gives 1. Letters may be in either case
 * (gb82west...): mod 97 reads them the same. Anchored on digits preceded by
 * two letters that no letter or digit touches. */
#include "policy/detectors/detectors.h"

#define IBAN_MAX 34

/* Upper-case country code followed by the IBAN length (SWIFT registry),
 * sorted: every two letters before a digit are looked up. */
static const char lengths[] =
    "AD24AE23AL28AT20AZ28BA20BE16BG22BH22BI27BR29BY28CH21CR22CY28CZ24DE22DJ27"
    "DK18DO28EE20EG29ES24FI18FK18FO18FR27GB22GE22GI23GL18GR27GT28HR21HU28IE22"
    "IL23IQ23IS26IT27JO30KW30KZ20LB28LC32LI21LT20LU20LV21LY25MC27MD24ME22MK19"
    "MN20MR27MT31MU30NI28NL18NO15OM23PK24PL28PS29PT25QA29RO24RS22RU33SA24SC31"
    "SD18SE24SI19SK24SM27SO23ST25SV28TL23TN24TR26UA29VA22VG24XK20YE30";

static int country_length(unsigned char a, unsigned char b)
{
    size_t lo = 0, hi = (sizeof(lengths) - 1) / 4;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const unsigned char *p = (const unsigned char *)lengths + mid * 4;
        int cmp = p[0] != a ? p[0] - a : p[1] - b;
        if (cmp == 0)
            return (p[2] - '0') * 10 + (p[3] - '0');
        if (cmp < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return 0;
}

/* ISO 13616: move the first four characters to the end, letters -> 10..35. */
static int mod97_ok(const unsigned char *iban, int len)
{
    unsigned r = 0;
    for (int i = 0; i < len; i++) {
        unsigned char c = iban[(i + 4) % len];
        if (is_digit(c))
            r = (r * 10 + (unsigned)(c - '0')) % 97;
        else
            r = (r * 100 + (unsigned)(c - 'A' + 10)) % 97;
    }
    return r == 1;
}

/* Reads an IBAN whose country code starts at b; returns its end or 0. */
static size_t read_iban(const unsigned char *s, size_t n, size_t b)
{
    int want = country_length(to_upper(s[b]), to_upper(s[b + 1]));
    if (!want)
        return 0;
    unsigned char iban[IBAN_MAX];
    int len = 0;
    size_t p = b;
    while (len < want && p < n) {
        unsigned char c = s[p];
        if (c == ' ' && len > 0 && len % 4 == 0 && p + 1 < n && is_alnum(s[p + 1]) &&
            s[p - 1] != ' ') {
            p++;
            continue;
        }
        c = to_upper(c);
        if (!is_upper(c) && !is_digit(c))
            return 0;
        if (len >= 2 && len < 4 && !is_digit(c))
            return 0;
        iban[len++] = c;
        p++;
    }
    if (len != want || (p < n && is_alnum(s[p])))
        return 0;
    return mod97_ok(iban, len) ? p : 0;
}

/* An IBAN whose check digits start at the digit i? Returns its end (and
 * start, two bytes before i) or 0. */
size_t iban_at(const unsigned char *s, size_t n, size_t i, size_t *start)
{
    if (i < 2 || !is_alpha(s[i - 2]) || !is_alpha(s[i - 1]))
        return 0;
    size_t b = i - 2;
    if (b > 0 && is_alnum(s[b - 1]))
        return 0;
    *start = b;
    return read_iban(s, n, b);
}
