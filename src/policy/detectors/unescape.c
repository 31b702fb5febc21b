/* unescape.c — JSON's backslash escapes decoded in text that is no JSON: a
 * truncated tool call, or a string quoting an escaped one, which a model still
 * reads as the characters they stand for. The classifier scans such text a
 * second time decoded (classify.c); nothing here allocates. */
#include "policy/detectors/detectors.h"

static int hex_digit(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* The UTF-16 code unit of the escape "\uXXXX" at s[i], or -1. */
static long utf16_escape(const unsigned char *s, size_t n, size_t i)
{
    if (i + 6 > n || s[i] != '\\' || s[i + 1] != 'u')
        return -1;
    long v = 0;
    for (size_t k = i + 2; k < i + 6; k++) {
        int d = hex_digit(s[k]);
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

static size_t put_utf8(unsigned char *o, unsigned long cp)
{
    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xc0 | cp >> 6);
        o[1] = (unsigned char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xe0 | cp >> 12);
        o[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
        o[2] = (unsigned char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (unsigned char)(0xf0 | cp >> 18);
    o[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3f));
    o[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
    o[3] = (unsigned char)(0x80 | (cp & 0x3f));
    return 4;
}

/* Decodes the escape at s[i] (a backslash) into o: returns how many bytes of
 * s it stood for and sets *out_len, or returns 0 when it is no valid escape. */
static size_t decode_escape(const unsigned char *s, size_t n, size_t i, unsigned char *o,
                            size_t *out_len)
{
    static const char from[] = "nrtbf\"\\/", to[] = "\n\r\t\b\f\"\\/";
    if (i + 1 >= n)
        return 0;
    const char *simple = s[i + 1] ? strchr(from, s[i + 1]) : NULL;
    if (simple) {
        o[0] = (unsigned char)to[simple - from];
        *out_len = 1;
        return 2;
    }
    long hi = utf16_escape(s, n, i);
    if (hi < 0 || (hi >= 0xdc00 && hi <= 0xdfff))
        return 0;
    if (hi < 0xd800 || hi > 0xdbff) {
        *out_len = put_utf8(o, (unsigned long)hi);
        return 6;
    }
    long lo = utf16_escape(s, n, i + 6);
    if (lo < 0xdc00 || lo > 0xdfff)
        return 0;
    *out_len = put_utf8(o, 0x10000 + ((unsigned long)(hi - 0xd800) << 10) + (unsigned long)(lo - 0xdc00));
    return 12;
}

size_t unescape_text(const unsigned char *s, size_t n, unsigned char *o)
{
    size_t len = 0, decoded = 0;
    for (size_t i = 0; i < n;) {
        const unsigned char *bs = memchr(s + i, '\\', n - i);
        size_t lit = bs ? (size_t)(bs - s) - i : n - i;
        memcpy(o + len, s + i, lit);
        len += lit;
        i += lit;
        if (i == n)
            break;
        size_t out_len = 0, used = decode_escape(s, n, i, o + len, &out_len);
        if (!used) {
            o[len++] = '\\';
            i++;
            continue;
        }
        len += out_len;
        i += used;
        decoded++;
    }
    return decoded ? len : 0;
}
