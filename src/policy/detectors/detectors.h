/* detectors.h — the built-in detectors' private interface: each scans a byte
 * buffer in one pass and reports every match as a [start, end) byte range to a
 * sink, never copying the text. Also the small byte-class and skip helpers
 * they share (SSE2 where available, plain C otherwise), and the escape decoder
 * the classifier runs before scanning some text again (unescape.c). */
#ifndef AIRLOCK_DETECTORS_H
#define AIRLOCK_DETECTORS_H

#include <stddef.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

/* Where matches go. `det` is the caller's detector index, passed back as-is. */
struct hit_sink {
    void (*hit)(void *ctx, int det, size_t start, size_t end);
    void *ctx;
    int det;
};

static inline void sink_hit(const struct hit_sink *k, size_t start, size_t end)
{
    k->hit(k->ctx, k->det, start, end);
}

void detect_email(const unsigned char *s, size_t n, const struct hit_sink *k);
void detect_keys(const unsigned char *s, size_t n, const struct hit_sink *k);

/* The number-shaped detectors share one pass over the digits (numeric.c);
 * a NULL sink turns that detector off. */
enum numeric_kind { NUM_CARD, NUM_SSN, NUM_PHONE, NUM_IPV4, NUM_IBAN, NUM_KINDS };
struct numeric_sinks {
    const struct hit_sink *k[NUM_KINDS];
};
void detect_numeric(const unsigned char *s, size_t n, const struct numeric_sinks *ks);

/* Validators called by detect_numeric at a digit run [i, run_end): each
 * returns the end of the match or 0 (and its start when it may differ). */
size_t card_at(const unsigned char *s, size_t n, size_t i, size_t run_end);
size_t ssn_at(const unsigned char *s, size_t n, size_t i, size_t run_end);
size_t phone_at(const unsigned char *s, size_t n, size_t i, size_t *start);
size_t ipv4_at(const unsigned char *s, size_t n, size_t i);
size_t iban_at(const unsigned char *s, size_t n, size_t i, size_t *start);

/* Long base64-looking runs (content the classifier cannot read): returns how
 * many, and reports each to k when k is not NULL. */
unsigned detect_blobs(const unsigned char *s, size_t n, const struct hit_sink *k);

/* Writes s[0..n) with JSON's backslash escapes decoded to out, which has room
 * for n bytes (no escape decodes longer than it is written): \uXXXX (a
 * surrogate pair as one character) and \n \t \r \b \f \" \\ \/. An invalid
 * escape ("\q", "\u12", a lone surrogate) is copied as it is. Returns the
 * length written, or 0 when there was nothing to decode. */
size_t unescape_text(const unsigned char *s, size_t n, unsigned char *out);

/* Luhn check over `n` ASCII digits. */
int luhn_valid(const unsigned char *digits, size_t n);

static inline int is_digit(unsigned char c) { return (unsigned)(c - '0') < 10u; }
static inline int is_upper(unsigned char c) { return (unsigned)(c - 'A') < 26u; }
static inline int is_lower(unsigned char c) { return (unsigned)(c - 'a') < 26u; }
static inline int is_alpha(unsigned char c) { return is_upper(c) || is_lower(c); }
static inline int is_alnum(unsigned char c) { return is_alpha(c) || is_digit(c); }
static inline unsigned char to_lower(unsigned char c) { return is_upper(c) ? (unsigned char)(c + 32) : c; }
static inline unsigned char to_upper(unsigned char c) { return is_lower(c) ? (unsigned char)(c - 32) : c; }

/* May a phone or SSN number start at s[b]? Not when a letter or digit
 * touches it, nor when it continues a longer token: a part number (AB-123),
 * a dotted name or decimal (v1.555, 1.5), a time (12:30), a sum (1+555).
 * Other punctuation and '_' separate, so "Jane,555-123-4567", "#123-45-6789",
 * "id_...", "tel:..." and "tel/..." are matches: when in doubt, sensitive. */
static inline int number_left_ok(const unsigned char *s, size_t b)
{
    if (b == 0)
        return 1;
    unsigned char c = s[b - 1];
    if (is_alnum(c))
        return 0;
    if ((c == '-' || c == '.' || c == '+') && b >= 2 && (is_alnum(s[b - 2]) || s[b - 2] == '.'))
        return 0;
    if (c == ':' && b >= 2 && is_digit(s[b - 2]))
        return 0;
    return 1;
}

/* Index of the first ASCII digit at or after i, or n. */
static inline size_t next_digit(const unsigned char *s, size_t i, size_t n)
{
#ifdef __SSE2__
    const __m128i zero = _mm_set1_epi8('0'), nine = _mm_set1_epi8(9);
    while (i + 16 <= n) {
        __m128i v = _mm_sub_epi8(_mm_loadu_si128((const __m128i *)(const void *)(s + i)), zero);
        int m = _mm_movemask_epi8(_mm_cmpeq_epi8(_mm_min_epu8(v, nine), v));
        if (m)
            return i + (size_t)__builtin_ctz((unsigned)m);
        i += 16;
    }
#endif
    while (i < n && !is_digit(s[i]))
        i++;
    return i;
}

/* Index of the first byte at or after i equal to one of a..f, or n. */
static inline size_t next_of6(const unsigned char *s, size_t i, size_t n, unsigned char a,
                              unsigned char b, unsigned char c, unsigned char d,
                              unsigned char e, unsigned char f)
{
#ifdef __SSE2__
    const __m128i va = _mm_set1_epi8((char)a), vb = _mm_set1_epi8((char)b),
                  vc = _mm_set1_epi8((char)c), vd = _mm_set1_epi8((char)d),
                  ve = _mm_set1_epi8((char)e), vf = _mm_set1_epi8((char)f);
    while (i + 16 <= n) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(s + i));
        __m128i m = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, va), _mm_cmpeq_epi8(v, vb)),
                                 _mm_or_si128(_mm_cmpeq_epi8(v, vc), _mm_cmpeq_epi8(v, vd)));
        m = _mm_or_si128(m, _mm_or_si128(_mm_cmpeq_epi8(v, ve), _mm_cmpeq_epi8(v, vf)));
        int bits = _mm_movemask_epi8(m);
        if (bits)
            return i + (size_t)__builtin_ctz((unsigned)bits);
        i += 16;
    }
#endif
    while (i < n && s[i] != a && s[i] != b && s[i] != c && s[i] != d && s[i] != e && s[i] != f)
        i++;
    return i;
}

/* Case-insensitive: does s[i..] start with the lower-case ASCII word w? */
static inline int starts_with_ci(const unsigned char *s, size_t i, size_t n, const char *w)
{
    for (; *w; w++, i++)
        if (i >= n || to_lower(s[i]) != (unsigned char)*w)
            return 0;
    return 1;
}

#endif
