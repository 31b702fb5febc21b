/* blob.c — content the classifier cannot read inside text: long base64-looking
 * runs (>= 256 bytes of [A-Za-z0-9+/=], no spaces, mixing at least two of
 * upper case, lower case and digits, so "=====" rules and long words stay out).
 * Sampled every 128 bytes: a run that long must cover one of the samples. */
#include "policy/detectors/detectors.h"

#define BLOB_MIN 256
#define STRIDE 128

static int b64(unsigned char c) { return is_alnum(c) || c == '+' || c == '/' || c == '='; }

unsigned detect_blobs(const unsigned char *s, size_t n, const struct hit_sink *k)
{
    unsigned count = 0;
    size_t done = 0;    /* everything before this has been examined */
    for (size_t p = STRIDE - 1; p < n; p += STRIDE) {
        if (p < done || !b64(s[p]))
            continue;
        size_t a = p, e = p + 1;
        while (a > done && b64(s[a - 1]))
            a--;
        while (e < n && b64(s[e]))
            e++;
        done = e;
        if (e - a < BLOB_MIN)
            continue;
        int up = 0, low = 0, dig = 0;
        for (size_t q = a; q < e && !(up && low && dig); q++) {
            up |= is_upper(s[q]);
            low |= is_lower(s[q]);
            dig |= is_digit(s[q]);
        }
        if (up + low + dig < 2)
            continue;
        count++;
        if (k)
            sink_hit(k, a, e);
    }
    return count;
}
