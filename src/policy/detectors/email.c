/* email.c — the `email` built-in: local@domain.tld. Anchored on '@' (memchr),
 * then the local part is read backwards and the domain forwards. The domain
 * needs at least two labels and an alphabetic top-level label, which keeps
 * out @handles, decorators, npm-style name@1.2.3 and asset names (icon@2x.png). */
#include "policy/detectors/detectors.h"

#define LOCAL_MAX 64
#define LABEL_MAX 63

static int local_char(unsigned char c)
{
    return is_alnum(c) || c == '.' || c == '_' || c == '%' || c == '+' || c == '-' || c >= 0x80;
}

static int domain_char(unsigned char c)
{
    return is_alnum(c) || c == '-' || c >= 0x80;
}

/* Top-level labels that are really file extensions (retina assets: icon@2x.png). */
static int file_extension(const unsigned char *s, size_t len)
{
    static const char *const ext[] = { "png", "jpg", "jpeg", "gif", "svg", "webp", "bmp",
                                       "ico", "tif", "tiff", "avif", NULL };
    for (int i = 0; ext[i]; i++) {
        size_t el = strlen(ext[i]);
        if (el == len && starts_with_ci(s, 0, len, ext[i]))
            return 1;
    }
    return 0;
}

static int top_label_ok(const unsigned char *s, size_t len)
{
    if (len < 2)
        return 0;
    if (len > 4 && starts_with_ci(s, 0, len, "xn--"))
        return 1;
    for (size_t i = 0; i < len; i++)
        if (!is_alpha(s[i]))
            return 0;
    return !file_extension(s, len);
}

void detect_email(const unsigned char *s, size_t n, const struct hit_sink *k)
{
    size_t i = 0, floor = 0;
    while (i < n) {
        const unsigned char *at = memchr(s + i, '@', n - i);
        if (!at)
            break;
        size_t a = (size_t)(at - s);
        i = a + 1;

        size_t b = a;
        while (b > floor && a - b < LOCAL_MAX && local_char(s[b - 1]))
            b--;
        while (b < a && s[b] == '.')
            b++;
        int has_alnum = 0;
        for (size_t p = b; p < a && !has_alnum; p++)
            has_alnum = is_alnum(s[p]) || s[p] >= 0x80;
        if (!has_alnum)
            continue;

        size_t e = a + 1, label = e, labels = 0;
        for (;;) {
            size_t ls = e;
            while (e < n && e - ls < LABEL_MAX && domain_char(s[e]))
                e++;
            if (e == ls)
                break;
            labels++;
            label = ls;
            if (e + 1 < n && s[e] == '.' && domain_char(s[e + 1])) {
                e++;
                continue;
            }
            break;
        }
        if (labels < 2)
            continue;
        if (!top_label_ok(s + label, e - label)) {
            /* text in another script may follow with no space between
             * (jane@example.com谢谢, an emoji): the top label then ends
             * where its ASCII letters do */
            size_t p = label;
            while (p < e && is_alpha(s[p]))
                p++;
            if (p == e || s[p] < 0x80 || !top_label_ok(s + label, p - label))
                continue;
            e = p;
        }
        sink_hit(k, b, e);
        i = e;
        floor = e;
    }
}
