/* blob.c — content the classifier cannot read inside text: base64 (A-Z a-z
 * 0-9 + / =) or base64url (- _) of 256+ characters, as one unbroken run or
 * wrapped into lines of 64 or 76 columns (PEM, MIME). Sampled every 128
 * bytes: a blob that long must cover one of the samples. */
#include "policy/detectors/detectors.h"

#define BLOB_MIN 256
#define STRIDE 128

/* Line widths of wrapped base64: PEM (RFC 7468) and MIME (RFC 2045). */
static const size_t widths[] = { 64, 76 };
#define WIDTH_MAX 76

/* A-Z a-z 0-9 + / = - _: one load per byte, where this runs over every
 * run it samples. */
static const unsigned char b64_byte[256] = {
    ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1, ['H'] = 1,
    ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1,
    ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1,
    ['Y'] = 1, ['Z'] = 1, ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1,
    ['g'] = 1, ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1,
    ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1,
    ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1, ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1,
    ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1, ['8'] = 1, ['9'] = 1, ['+'] = 1, ['/'] = 1,
    ['='] = 1, ['-'] = 1, ['_'] = 1,
};

static inline int b64(unsigned char c)
{
    return b64_byte[c];
}

/* Length of the line end ("\n" or "\r\n") at s[i], or 0. */
static size_t eol_at(const unsigned char *s, size_t n, size_t i)
{
    if (i < n && s[i] == '\n')
        return 1;
    if (i + 1 < n && s[i] == '\r' && s[i + 1] == '\n')
        return 2;
    return 0;
}

static size_t run_end(const unsigned char *s, size_t n, size_t i)
{
    while (i < n && b64(s[i]))
        i++;
    return i;
}

/* Start of the run that ends at e, never before floor. */
static size_t run_start(const unsigned char *s, size_t floor, size_t e)
{
    while (e > floor && b64(s[e - 1]))
        e--;
    return e;
}

/* Encoded data, not words: it mixes at least two of upper case, lower case
 * and digits, so "=====" rules and long words stay out; with '-' or '_' in
 * it, all three, so kebab-case slugs and snake_case chains stay out too. */
static int looks_encoded(const unsigned char *s, size_t a, size_t e)
{
    int up = 0, low = 0, dig = 0, url = 0;
    for (size_t q = a; q < e && !(up && low && dig); q++) {
        up |= is_upper(s[q]);
        low |= is_lower(s[q]);
        dig |= is_digit(s[q]);
        url |= s[q] == '-' || s[q] == '_';
    }
    if (up && low && dig)
        return 1;
    return !url && up + low + dig >= 2;
}

/* The blob of lines `width` wide that the run [a, e) is a line of: every line
 * but the first and the last exactly `width` long, those two no longer, each
 * joined to the next by one line end. Returns its end and sets *start, or
 * returns 0 when it holds fewer than BLOB_MIN base64 characters. Looks at
 * nothing before floor. */
static size_t wrapped_at(const unsigned char *s, size_t n, size_t a, size_t e, size_t floor,
                         size_t width, size_t *start)
{
    if (e - a > width)
        return 0;
    size_t first = a, first_len = e - a;
    while (first > floor + 1 && s[first - 1] == '\n') {
        size_t brk = first - 1;
        if (s[brk - 1] == '\r')
            brk--;
        size_t prev = run_start(s, floor, brk), len = brk - prev;
        /* a short line can only be the first, so of two the later one is */
        if (len == 0 || len > width || (len < width && first_len < width))
            break;
        first = prev;
        first_len = len;
        if (len < width)
            break;
    }
    size_t total = 0, end = first, p = first;
    for (int line = 0;; line++) {
        size_t q = run_end(s, n, p);
        if (q == p || q - p > width)
            break;
        total += q - p;
        end = q;
        size_t eol = eol_at(s, n, q);
        if (!eol || (line > 0 && q - p < width))
            break;      /* a short line after the first is the last */
        p = q + eol;
    }
    if (total < BLOB_MIN)
        return 0;
    *start = first;
    return end;
}

static int is_width(size_t len)
{
    for (size_t w = 0; w < sizeof(widths) / sizeof(widths[0]); w++)
        if (len == widths[w])
            return 1;
    return 0;
}

/* The width of the wrapped lines the run [a, e) may be one of: its own
 * length, or when it is a short first or last line, that of the line after
 * or before it (a blob of BLOB_MIN characters has a whole line next to
 * either); 0 for none. */
static size_t line_width(const unsigned char *s, size_t n, size_t a, size_t e, size_t floor)
{
    if (is_width(e - a))
        return e - a;
    size_t eol = eol_at(s, n, e);
    if (eol) {
        size_t len = run_end(s, n, e + eol) - (e + eol);
        if (is_width(len) && len > e - a)
            return len;
    }
    if (a > floor + 1 && s[a - 1] == '\n') {
        size_t brk = s[a - 2] == '\r' ? a - 2 : a - 1;
        size_t len = brk - run_start(s, floor, brk);
        if (is_width(len) && len > e - a)
            return len;
    }
    return 0;
}

/* The blob the sample at p belongs to: its end (and *start), or 0. Sets
 * *examined to the end of what it looked at; a later sample may still look
 * back over that, but never before floor. */
static size_t blob_at(const unsigned char *s, size_t n, size_t p, size_t floor, size_t *start,
                      size_t *examined)
{
    *examined = p + 1;
    if (!b64(s[p])) {
        /* a line end between two lines: take the line after it */
        size_t next = s[p] == '\r' ? p + 2 : p + 1;
        if (!eol_at(s, n, p) || next >= n || !b64(s[next]))
            return 0;
        p = next;
    }
    size_t a = run_start(s, floor, p), e = run_end(s, n, p);
    *examined = e;
    if (e - a >= BLOB_MIN) {
        *start = a;
        return e;
    }
    if (e - a > WIDTH_MAX || !((a > 0 && s[a - 1] == '\n') || eol_at(s, n, e)))
        return 0;
    size_t width = line_width(s, n, a, e, floor);
    size_t end = width ? wrapped_at(s, n, a, e, floor, width, start) : 0;
    if (end)
        *examined = end;
    return end;
}

unsigned detect_blobs(const unsigned char *s, size_t n, const struct hit_sink *k)
{
    unsigned count = 0;
    size_t done = 0;    /* everything before this has been examined */
    size_t floor = 0;   /* the end of the last run of BLOB_MIN: none is read twice */
    for (size_t p = STRIDE - 1; p < n; p += STRIDE) {
        if (p < done)
            continue;
        size_t start = 0;
        size_t end = blob_at(s, n, p, floor, &start, &done);
        if (!end)
            continue;
        floor = end;
        if (!looks_encoded(s, start, end))
            continue;
        count++;
        if (k)
            sink_hit(k, start, end);
    }
    return count;
}
